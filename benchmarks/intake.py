"""intake: POST /api/v1/requests from wrk on loopback, 32 connections, 30 seconds.

Every request files a new request for a distinct address (the Lua script numbers them), so each
one does the real work: validation, rate-limit counters in Redis, the row and its audit entry in
one transaction, and the code email. The reference is the same server answering a minimal view.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile

from .harness import Product, figure

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


def _wrk(url: str, script: str) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    result = subprocess.run(["wrk", "-t", "2", "-c", "32", "-d", f"{DURATION}s", "--latency", "-s", handle.name, url],
                            capture_output=True, text=True, check=True)
    os.unlink(handle.name)
    line = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+)", result.stdout)
    requests_, errors, p50, p99, duration = (int(x) for x in line.groups())
    return {"rps": requests_ / (duration / 1e6), "errors": errors, "p50": p50 / 1000, "p99": p99 / 1000}


def run() -> None:
    with Product(name="intake", workers=1, concurrency=1, web_workers=2, web_threads=8) as product:
        product.database_ensure()
        product.start()
        reference = _wrk(f"{product.url}/healthz/ready", FILE_SCRIPT.replace("POST", "GET").replace("/api/v1/requests", "/healthz/ready"))
        measured = _wrk(product.url, FILE_SCRIPT)
        ref = {"name": "a minimal view on the same server (req/s)", "value": round(reference["rps"], 1)}
        figure("intake", "requests_per_second", measured["rps"], "req/s", target=500, direction="min", reference=ref)
        figure("intake", "p99_latency", measured["p99"], "ms", target=100, direction="max")
        figure("intake", "p50_latency", measured["p50"], "ms")
        figure("intake", "errors", measured["errors"], "count", target=0, direction="max")
