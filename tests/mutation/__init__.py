"""Mutation testing (`make mutate`): mutmut under the test harness's services.

`__main__` starts the services and runs mutmut, then prints a summary per module; `plugin` is loaded
into every pytest session mutmut starts; `startup/sitecustomize.py` runs in the processes the tests
start. The modules mutated are one list, `only_mutate` in pyproject.toml's [tool.mutmut].

What a figure means: a mutant is killed when one of the tests that reach its function fails (or
times out); it survived when they all pass; "no tests" when no test reaches its function. The
survival rate is survived plus no tests over the mutants tested, and `make mutate` fails at 10 %.

The Celery worker, and every other process a test starts, run the mutant too: they inherit
MUTANT_UNDER_TEST from the test run that starts them (the worker is started by each mutant's own
session). mutmut alone would not know which tests reach a function through them, because its
trampolines record calls only in its own process: the worker's functions would show "no tests",
and tests that reach a function only through the worker would not be run against its mutants.
startup/sitecustomize.py records what those processes run and the plugin credits it to the test
running at the time; a task still running when its test ends is credited to the next test. Without
it, the worker's lease keeper and the export's receipts met no test at all, and most functions of the
SQL connector and of exports missed tests that reach them only there. Tests that reach the code only
through a browser or processes of their own (tests/browser, test_chaos.py) are left out.
"""
