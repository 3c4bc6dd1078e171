"""Python runs this module at the start of every process while `make mutate` names this directory in
PYTHONPATH. It does something only in a process a test starts (the Celery worker above all) while
mutmut runs the suite to learn which tests reach which function (MUTANT_UNDER_TEST=stats).

mutmut's trampolines record such a call only in mutmut's own process. Here each mutated function the
process runs is written to MUTATION_HITS_FILE, one name a line, for tests/mutation/plugin.py to credit
to the test running at the time.
"""

import os

if os.environ.get("MUTANT_UNDER_TEST") == "stats" and os.environ.get("MUTATION_HITS_FILE"):
    from mutmut.mutation import trampoline

    hits = os.open(os.environ["MUTATION_HITS_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def record_trampoline_hit(name: str, caller: str | None = None) -> None:
        """What mutmut records in its own process, written where that process reads it."""
        os.write(hits, f"{name}\n".encode())

    # The trampolines call this module-level name; mutmut's own would keep the record in this process.
    trampoline.record_trampoline_hit = record_trampoline_hit
