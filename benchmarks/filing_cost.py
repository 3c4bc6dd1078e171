"""`python -m benchmarks.filing_cost PATH COUNT`: call the product's WSGI application COUNT times in
this process, for PATH (`/api/v1/requests` files a request; anything else is a GET).

The intake benchmark runs this under callgrind twice, with two counts, and divides the difference
in instructions by the difference in calls: what one filing in a burst costs the web process,
without start-up, and the same on a busy machine as on an idle one (wall-clock figures on a shared 2-core machine
move by a third from one run to the next). The database, Redis and the mail files are real.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
import uuid

WARM = 30  # calls before counting starts matter too: the difference of two runs removes them


def _environ(path: str, body: bytes) -> dict:
    return {
        "REQUEST_METHOD": "POST" if path == "/api/v1/requests" else "GET", "PATH_INFO": path, "QUERY_STRING": "",
        "SCRIPT_NAME": "", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "HTTP_HOST": "127.0.0.1",
        "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http", "wsgi.version": (1, 0), "wsgi.multithread": False, "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def email_doorbell_kept_up():
    """A callable that keeps the email task's doorbell key up, as the running task renews it.

    Under load that task is running, so a filing (or a completed request) only finds the key taken.
    Under callgrind each call is so slow that the key would otherwise run out between calls, and
    each would ring a task (the workers are stopped). Call it before each unit of work."""
    from django.core.cache import cache

    from dsar import notifications
    from dsar.cache import cache_redis

    doorbell, renewed = cache.make_key(notifications.DOORBELL), [0.0]

    def keep() -> None:
        if time.monotonic() - renewed[0] > 1:
            cache_redis().set(doorbell, 1, ex=notifications.DOORBELL_SECONDS)
            renewed[0] = time.monotonic()

    return keep


def main() -> int:
    path, count = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dsar.settings")
    from dsar.wsgi import application

    doorbell_up = email_doorbell_kept_up()

    answers: list[str] = []

    def start_response(status, headers, exc_info=None):
        answers.append(status)

    run = uuid.uuid4().hex[:12]
    for number in range(WARM + count):
        doorbell_up()
        body = json.dumps({"type": "access", "email": f"cost.{run}.{number}@example.com"}).encode()
        response = application(_environ(path, body), start_response)
        b"".join(response)
        response.close()
    wrong = [status for status in answers if not status.startswith(("200", "201"))]
    if wrong:
        raise SystemExit(f"{path}: {len(wrong)} answers were not 2xx, the first {wrong[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
