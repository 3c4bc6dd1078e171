"""throughput: 500 access requests for distinct subjects of a 10,000-subject estate, filed at once.

The figure is completed requests per minute, from the first filing to the last completion, and
how steadily they finish (when the first, half and all were done). The reference runs the same
gathers in one process with no queue, no staging and no archive, once before the product and once
after: the ratio shows what the workflow costs on top of the connectors themselves. Last, the
workers' instructions per access request are counted under callgrind (benchmarks/request_cost.py),
a figure that does not move with the machine's speed.
"""

from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import requests

from connectors.base import Identity
from estate.generate import subject_email
from devstack import WORKER_POOL

from .harness import (
    PYTHON,
    CpuWatch,
    Mailbox,
    Product,
    figure,
    file_and_verify,
    instructions_counted,
    machine_busy,
    note,
    wait_final,
)

SUBJECTS = 10_000
REQUESTS = 500
SEED = 11
CLIENTS = 16
# The default configuration: one worker process with a pool of 4 (measured best on 2 cores: the
# pool overlaps the waits on PostgreSQL, Redis and the helpdesk). Overridable for experiments.
CONCURRENCY = int(os.environ.get("DSAR_BENCH_CONCURRENCY", str(WORKER_POOL)))
WORKERS = int(os.environ.get("DSAR_BENCH_WORKERS", "1"))
POOL = os.environ.get("DSAR_BENCH_POOL", "prefork")
REFERENCE_BEFORE_OFFSET = 10  # subjects 10, 30, 50, ...: none of the run's (0, 20, 40, ...) nor scale's (offsets 1, 2, 4)
COST_OFFSET = 5  # subjects 5, 25, 45, ...: for the workers' instruction count, none of the above
COST_WARM, COST_LOW, COST_HIGH = 3, 2, 32  # requests: warm-up, then the two counts whose difference is taken (30 apart: a run's own noise shared among more)


def estate(product: Product) -> None:
    product.database_ensure()
    product.estate_generate(subjects=SUBJECTS, seed=SEED)


def measure(product: Product, offset: int = 0) -> dict[str, float]:
    """File REQUESTS requests at once; returns timings in seconds from the first filing."""
    mailbox = Mailbox(product.mail)
    emails = [subject_email(offset + i * (SUBJECTS // REQUESTS), SEED) for i in range(REQUESTS)]
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=CLIENTS))
    client = psutil.Process().cpu_times()
    watch = CpuWatch(product)
    watch.start()
    machine = psutil.cpu_times()
    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(file_and_verify, session, product, mailbox, email) for email in emails]
        with product.sql() as conn:
            # Watch completions while requests are still being filed: they should finish steadily.
            done = wait_final(conn, lambda: [f.result()[0] for f in futures if f.done()], expected=REQUESTS, timeout=900, interval=0.05)
            ids = [f.result()[0] for f in futures]
            failed = conn.execute("SELECT count(*) FROM dsar_request WHERE id = ANY(%s::uuid[]) AND status <> 'completed'", [ids]).fetchone()[0]
        filed = max(f.result()[1] for f in futures)
    cpu = watch.stop()
    after = psutil.cpu_times()
    finished = sorted(t - started for t in done.values())
    used = psutil.Process().cpu_times()
    return {"filed": filed - started, "first": finished[0], "half": finished[len(finished) // 2], "all": finished[-1], "failed": failed,
            "client_cpu": used.user + used.system - client.user - client.system, "busy": machine_busy(machine, after)[1],
            "cpu_ms": {name: 1000 * seconds / REQUESTS for name, seconds in cpu.items()},
            "system_ms": {name: 1000 * seconds / REQUESTS for name, seconds in watch.system.items()}}


def reference(product: Product, offset: int = 0) -> float:
    """The same gathers in this one process, one after another, for REQUESTS subjects spaced as the
    run's are, from `offset`: requests per minute."""
    import os

    os.environ.update({k: v for k, v in product.env.items() if k.startswith(("DATABASE_URL", "DSAR_"))})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dsar.settings")  # when run alone, no earlier benchmark set it
    import django

    django.setup()
    from connectors.registry import connector_get, connector_names

    emails = [subject_email(offset + i * (SUBJECTS // REQUESTS), SEED) for i in range(REQUESTS)]
    started = time.perf_counter()
    for email in emails:
        for name in connector_names():
            connector = connector_get(name)
            for item in connector.gather(Identity(email=email)):
                if hasattr(item, "ref"):
                    with connector.open_file(item.ref) as handle:
                        while handle.read(1 << 20):
                            pass
    return REQUESTS / (time.perf_counter() - started) * 60


def _verified(subjects: list[int]) -> list[str]:
    """An access request for each subject, filed and verified through the product's services in
    this process (set up by `reference`), so approved with its tasks created; the workers are
    stopped, so no one runs them. Each request's task ids, comma-separated."""
    from dsar import services, verification
    from dsar.models import ConnectorTask

    verified = []
    for subject in subjects:
        request = services.request_create(type="access", email=subject_email(subject, SEED))
        services.request_verify(request_id=request.pk, code=verification.code_for(request))
        verified.append(",".join(str(pk) for pk in ConnectorTask.objects.filter(request=request).order_by("pk").values_list("pk", flat=True)))
    return verified


def worker_instructions(product: Product) -> float:
    """The instructions the workers' code spends on one typical access request (benchmarks/request_cost.py).
    Two callgrind runs take the same subjects in the same order, one COST_HIGH - COST_LOW further:
    the difference is what those requests cost, and a subject costs what it did in the last run."""
    subjects = [COST_OFFSET + number * (SUBJECTS // REQUESTS) for number in range(COST_WARM + COST_HIGH)]
    runs = {count: _verified(subjects[:COST_WARM + count]) for count in (COST_LOW, COST_HIGH)}
    # One after the other: side by side, the two took the same subjects' requests at the same time,
    # and the difference moved by a third from one run to the next; apart, by a thousandth.
    counted = {count: instructions_counted({count: [PYTHON, "-m", "benchmarks.request_cost", *tasks]}, product.env)[count]
               for count, tasks in runs.items()}
    return (counted[COST_HIGH] - counted[COST_LOW]) / (COST_HIGH - COST_LOW)


def run() -> None:
    with Product(name="throughput", workers=WORKERS, concurrency=CONCURRENCY, pool=POOL) as product:
        estate(product)
        # The reference runs before and after the product, since this machine's speed moves within
        # minutes; before, on other subjects than the run's, so that it warms no cache for the run.
        before = reference(product, offset=REFERENCE_BEFORE_OFFSET)
        product.start()
        timings = measure(product)
        product.stop()
        per_minute = REQUESTS / timings["all"] * 60
        note(f"throughput: {timings}")
        after = reference(product)
        ref = 2 / (1 / before + 1 / after)  # both runs' requests over both runs' time
        figure("throughput", "completed_per_minute", per_minute, "req/min", target=1200, direction="min",
               reference={"name": "same gathers in one process, no queue, before and after (req/min)", "value": round(ref, 1)})
        figure("throughput", "ratio_to_reference", per_minute / ref, "ratio")
        figure("throughput", "reference_before", before, "req/min")  # far apart: the machine's speed moved during the run
        figure("throughput", "reference_after", after, "req/min")
        figure("throughput", "first_completed_after", timings["first"], "s")
        figure("throughput", "half_completed_after", timings["half"], "s")
        figure("throughput", "all_completed_after", timings["all"], "s")
        # The client shares the two cores: what it used is not the product's.
        figure("throughput", "client_cpu_seconds", timings["client_cpu"], "s")
        figure("throughput", "failed", timings["failed"], "count", target=0, direction="max")
        # Where the two cores went, per request: a busy share near 1 means the figure is the CPU's.
        figure("throughput", "machine_cpu_busy", timings["busy"], "share of 2 cores")
        for name, ms in timings["cpu_ms"].items():
            figure("throughput", f"{name}_cpu_ms_per_request", ms, "ms")
        for name in ("web", "worker"):  # of which in the kernel (creating files, sockets)
            figure("throughput", f"{name}_system_cpu_ms_per_request", timings["system_ms"][name], "ms")
        if shutil.which("valgrind"):  # a count that does not move with the machine's speed, as intake's
            figure("throughput", "worker_instructions_per_request", worker_instructions(product), "instructions")
        else:
            note("throughput: valgrind is missing, so the workers' instructions per request are not counted")
