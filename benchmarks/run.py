"""`python -m benchmarks.run [--only NAME]`: run the benchmarks, each printing JSON figures."""

from __future__ import annotations

import argparse
import importlib
import sys
import time

from .harness import note

BENCHMARKS = ["latency", "throughput", "heavy_export", "heavy_erase", "intake", "scale", "shop"]
MODULES = {"heavy_export": "heavy", "heavy_erase": "heavy"}


def main() -> int:
    parser = argparse.ArgumentParser(prog="make bench")
    parser.add_argument("--only", choices=BENCHMARKS)
    args = parser.parse_args()
    for name in [args.only] if args.only else BENCHMARKS:
        module = importlib.import_module(f"benchmarks.{MODULES.get(name, name)}")
        started = time.monotonic()
        note(f"{name}: starting")
        getattr(module, f"run_{name}" if name in MODULES else "run")()
        note(f"{name}: done in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
