"""`make mutate [MUTATE=dsar/deadlines.py]`: mutation testing of the modules that carry the guarantees.

The modules are `only_mutate` under [tool.mutmut] in pyproject.toml. mutmut copies the code to
mutants/ and mutates it there: each function gains a trampoline that runs the original or the mutant
named by MUTANT_UNDER_TEST. It runs the suite once to learn which tests reach which function, then
tests each mutant, one at a time, against those tests only. This starts the services the suite
needs (devstack's, with the suite's configuration, under var/mutation so that `make test` can run
meanwhile), runs `mutmut run`, and prints a summary per module.

The results stay in mutants/: `make mutate` again tests only the mutants not tested yet and those of
functions changed since. After adding tests, name the module to test all its mutants again (they meet
the new tests); after changing tests that already existed, delete mutants/ to start afresh, since
which tests reach which function is learnt once. From the checkout, without services:
`mutmut results` lists the mutants not killed, `mutmut show NAME` shows one, `mutmut browse` both.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from collections import Counter
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = ROOT / "var" / "mutation"
MUTMUT = str(Path(sys.executable).with_name("mutmut"))
# The highest share of a module's mutants that may survive (or meet no test).
SURVIVAL_LIMIT = 0.10
# `mutmut results --all=true` prints one line a mutant: "    dsar.deadlines.x_due_at_for__mutmut_1: killed".
RESULT = re.compile(r"^\s+(?P<module>[\w.]+)\.(?:x_|xǁ)\S*__mutmut_\d+: (?P<status>.+)$")


def modules_configured() -> list[str]:
    """The paths `make mutate` mutates (pyproject.toml's [tool.mutmut] only_mutate)."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]["only_mutate"]


def module_name(path: str) -> str:
    """`dsar/deadlines.py` -> `dsar.deadlines`, the prefix of its mutants' names."""
    return path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def mutmut_run(args: list[str]) -> int:
    """`mutmut run`, stopped with what it started on SIGTERM; on Ctrl-C it stops itself."""
    process = subprocess.Popen([MUTMUT, "run", *args], cwd=ROOT)

    def stop(signum, frame) -> None:
        # A mutant's run first (the plugin stops the processes it started), then mutmut.
        for child in psutil.Process(process.pid).children():
            child.terminate()
        process.terminate()

    signal.signal(signal.SIGTERM, stop)
    while True:
        try:
            return process.wait()
        except KeyboardInterrupt:  # mutmut had it too: it stops its mutant's run, then prints what it has
            continue


def mutants_run(paths: list[str]) -> int:
    """`mutmut run` with the suite's services up; only the mutants of `paths`, when given."""
    os.environ["DSAR_DATA_DIR"] = str(DATA_DIR)
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    hits = DATA_DIR / "subprocess-hits"
    hits.unlink(missing_ok=True)
    os.environ["MUTATION_HITS_FILE"] = str(hits)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent / "startup"), os.environ.get("PYTHONPATH")]))
    import devstack  # after DSAR_DATA_DIR, which it reads on import

    devstack.suite_environment()
    # One mutant at a time: the tests of a run share one test database, Redis and Celery queue.
    with devstack.Services(mode="test"):
        return mutmut_run(["--max-children", "1", *[f"{module_name(path)}.*" for path in paths]])


def summary(paths: list[str]) -> bool:
    """Print each module's counts and survivors; False unless every module was tested through and
    fewer than SURVIVAL_LIMIT of its mutants survived or met no test."""
    listing = subprocess.run([MUTMUT, "results", "--all=true"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    statuses: dict[str, Counter] = {module_name(path): Counter() for path in paths}
    survivors = []
    for line in listing.splitlines():
        if (match := RESULT.match(line)) and match["module"] in statuses:
            statuses[match["module"]][match["status"]] += 1
            if match["status"] in ("survived", "no tests"):
                survivors.append(line.strip())
    print(f"\n{'module':<24} {'mutants':>8} {'killed':>7} {'timeout':>8} {'survived':>9} {'no tests':>9} {'other':>6} {'survival':>9}")
    within = True
    for path, counts in zip(paths, statuses.values()):
        total, unchecked = sum(counts.values()), counts["not checked"]
        checked = total - unchecked
        surviving = counts["survived"] + counts["no tests"]
        other = checked - counts["killed"] - counts["timeout"] - surviving  # suspicious, segfault, interrupted
        rate = surviving / checked if checked else 1.0
        within &= rate < SURVIVAL_LIMIT and not unchecked
        shown = f"{rate:.1%}" if checked else "-"
        note = f"  ({unchecked} not tested yet)" if unchecked else ""
        if not total:
            note = "  no mutants: is the path right?"
        print(f"{path:<24} {total:>8} {counts['killed']:>7} {counts['timeout']:>8} {counts['survived']:>9} "
              f"{counts['no tests']:>9} {other:>6} {shown:>9}{note}")
    print("\n".join(["", "survivors (`mutmut show NAME` shows one):", *survivors] if survivors else []))
    return within


def main() -> int:
    configured = modules_configured()
    parser = argparse.ArgumentParser(prog="make mutate", description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE", help=f"some of: {' '.join(configured)}")
    paths = parser.parse_args().modules
    unknown = [path for path in paths if not any(fnmatch.fnmatch(path, pattern) for pattern in configured)]
    if unknown:
        parser.error(f"not in pyproject.toml's [tool.mutmut] only_mutate: {' '.join(unknown)}")
    started = time.monotonic()
    code = mutants_run(paths)
    print(f"\nmutmut ran for {time.monotonic() - started:.0f}s")
    within = summary(paths or configured)
    return code or (0 if within else 1)


if __name__ == "__main__":
    sys.exit(main())
