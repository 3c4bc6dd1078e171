"""heavy_export and heavy_erase: one subject with 1 GiB of content in 1,000 files and 1,000,000
interaction rows.

heavy_export times an access request from verification to completed, and samples the resident
memory of the web server and of each worker process throughout; its reference, timed in the same
run, is `zip -0` of the same files plus a `COPY ... TO STDOUT` of the same rows. heavy_erase times
a deletion request; its reference is a plain SQL DELETE of the same rows plus removing the files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time

import psutil
import psycopg
import requests

from connectors.content import subject_prefix

from .harness import Mailbox, Product, figure, file_and_verify, note, wait_final

EMAIL = "heavy.subject@example.com"
FILES = int(os.environ.get("DSAR_BENCH_HEAVY_FILES", "1000"))
FILE_BYTES = int(os.environ.get("DSAR_BENCH_HEAVY_FILE_BYTES", str(1024 * 1024)))
ROWS = int(os.environ.get("DSAR_BENCH_HEAVY_ROWS", "1000000"))


def _load(product: Product) -> None:
    """Load (or reload) the heavy subject: its rows with COPY, its files streamed."""
    script = (
        "from estate.loader import estate_load, estate_parse;"
        f"estate_load(estate_parse({{'subjects': [{{'email': '{EMAIL}', 'accounts': {{'name': 'Heavy',"
        f" 'searches': [f'query {{n}}' for n in range({ROWS})]}},"
        f" 'content': {{'files': [{{'path': f'media/file{{n:04d}}.bin', 'size_bytes': {FILE_BYTES}, 'category': 'content'}}"
        f" for n in range({FILES})]}}}}]}}))"
    )
    started = time.monotonic()
    product.manage("shell", "-c", script)
    note(f"heavy: loaded {ROWS} rows and {FILES} files in {time.monotonic() - started:.0f}s")


class _MemoryWatch(threading.Thread):
    """Peak resident memory (RSS) of each product process, workers' pool children counted apart;
    and the peak of their sum as proportional set size (PSS), which counts pages the forked
    processes share once rather than once per process."""

    def __init__(self, product: Product) -> None:
        super().__init__(daemon=True)
        self.product, self.peaks, self.total_peak, self.running = product, {}, 0.0, True

    def run(self) -> None:
        while self.running:
            total = 0.0
            for index, process in enumerate(self.product.processes):
                try:
                    parent = psutil.Process(process.pid)
                    family = [parent, *parent.children(recursive=True)]
                except psutil.NoSuchProcess:
                    continue
                for member in family:
                    try:
                        memory = member.memory_full_info()
                    except psutil.NoSuchProcess:
                        continue
                    key = f"{'web' if index == 0 else 'worker'}:{member.pid}"
                    self.peaks[key] = max(self.peaks.get(key, 0.0), memory.rss / 1e6)
                    total += memory.pss / 1e6
            self.total_peak = max(self.total_peak, total)
            time.sleep(0.1)


def _request(product: Product, type: str) -> tuple[float, dict[str, float], float]:
    mailbox, session = Mailbox(product.mail), requests.Session()
    watch = _MemoryWatch(product)
    watch.start()
    os.sync()  # the product and its reference each start with no other writes pending
    request_id, sent = file_and_verify(session, product, mailbox, EMAIL, type=type)
    with product.sql() as conn:
        done = wait_final(conn, [request_id], timeout=900, interval=0.05)[request_id]
        status = conn.execute("SELECT status, failure_reason FROM dsar_request WHERE id = %s", [request_id]).fetchone()
    watch.running = False
    watch.join()
    if status[0] != "completed":
        raise SystemExit(f"heavy {type}: the request ended {status[0]}: {status[1]}")
    return done - sent, watch.peaks, watch.total_peak


def _content_dir(product: Product) -> str:
    return str(product.data / "content" / subject_prefix(EMAIL))


def _copy_rows(product: Product, sql: str) -> float:
    started = time.perf_counter()
    with psycopg.connect(product.env["DATABASE_URL"] + "_accounts") as conn, conn.cursor() as cursor, cursor.copy(sql) as copy:
        for _block in copy:
            pass
    return time.perf_counter() - started


def _export_reference(product: Product) -> float:
    """`zip -0` of the subject's files plus COPY of its rows to nowhere."""
    with tempfile.TemporaryDirectory(dir=product.data) as scratch:
        os.sync()
        started = time.perf_counter()
        subprocess.run(["zip", "-0", "-q", "-r", f"{scratch}/ref.zip", "."], cwd=_content_dir(product), check=True)
        zipped = time.perf_counter() - started
    copied = _copy_rows(product, "COPY (SELECT s.* FROM searches s JOIN users u ON u.id = s.user_id "
                                 f"WHERE lower(u.email) = '{EMAIL}') TO STDOUT")
    return zipped + copied


def _erase_reference(product: Product) -> float:
    """A plain SQL DELETE of the same rows, and removing the same files."""
    os.sync()
    started = time.perf_counter()
    with psycopg.connect(product.env["DATABASE_URL"] + "_accounts") as conn:
        conn.execute(f"DELETE FROM searches WHERE user_id IN (SELECT id FROM users WHERE lower(email) = '{EMAIL}')")
        conn.execute(f"DELETE FROM users WHERE lower(email) = '{EMAIL}'")
    shutil.rmtree(_content_dir(product))
    return time.perf_counter() - started


def _memory_figures(bench: str, peaks: dict[str, float], total_peak: float) -> None:
    workers = [v for k, v in peaks.items() if k.startswith("worker")]
    figure(bench, "worker_peak_rss", max(workers), "MB", target=300, direction="max")
    figure(bench, "web_and_workers_peak_pss", total_peak, "MB", target=600, direction="max")


def _product() -> Product:
    product = Product(name="heavy", workers=1, concurrency=4)
    product.database_ensure()
    return product


def run_heavy_export() -> None:
    with _product() as product:
        _load(product)
        product.start()
        seconds, peaks, total_peak = _request(product, "access")
        reference = _export_reference(product)
        figure("heavy_export", "verify_to_completed", seconds, "s", target=round(2 * reference, 3), direction="max",
               reference={"name": "zip -0 of the files + COPY TO STDOUT of the rows (s)", "value": round(reference, 3)})
        figure("heavy_export", "ratio_to_reference", seconds / reference, "ratio", target=2, direction="max")
        _memory_figures("heavy_export", peaks, total_peak)


def run_heavy_erase() -> None:
    with _product() as product:
        _load(product)
        product.start()
        seconds, peaks, total_peak = _request(product, "deletion")
        product.stop()
        _load(product)
        reference = _erase_reference(product)
        figure("heavy_erase", "verify_to_completed", seconds, "s", target=round(2 * reference, 3), direction="max",
               reference={"name": "SQL DELETE of the rows + removing the files (s)", "value": round(reference, 3)})
        figure("heavy_erase", "ratio_to_reference", seconds / reference, "ratio", target=2, direction="max")
        _memory_figures("heavy_erase", peaks, total_peak)
