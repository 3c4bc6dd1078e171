# make run: use the product. make test: the whole suite. make bench: the benchmarks.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test bench install browser audit
CHROMIUM ?= /usr/bin/chromium

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is needed, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

run: install
	$(PY) -m dsar.stack run

# The browser tests drive Debian's Chromium (Playwright's own browser download cannot work here).
browser:
	@test -x $(CHROMIUM) || { echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: install browser
	$(PY) -m dsar.stack test

bench: install
	$(PY) -m dsar.stack bench $(if $(BENCH),--only $(BENCH),)

# Known vulnerabilities in the pinned dependencies (needs PyPI's JSON API, which this build
# machine's registry mirror does not serve).
audit: install
	$(PY) -m pip install --quiet pip-audit==2.10.1
	$(PY) -m pip_audit -r requirements.txt --vulnerability-service pypi --progress-spinner off
