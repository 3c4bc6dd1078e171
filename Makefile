# make run: use the product. make test: the whole suite. make bench: the benchmarks.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test bench install

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is needed, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

run: install
	$(PY) -m dsar.stack run

test: install
	$(PY) -m dsar.stack test

bench: install
	$(PY) -m dsar.stack bench $(if $(BENCH),--only $(BENCH),)
