# make run: use the product. make test: the whole suite. make bench: the benchmarks.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test bench chaos cluster install browser gettext audit config-docs mutate messages
CHROMIUM ?= /usr/bin/chromium

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is needed, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	@echo "installing requirements into $(VENV)" >&2
	@$(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip >&2
	@$(PY) -m pip install --quiet -r requirements.txt >&2
	@touch $@

run: install
	$(PY) -m devstack run

# The browser tests drive Debian's Chromium (Playwright's own browser download cannot work here).
browser:
	@test -x $(CHROMIUM) || { echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# The translation tests compile the catalogue with GNU gettext's msgfmt, as Django does.
gettext:
	@command -v msgfmt >/dev/null || { echo "installing GNU gettext for the translation tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gettext >/dev/null; }

test: install browser gettext
	$(PY) -m devstack test

# Figures go to stdout as JSON lines (contract §8); everything else goes to stderr.
bench: install
	@{ command -v wrk && command -v zip && command -v valgrind; } >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk zip valgrind >/dev/null; } >&2
	@$(PY) -m devstack bench $(if $(BENCH),--only $(BENCH),)

# Faults on purpose: workers SIGKILLed and the broker killed mid-batch; the last line is the summary.
chaos: install
	@$(PY) -m devstack chaos $(CHAOS_ARGS)

# The product as separate hosts (network namespaces, so root): two web hosts behind HAProxy, three
# worker hosts, RabbitMQ, PostgreSQL and S3; mid-batch hosts are cut off, killed and stopped and the
# broker restarted. The last line is the summary (contract §8, with hosts_lost).
cluster: install
	@$(PY) -m benchmarks.cluster $(CLUSTER_ARGS)

# Mutants of the modules that carry the guarantees, each against the tests that reach it, and a summary
# per module (tests/mutation). MUTATE=dsar/deadlines.py for some of them. Hours for them all.
mutate: install
	$(PY) -m tests.mutation $(MUTATE)

# Known vulnerabilities in the pinned dependencies (needs PyPI's JSON API, which this build
# machine's registry mirror does not serve).
audit: install
	$(PY) -m pip install --quiet pip-audit==2.10.1
	$(PY) -m pip_audit -r requirements.txt --vulnerability-service pypi --progress-spinner off

# The catalogues (dsar/locale) brought up to date with the strings marked for translation, then
# compiled; translate what is new, then run it again. LANGUAGE=fr starts a new one (docs/languages.md).
messages: install gettext
	$(PY) -m dsar.management.commands.makemessages dsar/locale $(LANGUAGE)

# The configuration reference, generated from dsar/config.py (tests/dsar/test_config.py checks it is current).
config-docs: install
	$(PY) -m dsar.config > docs/configuration.md
