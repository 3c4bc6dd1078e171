"""`python -m benchmarks.request_cost TASKS...`: run the connector tasks of access requests in this
process, one request after another, as a worker's pool process runs them: each task claimed,
gathered, staged and recorded, and the final step (the archive, its report, completing the request)
taken by whoever finishes the last task. Each argument is one request's task ids, comma-separated.

The throughput benchmark runs this under callgrind twice, with two numbers of requests after the
same warm-up, and divides the difference in instructions by the difference in requests: what the
workers' own code spends on one typical access request, whatever the machine's speed of the
moment. Celery's handling of the messages is not in it (no queue is involved); the database, the
estate and the export storage are real.
"""

from __future__ import annotations

import gc
import os
import sys


def main() -> int:
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.request_cost_settings"  # no lease renewals: see there
    import django

    django.setup()
    from django.db import close_old_connections

    from connectors.registry import connectors_import
    from dsar import exports, processing
    from dsar.models import Request, Status

    from .filing_cost import email_doorbell_kept_up

    connectors_import()  # as the worker's parent does before it forks its pool (dsar/tasks.py)
    exports.report_prepare()
    gc.freeze()  # as the worker does (dsar/tasks.py): its collections never walk what it started with
    doorbell_up = email_doorbell_kept_up()  # completing a request rings for its email
    for tasks in sys.argv[1:]:
        for task_id in tasks.split(","):
            doorbell_up()
            close_old_connections()  # as before every task (dsar/tasks.py)
            processing.task_run(int(task_id))
    ids = {int(task_id) for tasks in sys.argv[1:] for task_id in tasks.split(",")}
    unfinished = Request.objects.filter(tasks__pk__in=ids).exclude(status=Status.COMPLETED).distinct().count()
    if unfinished:
        raise SystemExit(f"{unfinished} of the requests did not complete")
    return 0


if __name__ == "__main__":
    sys.exit(main())
