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

Every mutant against the whole suite takes more than a day here (services has over two thousand,
and a survivor meets every test that reaches its function). `--sample N` tests N of each module's
mutants drawn at random (the same ones for the same `--seed`; a larger sample holds a smaller one),
and gives the share that survived with the highest share the sample allows at 95 % confidence
(Wilson's bound): the module is within the limit when that bound is (docs/mutation.md). A sample is
drawn from the mutants a first run made; with none made yet, the first configured module is run
first to make them. `--survivors` tests again the sampled mutants that survived, after tests were
added for them.
"""

from __future__ import annotations

import argparse
import fnmatch
import math
import os
import random
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
SURVIVING = ("survived", "no tests")
TESTED = ("killed", "timeout", *SURVIVING)
# The normal quantile of a one-sided 95 % bound.
CONFIDENCE_Z = 1.645
# `mutmut results --all=true` prints one line a mutant: "    dsar.deadlines.x_due_at_for__mutmut_1: killed".
RESULT = re.compile(r"^\s+(?P<name>(?P<module>[\w.]+)\.(?:x_|xǁ)\S*__mutmut_\d+): (?P<status>.+)$")


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
        # A mutant's run first (the plugin stops the processes it started), then mutmut, which waits
        # for the run it started: whatever is left after ten seconds is killed.
        runs = psutil.Process(process.pid).children()
        for run in runs:
            run.terminate()
        _, left = psutil.wait_procs(runs, timeout=10)
        for run in left:
            for child in run.children(recursive=True):
                child.kill()
            run.kill()
        process.kill()

    signal.signal(signal.SIGTERM, stop)
    while True:
        try:
            return process.wait()
        except KeyboardInterrupt:  # mutmut had it too: it stops its mutant's run, then prints what it has
            continue


def mutants_run(selection: list[str]) -> int:
    """`mutmut run` with the suite's services up, of the mutants `selection` names (names or globs)."""
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
        return mutmut_run(["--max-children", "1", *selection])


def mutant_statuses() -> dict[str, str]:
    """Every mutant mutmut has made, by name, with its status ("not checked" until tested)."""
    listing = subprocess.run([MUTMUT, "results", "--all=true"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return {match["name"]: match["status"] for match in map(RESULT.match, listing.splitlines()) if match}


def mutant_module(name: str) -> str:
    """`dsar.deadlines.x_due_at_for__mutmut_1` -> `dsar.deadlines`."""
    return RESULT.match(f" {name}: -")["module"]


def mutants_sample(paths: list[str], size: int, seed: int) -> dict[str, list[str]]:
    """`size` mutants of each module, drawn at random with `seed` (all of them when it has fewer).
    The module's mutants are shuffled and the first `size` taken, so a larger sample holds a smaller."""
    names = sorted(mutant_statuses())
    sample = {}
    for path in paths:
        prefix = module_name(path) + "."
        shuffled = [name for name in names if name.startswith(prefix)]
        random.Random(f"{seed}:{path}").shuffle(shuffled)
        sample[path] = sorted(shuffled[:size])
    return sample


def upper_bound(surviving: int, tested: int) -> float:
    """The highest survival rate that `surviving` of `tested` allows at 95 % confidence (Wilson)."""
    z, rate = CONFIDENCE_Z, surviving / tested
    centre = rate + z * z / (2 * tested)
    spread = z * math.sqrt(rate * (1 - rate) / tested + z * z / (4 * tested * tested))
    return (centre + spread) / (1 + z * z / tested)


def summary(paths: list[str], sample: dict[str, list[str]] | None = None) -> bool:
    """Print each module's counts and survivors; False unless every module (or its sample) was
    tested through and fewer than SURVIVAL_LIMIT of its mutants survived or met no test (for a
    sample, at 95 % confidence)."""
    statuses: dict[str, Counter] = {module_name(path): Counter() for path in paths}
    sampled = {name for names in (sample or {}).values() for name in names}
    made: Counter = Counter()  # each module's mutants, sampled or not
    survivors = []
    for name, status in mutant_statuses().items():
        module = mutant_module(name)
        if module not in statuses:
            continue
        made[module] += 1
        if sample is not None and name not in sampled:
            continue
        statuses[module][status] += 1
        if status in SURVIVING:
            survivors.append(f"{name}: {status}")
    print(f"\n{'module':<24} {'mutants':>8} {'killed':>7} {'timeout':>8} {'survived':>9} {'no tests':>9} {'other':>6} {'survival':>9}")
    within = True
    for path, counts in zip(paths, statuses.values()):
        total, unchecked = sum(counts.values()), counts["not checked"]
        checked = total - unchecked
        surviving = counts["survived"] + counts["no tests"]
        other = checked - counts["killed"] - counts["timeout"] - surviving  # suspicious, segfault, interrupted
        rate = surviving / checked if checked else 1.0
        drawn = sample is not None and total < made[module_name(path)]  # a sample of every mutant is the module whole
        bound = upper_bound(surviving, checked) if checked and drawn else rate
        within &= bound < SURVIVAL_LIMIT and not unchecked
        shown = f"{rate:.1%}" if checked else "-"
        note = f"  ({unchecked} not tested yet)" if unchecked else ""
        if drawn and checked:
            note = f"  a sample: at most {bound:.1%} with 95 % confidence{note}"
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
    parser.add_argument("--sample", type=int, metavar="N", help="test N mutants of each module, drawn at random")
    parser.add_argument("--seed", type=int, default=1, help="which N are drawn (default 1)")
    parser.add_argument("--survivors", action="store_true", help="test again the sampled mutants that survived")
    args = parser.parse_args()
    paths = args.modules
    unknown = [path for path in paths if not any(fnmatch.fnmatch(path, pattern) for pattern in configured)]
    if unknown:
        parser.error(f"not in pyproject.toml's [tool.mutmut] only_mutate: {' '.join(unknown)}")
    if args.sample is not None and args.sample < 1:
        parser.error("--sample: give a number of mutants, 1 or more")
    if args.survivors and args.sample is None:
        parser.error("--survivors goes with --sample")
    started = time.monotonic()
    if args.sample is None:
        code = mutants_run([f"{module_name(path)}.*" for path in paths])
        sample = None
    else:
        paths = paths or configured
        if not mutant_statuses():
            mutants_run([f"{module_name(configured[0])}.*"])  # makes every module's mutants
        sample = mutants_sample(paths, args.sample, args.seed)
        statuses = mutant_statuses()
        # Without --survivors: those not yet tested, or whose run was cut short (a killed run reads "segfault").
        wanted = (lambda status: status in SURVIVING) if args.survivors else (lambda status: status not in TESTED)
        selection = [name for names in sample.values() for name in names if wanted(statuses[name])]
        code = mutants_run(selection) if selection else 0
    print(f"\nmutmut ran for {time.monotonic() - started:.0f}s")
    within = summary(paths or configured, sample)
    return code or (0 if within else 1)


if __name__ == "__main__":
    sys.exit(main())
