"""Loaded into every pytest session mutmut starts (`pytest_add_cli_args` in pyproject.toml), for what
mutmut cannot know about this suite.

A test run starts processes of its own, the Celery worker above all, and they carry the mutant under
test: they inherit MUTANT_UNDER_TEST. When mutmut stops a run that timed out (SIGXCPU) or that it
interrupts (SIGTERM), the run's processes are killed first, so that no worker carrying one mutant
outlives its run and takes the tasks of the next mutant's tests.

In the run that learns which tests reach which function (MUTANT_UNDER_TEST=stats), the functions
those processes ran are read at the end of each test from MUTATION_HITS_FILE (startup/sitecustomize.py
writes them) and recorded for that test, as mutmut's trampolines record the calls made in this process.
A task still running when its test ends is credited to the next test.

mutmut lists a mutant's tests fastest first and stops at the first failure, but pytest-django puts
the tests without a database last. In the run of a mutant, the tests go in this order: those that
killed another mutant of its function (KILLERS, kept in mutants/ between runs), the tests without a
database (the unit tests, the quickest to fail), then the database tests in pytest-django's order.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

import psutil
import pytest
from mutmut.stats import record_trampoline_hit

STOPPING_SIGNALS = (signal.SIGXCPU, signal.SIGTERM)
# What makes pytest-django give a test a database.
DATABASE_FIXTURES = {"db", "transactional_db", "live_server"}
KILLERS = "mutation-killers.json"


def stop_children_then_die(signum: int, frame) -> None:
    """Kill every process this run started, then die of `signum` as if this handler were not here."""
    children = psutil.Process().children(recursive=True)
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(children, timeout=10)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


class SubprocessHits:
    """The functions named in MUTATION_HITS_FILE since the last read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def read(self) -> set[str]:
        if not self.path.exists():
            return set()
        with self.path.open("rb") as hits:
            hits.seek(self.offset)
            data = hits.read()
        complete = data[: data.rfind(b"\n") + 1]  # a line being written is read next time
        self.offset += len(complete)
        return set(complete.decode().split())


class Killers:
    """For each mutated function, the tests that failed against one of its mutants."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def of(self, function: str) -> list[str]:
        return self.read().get(function, [])

    def add(self, function: str, test: str) -> None:
        known = self.read()
        if test not in known.setdefault(function, []):
            known[function].append(test)
            self.path.write_text(json.dumps(known, indent=1))

    def read(self) -> dict[str, list[str]]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}


class MutationPlugin:
    def __init__(self, config) -> None:
        self.previous_handlers: dict[int, object] = {}
        self.hits: SubprocessHits | None = None
        self.killers = Killers(config.rootpath / KILLERS)
        mutant = os.environ.get("MUTANT_UNDER_TEST", "")
        # The function of the mutant under test ("dsar.deadlines.x_due_at_for"); none in mutmut's
        # other runs (stats, clean, forced failure).
        self.function = mutant.partition("__mutmut_")[0] if "__mutmut_" in mutant else ""

    def pytest_sessionstart(self, session) -> None:
        for signum in STOPPING_SIGNALS:
            self.previous_handlers[signum] = signal.signal(signum, stop_children_then_die)
        if os.environ.get("MUTANT_UNDER_TEST") == "stats" and os.environ.get("MUTATION_HITS_FILE"):
            self.hits = SubprocessHits(Path(os.environ["MUTATION_HITS_FILE"]))

    def pytest_sessionfinish(self, session) -> None:
        for signum, handler in self.previous_handlers.items():
            signal.signal(signum, handler)
        self.hits = None

    # After pytest-django's own ordering, which the sort keeps among the database tests.
    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        if self.function:
            killers = set(self.killers.of(self.function))
            items.sort(key=lambda item: (item.nodeid not in killers, uses_database(item)))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.function and report.failed:
            self.killers.add(self.function, report.nodeid)

    # First, so that the hits are recorded before mutmut credits this test with them.
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_teardown(self, item) -> None:
        if self.hits:
            for name in self.hits.read():
                record_trampoline_hit(name)


def uses_database(item: pytest.Item) -> bool:
    return bool(item.get_closest_marker("django_db")) or not DATABASE_FIXTURES.isdisjoint(item.fixturenames)


def pytest_configure(config) -> None:
    config.pluginmanager.register(MutationPlugin(config), "mutation")
