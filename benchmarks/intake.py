"""intake: POST /api/v1/requests from wrk on loopback, 32 connections, 30 seconds.

Every request files a new request for a distinct address (the Lua script numbers them), so each
one does the real work: validation, rate-limit counters in Redis, the row, its audit entry and its
code email in one statement, and the code email sent by a worker. The reference is the same server answering a minimal view.
It also accounts for the machine's CPU during the run: how busy it was, and the CPU time each
filing cost in the web server, in PostgreSQL and in all (wrk, Redis and the rest included).

The code emails are sent by the workers, on the same two cores. So the load runs a second time on
the web tier alone, the workers stopped, as on a web host of its own with the workers elsewhere;
what the second run queued is deleted at the end.

The tables are not emptied first: a deployment files into tables that already hold its requests.
Emptied, the sessions could plan their look-ups for an empty table and keep those plans for the
whole run: in the full suite, the foreign-key check on a request and the audit seal's look-up of the
last seal then read the whole table at every filing (809 and 39 buffers a call, against 3 and 2),
which doubled PostgreSQL's CPU a filing.

Time on a shared machine moves by a third from one run to the next, so the web's cost is also
counted in instructions (callgrind, `benchmarks/filing_cost.py`), which do not move: a change to
the filing path shows in that figure whatever the machine is doing. It is counted with the workers
stopped: one filing in a burst, when the email task is already rung, as under the load.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time

import psutil

from .harness import PYTHON, ROOT, CpuWatch, Product, figure, file_create_ms, instructions_counted, machine_busy, note

DURATION = int(os.environ.get("DSAR_BENCH_INTAKE_SECONDS", "30"))
FILE_SCRIPT = """
counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"type": "access", "email": "intake.%d.%d@example.com"}', math.random(1, 1000000000), counter)
  return wrk.format("POST", "/api/v1/requests", {["Content-Type"] = "application/json"}, body)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d\\n", summary.requests, summary.errors.status + summary.errors.connect
    + summary.errors.read + summary.errors.write + summary.errors.timeout, latency:percentile(50), latency:percentile(99), summary.duration))
end
"""


def _wrk(url: str, script: str, product: Product | None = None) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    watch = CpuWatch(product) if product else None
    if watch:
        watch.start()
    machine = psutil.cpu_times()
    result = subprocess.run(["wrk", "-t", "2", "-c", "32", "-d", f"{DURATION}s", "--latency", "-s", handle.name, url],
                            capture_output=True, text=True, check=True)
    after = psutil.cpu_times()
    used = {name: seconds for name, seconds in watch.stop().items() if name in ("web", "worker", "postgres", "postgres_background", "redis")} if watch else {}
    if watch:
        used["web_system"] = watch.system["web"]
    os.unlink(handle.name)
    line = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+)", result.stdout)
    requests_, errors, p50, p99, duration = (int(x) for x in line.groups())
    busy, share = machine_busy(machine, after)
    return {"rps": requests_ / (duration / 1e6), "errors": errors, "p50": p50 / 1000, "p99": p99 / 1000,
            "busy": share, "cpu_ms": 1000 * busy / requests_, **{f"{k}_ms": 1000 * v / requests_ for k, v in used.items()}}


def _instructions_per_call(product: Product, paths: list[str], low: int = 20, high: int = 120) -> dict[str, float]:
    """Instructions the web process spends on one call of each path: two callgrind runs per path
    (`low` and `high` calls after the same warm-up) run side by side, and their difference divided
    by `high - low`."""
    collected = instructions_counted({(path, count): [PYTHON, "-m", "benchmarks.filing_cost", path, str(count)]
                                      for path in paths for count in (low, high)}, product.env)
    return {path: (collected[path, high] - collected[path, low]) / (high - low) for path in paths}


EMAILS_WARM, EMAILS_LOW, EMAILS_HIGH = 10, 40, 140  # one batch of fifty, and three: they differ by two whole batches


def _instructions_per_email(product: Product) -> float:
    """Instructions the mail worker spends sending one code email (benchmarks/email_cost.py): two
    callgrind runs side by side, each on emails of its own filed beforehand with the workers
    stopped, over the same warm-up and EMAILS_LOW or EMAILS_HIGH more emails."""
    for count in (EMAILS_LOW, EMAILS_HIGH):
        subprocess.run([PYTHON, "-m", "benchmarks.email_cost", "file", str(count), str(EMAILS_WARM + count)],
                       cwd=ROOT, env=product.env, check=True)
    counted = instructions_counted({count: [PYTHON, "-m", "benchmarks.email_cost", "send", str(count)] for count in (EMAILS_LOW, EMAILS_HIGH)},
                                   product.env)
    return (counted[EMAILS_HIGH] - counted[EMAILS_LOW]) / (EMAILS_HIGH - EMAILS_LOW)


def _emails_drained(product: Product, timeout: float = 120) -> tuple[int, float]:
    """Code emails still queued when the load ends, and the seconds until none is."""
    started = time.monotonic()
    with product.sql() as sql:
        pending = left = sql.execute("SELECT count(*) FROM dsar_outgoingemail").fetchone()[0]
        while left and time.monotonic() - started < timeout:
            time.sleep(0.05)
            left = sql.execute("SELECT count(*) FROM dsar_outgoingemail").fetchone()[0]
    if left:
        raise SystemExit(f"intake: {left} code emails still queued {timeout:.0f}s after the load ended")
    return pending, time.monotonic() - started


def run() -> None:
    with Product(name="intake", workers=1, concurrency=1) as product:
        product.database_ensure()
        product.start(keep_requests=True)
        reference = _wrk(f"{product.url}/healthz/ready", FILE_SCRIPT.replace("POST", "GET").replace("/api/v1/requests", "/healthz/ready"))
        measured = _wrk(product.url, FILE_SCRIPT, product)
        pending, drained = _emails_drained(product)
        # The same load on the web tier alone, as on a host of its own with the workers elsewhere.
        product.workers_stop()
        alone = _wrk(product.url, FILE_SCRIPT, product)
        ref = {"name": "a minimal view on the same server (req/s)", "value": round(reference["rps"], 1)}
        figure("intake", "requests_per_second", measured["rps"], "req/s", target=500, direction="min", reference=ref)
        figure("intake", "p99_latency", measured["p99"], "ms", target=100, direction="max")
        figure("intake", "p50_latency", measured["p50"], "ms")
        figure("intake", "errors", measured["errors"], "count", target=0, direction="max")
        # Where the machine's time went: a busy share near 1 means the figure is the CPU's, not a wait.
        figure("intake", "machine_cpu_busy", measured["busy"], "share of 2 cores")
        figure("intake", "cpu_ms_per_request", measured["cpu_ms"], "ms", reference={"name": "at 500 req/s, 2 cores allow (ms)", "value": 4.0})
        figure("intake", "web_cpu_ms_per_request", measured["web_ms"], "ms")
        figure("intake", "web_system_cpu_ms_per_request", measured["web_system_ms"], "ms")
        # Why the mail sink is in memory: what a message's file costs there, and on the data disk.
        ref = {"name": "on the data disk (ms)", "value": round(file_create_ms(product.data), 3)}
        figure("intake", "mail_file_cpu_ms", file_create_ms(product.mail), "ms", reference=ref)
        figure("intake", "postgres_cpu_ms_per_request", measured["postgres_ms"], "ms")
        figure("intake", "postgres_background_cpu_ms_per_request", measured["postgres_background_ms"], "ms")  # of which not the filings' sessions
        # The code emails go out from the workers: their CPU, and how far they were behind.
        figure("intake", "worker_cpu_ms_per_request", measured["worker_ms"], "ms")
        figure("intake", "redis_cpu_ms_per_request", measured["redis_ms"], "ms")
        figure("intake", "emails_queued_at_end", pending, "count")
        figure("intake", "emails_sent_within", drained, "s after the load ended")
        figure("intake", "requests_per_second_web_alone", alone["rps"], "req/s")
        figure("intake", "p99_latency_web_alone", alone["p99"], "ms")
        figure("intake", "web_cpu_ms_per_request_web_alone", alone["web_ms"], "ms")
        if shutil.which("valgrind"):
            counted = _instructions_per_call(product, ["/api/v1/requests", "/healthz/ready"])
            ref = {"name": "the minimal view, in the same process (instructions)", "value": round(counted["/healthz/ready"])}
            figure("intake", "web_instructions_per_filing", counted["/api/v1/requests"], "instructions", reference=ref)
            figure("intake", "mail_instructions_per_email", _instructions_per_email(product), "instructions")
        else:
            note("intake: valgrind is missing, so the web's and the mail worker's instructions are not counted")
        with product.sql() as sql:  # the code emails of the web-alone run and the counts, to addresses that do not exist
            sql.execute("DELETE FROM dsar_outgoingemail")
