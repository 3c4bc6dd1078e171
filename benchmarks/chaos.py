"""make chaos: a batch of requests filed while workers are SIGKILLed and the broker dies.

The product runs for real (gunicorn, Celery workers, beat, PostgreSQL) on a Redis of this run's
own, which is killed (SIGKILL, no persistence: every queued message is lost) and started again
mid-batch. Workers are killed at random points of the batch, each time one holding a task or a
final step: sometimes the pool process, sometimes the whole worker, which is then started again. While the broker is down the web server is
asked to file requests and must answer a clean 503.

Then every request is checked: it is final (or it is lost); a completed access request has exactly
one export, whose zip tests clean, whose SHA-256 matches its row and whose manifest checksums match
its members; a completed deletion has one receipt equal to the sum of its connectors' receipts; a
failed one says why. The last line printed is the summary of contract §8.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import requests

from estate.generate import subject_email
from devstack import redis_server_start

from .harness import Mailbox, Product, free_port, note

SEED = 23
OUTAGE_SECONDS = 3.0
AIM_SECONDS = 30.0


class Broker:
    """A Redis server of this run's own, with nothing kept on disk: a crash loses every message."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = redis_server_start(self.directory, self.port, persist=False)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)


class Chaos:
    def __init__(self, *, requests_n: int, kills: int, broker_restarts: int, workers: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.requests_n, self.kills_wanted, self.restarts_wanted = requests_n, kills, broker_restarts
        self.workers = workers
        self.broker = Broker(Path(os.environ.get("DSAR_DATA_DIR", "var")).resolve() / "bench" / "chaos" / "redis")
        self.product = Product(
            name="chaos", workers=workers, concurrency=2, web_workers=2, web_threads=4,
            env={
                "REDIS_URL": self.broker.url,
                "DJANGO_SETTINGS_MODULE": "benchmarks.chaos_settings",  # faults recovered from within seconds
            },
        )
        self.ids: list[str] = []
        self.ids_lock = threading.Lock()
        self.kills = self.kills_on_work = self.restarts = 0
        self.outage_answers: dict[str, int] = {}
        self.unclean: list[str] = []
        self.stop = threading.Event()

    # --- set-up -------------------------------------------------------------------------------------

    def prepare(self) -> None:
        """A fresh estate every run: the last run's deletions erased some of it."""
        import shutil

        import psycopg

        product = self.product
        product.database_ensure()
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
            for system in ("accounts", "payments", "third_party"):
                conn.execute(f'DROP DATABASE IF EXISTS "{product.database}_{system}" WITH (FORCE)')
        shutil.rmtree(product.data / "content", ignore_errors=True)
        (product.data / "estate.json").unlink(missing_ok=True)
        product.estate_generate(subjects=self.requests_n, seed=SEED, interactions=40, files=3)
        product.manage("schedule_jobs")
        with product.sql() as conn:  # beat rings for the sweeper every 2 s instead of every minute
            interval = conn.execute(
                "INSERT INTO django_celery_beat_intervalschedule (every, period) VALUES (2, 'seconds') RETURNING id"
            ).fetchone()[0]
            conn.execute("UPDATE django_celery_beat_periodictask SET interval_id = %s WHERE name = 'dsar: sweeper'", [interval])

    def start(self) -> None:
        self.product.start()
        self.product.processes.append(subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "dsar", "beat", "-l", "warning", "-s", str(self.product.data / "beat-schedule")],
            cwd=Path(__file__).resolve().parent.parent, env=self.product.env, start_new_session=True, stdout=sys.stderr,
        ))

    # --- the batch ----------------------------------------------------------------------------------

    def submit(self, index: int, mailbox: Mailbox, session: requests.Session) -> None:
        """File and verify one request as a person would: on a 503, wait a moment and try again."""
        kind = "deletion" if index % 5 == 4 else "access"
        email = subject_email(index, SEED)
        url = self.product.url
        created = self._patiently(lambda: session.post(f"{url}/api/v1/requests", json={"type": kind, "email": email}, timeout=30))
        request_id = created.json()["id"]
        code = mailbox.code_for(email, timeout=120)
        self._patiently(lambda: session.post(f"{url}/api/v1/requests/{request_id}/verify", json={"code": code}, timeout=30))
        with self.ids_lock:
            self.ids.append(request_id)

    def _patiently(self, send) -> requests.Response:
        deadline = time.monotonic() + 120
        while True:
            try:
                response = send()
            except requests.ConnectionError:
                response = None
            if response is not None and response.status_code < 300:
                return response
            if response is not None and response.status_code != 503:
                raise SystemExit(f"chaos: the web server answered {response.status_code}: {response.text[:300]}")
            if time.monotonic() > deadline:
                raise SystemExit("chaos: the web server did not come back within 120 s")
            time.sleep(0.2)

    def progress(self) -> int:
        with self.ids_lock:
            ids = list(self.ids)
        if not ids:
            return 0
        with self.product.sql() as conn:
            return conn.execute(
                "SELECT count(*) FROM dsar_request WHERE id = ANY(%s::uuid[]) AND status IN ('completed', 'failed')", [ids]
            ).fetchone()[0]

    def inject(self, fault: Callable[[], None], thresholds: list[float]) -> None:
        """Fire `fault` once the batch has progressed past each threshold (a share of the batch)."""
        for threshold in sorted(thresholds):
            while self.progress() < threshold * self.requests_n:
                if self.stop.wait(0.05):
                    return
            time.sleep(self.rng.uniform(0, 0.3))
            fault()

    def worker_kill(self) -> None:
        """SIGKILL a pool process, or its whole worker, while it holds a task or a final step, so the
        kill cuts real work short. Every worker process is stopped (SIGSTOP) before the rows are
        read: a stopped process can neither finish nor claim work, so the row it holds is still its
        own when it dies, however short the work. If nothing is held for AIM_SECONDS, a worker is
        killed idle; once the batch has ended there is no kill."""
        deadline = time.monotonic() + AIM_SECONDS
        while time.monotonic() < deadline:
            if self.stop.is_set():
                note("chaos: the batch ended before this kill found work: no kill")
                return
            stopped = self._workers_stop()
            try:
                held = [(claim, pid) for claim, pid in self._held() if pid in stopped]
                if held:
                    claim, pid = self.rng.choice(held)
                    note(f"chaos: {claim} holds work at {self.progress()}/{self.requests_n} done")
                    self._workers_continue(stopped - {pid})
                    self._kill(self._worker_of(pid), pid)
                    self.kills_on_work += 1
                    return
            finally:
                self._workers_continue(stopped)
            time.sleep(0.01)
        note(f"chaos: nothing held for {AIM_SECONDS:.0f} s: a worker is killed idle")
        self._kill(self.rng.randrange(self.workers), None)

    def _workers_stop(self) -> set[int]:
        """SIGSTOP every worker process, pool processes first; the pids stopped."""
        stopped = set()
        for number in range(self.workers):
            parent = self.product.processes[1 + number].pid
            with contextlib.suppress(psutil.NoSuchProcess):
                for pid in [child.pid for child in psutil.Process(parent).children()] + [parent]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGSTOP)
                        stopped.add(pid)
        return stopped

    @staticmethod
    def _workers_continue(stopped: set[int]) -> None:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def _held(self) -> list[tuple[str, int]]:
        """(claimed_by, pid) of every task and final step running now."""
        with self.product.sql() as conn:
            rows = conn.execute(
                """SELECT claimed_by FROM dsar_connectortask WHERE status = 'running'
                   UNION ALL SELECT claimed_by FROM dsar_finalstep WHERE status = 'running'"""
            ).fetchall()
        return [(claim, int(claim.rsplit(":", 1)[1])) for (claim,) in rows if claim]

    def _worker_of(self, pid: int) -> int | None:
        for number in range(self.workers):
            parent = self.product.processes[1 + number].pid
            with contextlib.suppress(psutil.NoSuchProcess):
                if pid == parent or pid in {child.pid for child in psutil.Process(parent).children()}:
                    return number
        return None

    def _kill(self, number: int, pool_process: int | None) -> None:
        """Half the time only the pool process (its worker replaces it), else the whole worker,
        which is started again."""
        process = self.product.processes[1 + number]
        if pool_process is None:
            children = psutil.Process(process.pid).children()
            pool_process = self.rng.choice(children).pid if children else None
        if pool_process is not None and pool_process != process.pid and self.rng.random() < 0.5:
            note(f"chaos: SIGKILL pool process {pool_process} of worker {number}")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pool_process, signal.SIGKILL)
        else:
            note(f"chaos: SIGKILL worker {number} (pid {process.pid}) and its pool; starting it again")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
            time.sleep(0.5)
            self.product.processes[1 + number] = self.product.worker_spawn(number)
        self.kills += 1

    def broker_restart(self) -> None:
        note("chaos: SIGKILL the broker")
        self.broker.kill()
        ended = time.monotonic() + OUTAGE_SECONDS
        number = 0
        while time.monotonic() < ended:
            number += 1
            email = f"outage-{number}-{random.getrandbits(32)}@example.com"
            for method, path, body in (("POST", "/api/v1/requests", {"type": "access", "email": email}), ("GET", "/healthz", None)):
                try:
                    response = requests.request(method, f"{self.product.url}{path}", json=body, timeout=10)
                except requests.RequestException as error:
                    self.unclean.append(f"{method} {path}: {error}")
                    continue
                key = str(response.status_code)
                self.outage_answers[key] = self.outage_answers.get(key, 0) + 1
                if response.status_code != 503 or "json" not in response.headers.get("Content-Type", ""):
                    self.unclean.append(f"{method} {path}: {response.status_code} {response.text[:200]}")
            time.sleep(0.1)
        self.broker.start()
        note("chaos: the broker is back")
        self.restarts += 1

    # --- the verdict --------------------------------------------------------------------------------

    def verdict(self, seconds: float) -> dict:
        counts = {"completed": 0, "failed_with_reason": 0, "lost": 0, "duplicate_exports": 0, "corrupt_archives": 0}
        problems: list[str] = []
        storage = self.product.data / "storage"
        with self.product.sql() as conn:
            rows = conn.execute(
                "SELECT id::text, type, status, failure_reason, result, categories FROM dsar_request WHERE id = ANY(%s::uuid[])",
                [self.ids],
            ).fetchall()
            exports: dict[str, list[tuple]] = {}
            for request_id, path, sha256 in conn.execute(
                "SELECT request_id::text, path, sha256 FROM dsar_export WHERE request_id = ANY(%s::uuid[])", [self.ids]
            ):
                exports.setdefault(request_id, []).append((path, sha256))
            receipts = {
                request_id: (done, total, merged)
                for request_id, done, total, merged in conn.execute(
                    """SELECT request_id::text, count(*) FILTER (WHERE status = 'succeeded' AND receipt IS NOT NULL), count(*),
                              jsonb_agg(receipt->'erased') FROM dsar_connectortask WHERE request_id = ANY(%s::uuid[])
                       GROUP BY request_id""",
                    [self.ids],
                )
            }
            # How hard the faults hit: tasks the sweeper revived, attempts cut short and run again.
            revived, repeated, finals = conn.execute(
                """SELECT coalesce(sum(t.sweeps), 0), coalesce(sum(t.attempts - 1) FILTER (WHERE t.attempts > 1), 0),
                          (SELECT coalesce(sum(attempts - 1), 0) FROM dsar_finalstep WHERE request_id = ANY(%s::uuid[]))
                     FROM dsar_connectortask t WHERE t.request_id = ANY(%s::uuid[])""",
                [self.ids, self.ids],
            ).fetchone()
        counts["lost"] += self.requests_n - len(rows)
        for request_id, kind, status, reason, result, categories in rows:
            if status == "failed" and reason:
                counts["failed_with_reason"] += 1
                problems.append(f"{request_id} failed: {reason}")
                continue
            if status != "completed":
                counts["lost"] += 1
                problems.append(f"{request_id} ended {status!r}")
                continue
            counts["completed"] += 1
            if kind == "deletion":
                done, total, erased = receipts.get(request_id, (0, 0, []))
                merged: dict[str, int] = {}
                for part in erased:
                    for category, number in (part or {}).items():
                        merged[category] = merged.get(category, 0) + number
                if done != total or merged != result.get("erased"):
                    counts["corrupt_archives"] += 1
                    problems.append(f"{request_id}: receipt does not match its connectors' receipts")
                continue
            rows_here = exports.get(request_id, [])
            on_disk = [p for p in (storage / "exports" / request_id).glob("*") if p.is_file()]
            if len(rows_here) > 1 or len(on_disk) > 1:
                counts["duplicate_exports"] += 1
                problems.append(f"{request_id}: {len(rows_here)} export rows, {len(on_disk)} files")
            if not rows_here:
                counts["lost"] += 1
                problems.append(f"{request_id}: completed without an export")
                continue
            path, sha256 = rows_here[0]
            problem = archive_problem(storage / path, sha256, request_id, set(categories), result)
            if problem:
                counts["corrupt_archives"] += 1
                problems.append(f"{request_id}: {problem}")
        for line in problems[:20]:
            note(f"chaos: {line}")
        return {
            "submitted": self.requests_n,
            **counts,
            "kills": self.kills,
            "broker_restarts": self.restarts,
            "tasks_revived": int(revived),
            "attempts_repeated": int(repeated),
            "final_steps_repeated": int(finals),
            "outage_answers": self.outage_answers,
            "unclean_outage_answers": len(self.unclean),
            "seconds": round(seconds, 1),
        }

    def run(self) -> dict:
        self.broker.start()
        self.prepare()
        self.start()
        started = time.monotonic()
        try:
            mailbox, session = Mailbox(self.product.mail), requests.Session()
            session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=8))
            # Kills and broker restarts on threads of their own: a kill waits for work to hit, an
            # outage lasts seconds, and neither should push the other past the end of the batch.
            injectors = [
                threading.Thread(target=self.inject, args=(self.worker_kill, [self.rng.uniform(0.05, 0.85) for _ in range(self.kills_wanted)]), daemon=True),
                threading.Thread(target=self.inject, args=(self.broker_restart, [self.rng.uniform(0.3, 0.6) for _ in range(self.restarts_wanted)]), daemon=True),
            ]
            for injector in injectors:
                injector.start()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda i: self.submit(i, mailbox, session), range(self.requests_n)))
            deadline = time.monotonic() + 300
            while self.progress() < self.requests_n and time.monotonic() < deadline:
                time.sleep(0.2)
            self.stop.set()
            for injector in injectors:
                injector.join(30)
            for line in self.unclean[:10]:
                note(f"chaos: unclean answer during the outage: {line}")
            return {**self.verdict(time.monotonic() - started), "kills_on_work": self.kills_on_work}
        finally:
            self.product.stop()
            with contextlib.suppress(Exception):
                self.broker.kill()


def archive_problem(path: Path, sha256: str, request_id: str, categories: set[str], result: dict) -> str | None:
    """What is wrong with one export archive, or None."""
    if not path.exists():
        return "its archive file is missing"
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != sha256:
        return "the archive's SHA-256 differs from its export row"
    try:
        with zipfile.ZipFile(path) as archive:
            if archive.testzip() is not None:
                return "a member fails its CRC"
            manifest = json.loads(archive.read("manifest.json"))
            for member in manifest["files"]:
                if hashlib.sha256(archive.read(member["path"])).hexdigest() != member["sha256"]:
                    return f"{member['path']} does not match the manifest"
    except (zipfile.BadZipFile, KeyError, ValueError) as error:
        return f"not a sound archive: {error}"
    if manifest["request_id"] != request_id:
        return "the manifest names another request"
    if set(manifest["categories"]) != categories or set(result.get("categories", {})) != categories:
        return "a category is missing"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(prog="make chaos")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--broker-restarts", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    note(f"chaos: seed {args.seed}")
    summary = Chaos(requests_n=args.requests, kills=args.kills, broker_restarts=args.broker_restarts, workers=args.workers,
                    seed=args.seed).run()
    print(json.dumps(summary), flush=True)
    clean = summary["lost"] == summary["duplicate_exports"] == summary["corrupt_archives"] == summary["unclean_outage_answers"] == 0
    return 0 if clean and summary["completed"] == summary["submitted"] else 1


if __name__ == "__main__":
    sys.exit(main())
