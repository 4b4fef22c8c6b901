# Two commands on a fresh machine (Python 3.11, pip, apt):
#   make demo   - create .venv, install wattwatch, run the demo end to end on built-in data
#   make test   - the same set-up, then the whole test suite
# Both are idempotent: the venv is rebuilt only when pyproject.toml changes, and system packages
# are installed only when missing.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench setup system-deps clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	bash scripts/system-deps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

system-deps:
	bash scripts/system-deps.sh

demo: $(STAMP)
	$(VENV)/bin/wattwatch demo

# Two pytest-xdist workers, one per core; tests/conftest.py keeps the Spark, broker and InfluxDB users
# on one worker each (one session/server per run). `make test TEST_WORKERS=0` runs in one process.
# Hypothesis runs its "repeatable" profile (tests/conftest.py): the same examples every run.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(PY) -m pytest -q --durations=15 -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder \
		--hypothesis-profile=repeatable

bench: $(STAMP)
	$(VENV)/bin/wattwatch bench ingest

clean:
	rm -rf $(VENV) demo-out bench-out .pytest_cache .hypothesis
