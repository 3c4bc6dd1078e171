"""What every benchmark needs: its own database and estate, the product's real processes (gunicorn,
Celery workers), a client that files and verifies requests, and the figure format of contract §8."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
import requests

from devstack import POOL_QUEUES, WEB_THREADS, WEB_WORKERS, free_port, gunicorn_args, mail_worker_args

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CODE = re.compile(rb"\b(\d{8})\b")
SEPARATOR = b"\n" + b"-" * 79 + b"\n"  # what Django's file email backend writes after each message
# The benchmarks' mail is a sink standing in for an SMTP relay, so it lives in memory where the
# machine has a tmpfs. Django's file backend creates a file per message, and on this machine's disk
# a new small file costs 0.2 to 0.9 ms of kernel time (intake prints the figure), a sixth of a filing.
MAIL_ROOT = Path(os.environ.get("DSAR_BENCH_MAIL_ROOT", "/dev/shm"))


def file_create_ms(directory: Path, count: int = 200) -> float:
    """Kernel plus user CPU, in ms, that creating and writing one small file costs in `directory`:
    what Django's file email backend pays per message there."""
    probe = directory / f".probe-{os.getpid()}"
    probe.mkdir(parents=True, exist_ok=True)
    started = time.process_time()
    for number in range(count):
        with open(probe / f"{number}.log", "ab") as handle:
            handle.write(b"x" * 4096)
    spent = time.process_time() - started
    shutil.rmtree(probe)
    return 1000 * spent / count


# A benchmark's queue starts empty, and its database too unless it keeps its requests; the audit
# tables refuse TRUNCATE but to a superuser who sets their triggers aside.
QUEUE_PURGE = """
from dsar.celery import app
app.control.purge()
"""
RESET = """
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("SET session_replication_role = replica")
    cursor.execute("TRUNCATE dsar_request, dsar_connectortask, dsar_export, dsar_auditentry, dsar_auditseal, dsar_deadlinenotice CASCADE")
""" + QUEUE_PURGE


def figure(bench: str, name: str, value: float, unit: str, *, target: float | None = None, direction: str = "max",
           reference: dict | None = None) -> dict:
    """Print one figure as a JSON line (contract §8) and return it."""
    ok = None
    if target is not None:
        ok = value <= target if direction == "max" else value >= target
    line = {"bench": bench, "figure": name, "value": round(value, 4), "unit": unit, "target": target,
            "direction": direction, "reference": reference, "ok": ok}
    print(json.dumps(line), flush=True)
    return line


def note(message: str) -> None:
    print(f"# {message}", file=sys.stderr, flush=True)


def instructions_counted(commands: dict[Any, list[str]], env: dict[str, str]) -> dict[Any, int]:
    """Instructions each command executed under callgrind, the commands run side by side (a count
    does not depend on the load). Raises SystemExit with valgrind's words if one fails.

    Python's hash seed is fixed: with a random one, the same process's count moved by 3 % from one
    run to the next (dicts and sets laid out differently); fixed, by less than a hundredth of one."""
    env = {**env, "PYTHONHASHSEED": "0"}
    runs = {key: subprocess.Popen(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *command], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for key, command in commands.items()}
    collected = {}
    for key, process in runs.items():
        _, errors = process.communicate()
        total = re.search(r"Collected : (\d+)", errors)
        if process.returncode or not total:
            raise SystemExit(f"counting instructions for {key} failed:\n{errors[-2000:]}")
        collected[key] = int(total.group(1))
    return collected


def machine_busy(before, after) -> tuple[float, float]:
    """CPU seconds the whole machine was busy between two `psutil.cpu_times()`, and as a share."""
    idle = (after.idle + after.iowait) - (before.idle + before.iowait)
    busy = sum(after) - sum(before) - idle
    return busy, busy / (busy + idle)


class CpuWatch:
    """CPU seconds each group of processes used between `start()` and `stop()`: the web server and
    the workers (each with its children), PostgreSQL, Redis, the estate's helpdesk, and this process
    (the benchmark's client). A process that started in between counts from zero; one that ended in
    between is lost, so it is read at the end of a run, while the product still runs.

    PostgreSQL is also counted apart from its sessions on the benchmark's own databases: its
    background (autovacuum, the checkpointer, the WAL and I/O workers) and sessions on any other
    database, which an earlier benchmark may have left working."""

    def __init__(self, product: Product) -> None:
        self.product = product
        self.before: dict[str, dict[int, tuple[float, float]]] = {}
        self.system: dict[str, float] = {}  # after stop(): the part of each group's seconds spent in the kernel

    def _groups(self) -> dict[str, list[psutil.Process]]:
        groups: dict[str, list[psutil.Process]] = {"web": [], "worker": [], "postgres": [], "postgres_background": [], "redis": [],
                                                   "helpdesk": [], "client": [psutil.Process()]}
        own_sessions = re.compile(rf"^postgres: \S+ {re.escape(self.product.database)}(_\w+)? ")  # user, database, client
        for index, popen in enumerate(self.product.processes):
            with contextlib.suppress(psutil.NoSuchProcess):
                parent = psutil.Process(popen.pid)
                groups["web" if index == 0 else "worker"] += [parent, *parent.children(recursive=True)]
        for process in psutil.process_iter(["name", "cmdline"]):
            command = " ".join(process.info["cmdline"] or [])
            if process.info["name"] == "postgres":
                groups["postgres"].append(process)
                if not own_sessions.match(command):
                    groups["postgres_background"].append(process)
            elif process.info["name"] and process.info["name"].startswith("redis-server"):
                groups["redis"].append(process)
            elif "estate.helpdesk" in command:
                groups["helpdesk"].append(process)
        return groups

    def _read(self) -> dict[str, dict[int, tuple[float, float]]]:
        seconds: dict[str, dict[int, tuple[float, float]]] = {}
        for name, members in self._groups().items():
            seconds[name] = {}
            for process in members:
                with contextlib.suppress(psutil.NoSuchProcess):
                    times = process.cpu_times()
                    seconds[name][process.pid] = (times.user, times.system)
        return seconds

    def start(self) -> None:
        self.before = self._read()

    def stop(self) -> dict[str, float]:
        now = self._read()
        user: dict[str, float] = {}
        for name, times in now.items():
            before = self.before.get(name, {})
            user[name] = sum(u - before.get(pid, (0.0, 0.0))[0] for pid, (u, _) in times.items())
            self.system[name] = sum(s - before.get(pid, (0.0, 0.0))[1] for pid, (_, s) in times.items())
        return {name: user[name] + self.system[name] for name in now}


class Product:
    """The product's processes on a benchmark database: gunicorn and Celery workers."""

    def __init__(self, *, name: str, workers: int = 2, concurrency: int = 1, pool: str = "prefork", web_workers: int = WEB_WORKERS,
                 web_threads: int = WEB_THREADS, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.data = Path(os.environ.get("DSAR_DATA_DIR", ROOT / "var")).resolve() / "bench" / name
        self.data.mkdir(parents=True, exist_ok=True)
        in_memory = MAIL_ROOT.is_dir() and os.access(MAIL_ROOT, os.W_OK)
        # Named for the checkout too: two checkouts' runs at once must not empty each other's mail.
        checkout = zlib.crc32(str(self.data).encode())
        self.mail = MAIL_ROOT / f"dsar-bench-{name}-{checkout:08x}-mail" if in_memory else self.data / "mail"
        shutil.rmtree(self.mail, ignore_errors=True)  # codes of an earlier run would be taken for new ones
        self.mail.mkdir()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers, self.concurrency, self.pool = workers, concurrency, pool
        self.web_workers, self.web_threads = web_workers, web_threads
        base = os.environ["DATABASE_URL"].rsplit("/", 1)[0]
        self.database = f"dsar_bench_{name}"
        self.env = {
            **os.environ,
            "DATABASE_URL": f"{base}/{self.database}",
            "EMAIL_FILE_PATH": str(self.mail),
            "DSAR_AUTO_APPROVE": "1",
            "DSAR_PUBLIC_URL": self.url,
            "DSAR_RATE_LIMITS": json.dumps(dict.fromkeys(["file_ip", "file_email", "file_email_ip", "verify_ip"], "1000000/m")),
            "DSAR_STORAGE": json.dumps({"backend": "django.core.files.storage.FileSystemStorage", "options": {"location": str(self.data / "storage")}}),
            "DSAR_ESTATE_CONTENT_DIR": str(self.data / "content"),
            "DSAR_LOG_LEVEL": "WARNING",
            **(env or {}),
        }
        self.processes: list[subprocess.Popen] = []
        self.spies: list[subprocess.Popen] = []

    # --- set-up -------------------------------------------------------------------------------------

    def manage(self, *args: str, quiet: bool = True) -> str:
        result = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True)
        if result.returncode:
            raise SystemExit(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def database_ensure(self) -> None:
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [self.database]).fetchone():
                conn.execute(f'CREATE DATABASE "{self.database}"')
        self.manage("migrate", "--no-input")

    def estate_generate(self, *, subjects: int, seed: int, **options: int) -> None:
        """Generate the estate once per (subjects, seed, options); a marker file remembers it."""
        marker = self.data / "estate.json"
        wanted = {"subjects": subjects, "seed": seed, **options}
        if marker.exists() and json.loads(marker.read_text()) == wanted:
            note(f"{self.name}: estate of {subjects} subjects already generated")
            return
        started = time.monotonic()
        args = ["generate_estate", "--subjects", str(subjects), "--seed", str(seed)]
        for key, value in options.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        self.manage(*args)
        marker.write_text(json.dumps(wanted))
        note(f"{self.name}: generated {subjects} subjects in {time.monotonic() - started:.0f}s")

    # --- processes ----------------------------------------------------------------------------------

    def reset(self, *, keep_requests: bool = False) -> None:
        """Start from no requests and an empty queue (an earlier, interrupted run may have left both);
        with `keep_requests`, only from an empty queue."""
        self.manage("shell", "-c", QUEUE_PURGE if keep_requests else RESET)

    def start(self, *, keep_requests: bool = False) -> Product:
        self.reset(keep_requests=keep_requests)
        self.processes.append(subprocess.Popen(
            [PYTHON, *gunicorn_args(f"127.0.0.1:{self.port}", self.web_workers, self.web_threads), "--log-level", "warning"],
            cwd=ROOT, env=self.env, start_new_session=True, stdout=sys.stderr,
        ))
        for number in range(self.workers):
            self.processes.append(self.worker_spawn(number))
        self.processes.append(subprocess.Popen(  # after the pool workers, whose places chaos counts on
            [PYTHON, *mail_worker_args(f"mail-{self.name}@%h"), "-l", "warning", "--without-mingle", "--without-gossip", "--without-heartbeat"],
            cwd=ROOT, env=self.env, start_new_session=True, stdout=sys.stderr))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                health = requests.get(f"{self.url}/healthz", timeout=5).json()
                if health.get("workers", 0) >= self.workers:
                    self._profile()
                    return self
            time.sleep(0.2)
        raise SystemExit(f"{self.name}: the product did not become healthy within 60s")

    def worker_spawn(self, number: int) -> subprocess.Popen:
        """One Celery worker (a parent and its pool), in a process group of its own."""
        return subprocess.Popen(
            [PYTHON, "-m", "celery", "-A", "dsar", "worker", "-l", "warning", "-P", self.pool, "-c", str(self.concurrency),
             "-Q", POOL_QUEUES, "-n", f"bench{number}-{self.name}@%h", "--without-mingle", "--without-gossip", "--without-heartbeat"],
            cwd=ROOT, env=self.env, start_new_session=True, stdout=sys.stderr,
        )

    def _profile(self) -> None:
        """With DSAR_BENCH_PROFILE=DIR, py-spy samples every product process into DIR (collapsed stacks)."""
        directory = os.environ.get("DSAR_BENCH_PROFILE")
        if not directory:
            return
        Path(directory).mkdir(parents=True, exist_ok=True)
        # DSAR_BENCH_PROFILE_GIL=1 keeps only samples holding the GIL: where the CPU goes, waits left out.
        only_cpu = ["--gil"] if os.environ.get("DSAR_BENCH_PROFILE_GIL") == "1" else []
        for index, process in enumerate(list(self.processes)):
            role = "web" if index == 0 else f"worker{index}"
            self.spies.append(subprocess.Popen(
                [str(Path(PYTHON).parent / "py-spy"), "record", "--subprocesses", "--nonblocking", *only_cpu,
                 "-r", os.environ.get("DSAR_BENCH_PROFILE_RATE", "200"), "--format", "raw",
                 "-p", str(process.pid), "-o", f"{directory}/{self.name}-{role}.txt"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))

    def workers_stop(self) -> None:
        """Stop the Celery workers and leave the web server running, as on a web host of its own."""
        workers, self.processes = self.processes[1:], self.processes[:1]
        for process in workers:
            process.send_signal(signal.SIGTERM)  # a warm shutdown: a task running finishes
        for process in workers:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    def stop(self) -> None:
        for spy in self.spies:
            spy.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.wait(30)
        self.spies.clear()
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        self.processes.clear()
        if self.mail.is_relative_to(MAIL_ROOT):
            shutil.rmtree(self.mail, ignore_errors=True)  # memory, not disk: a run's mail goes with it

    def __enter__(self) -> Product:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def rss_mb(self) -> dict[str, float]:
        """Resident memory of the web server and of each worker, children included, in MB."""
        sizes: dict[str, float] = {}
        for index, process in enumerate(self.processes):
            with contextlib.suppress(psutil.NoSuchProcess):
                parent = psutil.Process(process.pid)
                total = parent.memory_info().rss + sum(c.memory_info().rss for c in parent.children(recursive=True))
                sizes["web" if index == 0 else f"worker{index}"] = total / 1e6
        return sizes

    # --- the client ---------------------------------------------------------------------------------

    def sql(self) -> psycopg.Connection:
        return psycopg.connect(self.env["DATABASE_URL"], autocommit=True)


class Mailbox:
    """Reads verification codes from the mail the product writes as files. Django's file backend
    may append a second message to a file (its names are per second and per backend object), so
    each file is read on from where the last read stopped."""

    SCAN_EVERY = 0.02  # seconds between two reads of the directory, whichever thread asks
    SETTLED = 2.0  # a file read to its end and this old gets no more mail (its name was per second)

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.offsets: dict[str, int] = {}
        self.codes: dict[str, str] = {}
        self.lock = threading.Lock()
        self.scanned = (0, 0.0)  # directory mtime, and when it was last scanned
        self.settled: set[str] = set()
        self.read_at: dict[str, float] = {}

    def code_for(self, email: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if email not in self.codes:
                    self._scan()
                if email in self.codes:
                    return self.codes.pop(email)
            time.sleep(0.005)
        raise SystemExit(f"no code arrived for {email} within {timeout}s")

    def _scan(self) -> None:
        # Look again only now and then, and only when a file was added or after a while (a message
        # appended to an existing file does not touch the directory); files that have settled are
        # not looked at again: on two cores the client must not eat the product's CPU.
        mtime, now = os.stat(self.directory).st_mtime_ns, time.monotonic()
        if now - self.scanned[1] < self.SCAN_EVERY or (mtime == self.scanned[0] and now - self.scanned[1] < 0.1):
            return
        self.scanned = (mtime, now)
        for entry in os.scandir(self.directory):
            if entry.name in self.settled:
                continue
            offset = self.offsets.get(entry.name, 0)
            if entry.stat().st_size <= offset:
                if offset and now - self.read_at.get(entry.name, now) > self.SETTLED:
                    self.settled.add(entry.name)
                continue
            self.read_at[entry.name] = now
            with open(entry.path, "rb") as handle:
                handle.seek(offset)
                content = handle.read()
            complete = content.rfind(SEPARATOR)  # a message still being written waits for the next scan
            if complete < 0:
                continue
            self.offsets[entry.name] = offset + complete + len(SEPARATOR)
            for message in content[:complete].split(SEPARATOR):
                to = re.search(rb"^To: (.+)$", message, re.M)
                code = CODE.search(message.split(b"\n\n", 1)[-1])
                if to and code and b"Your verification code" in message:
                    self.codes[to.group(1).decode().strip()] = code.group(1).decode()


def file_and_verify(session: requests.Session, product: Product, mailbox: Mailbox, email: str, type: str = "access") -> tuple[str, float]:
    """File and verify a request through the API; returns (id, when verification was sent)."""
    created = session.post(f"{product.url}/api/v1/requests", json={"type": type, "email": email}, timeout=30)
    created.raise_for_status()
    request_id = created.json()["id"]
    code = mailbox.code_for(email)
    sent = time.perf_counter()
    verified = session.post(f"{product.url}/api/v1/requests/{request_id}/verify", json={"code": code}, timeout=30)
    verified.raise_for_status()
    return request_id, sent


def wait_final(conn: psycopg.Connection, request_ids, timeout: float, interval: float = 0.002, expected: int | None = None) -> dict[str, float]:
    """Poll the database until every request is final; returns when each was first seen final.
    `request_ids` may be a callable giving the ids filed so far, with `expected` the final count."""
    ids = request_ids if callable(request_ids) else (lambda: request_ids)
    expected = expected if expected is not None else len(request_ids)
    pending, done = set(ids()), {}
    deadline = time.monotonic() + timeout
    while (pending or len(done) < expected) and time.monotonic() < deadline:
        pending |= set(ids()) - set(done)
        if not pending:
            time.sleep(interval)
            continue
        rows = conn.execute("SELECT id::text, status FROM dsar_request WHERE id = ANY(%s::uuid[])", [list(pending)]).fetchall()
        now = time.perf_counter()
        for request_id, status in rows:
            if status in ("completed", "failed"):
                done[request_id] = now
                pending.discard(request_id)
        if pending:
            time.sleep(interval)
    if pending or len(done) < expected:
        raise SystemExit(f"{expected - len(done)} requests did not finish within {timeout}s")
    return done


@contextlib.contextmanager
def timed() -> Iterator[dict[str, Any]]:
    box: dict[str, Any] = {}
    started = time.perf_counter()
    yield box
    box["seconds"] = time.perf_counter() - started
