# Developer and CI entry points. Everything runs inside the project's venv.
PY := .venv/bin/python
# The interpreter the venv is made from: the distribution's python3.11 where there is one.
# Debian builds it with PGO and LTO into the executable; the pyenv 3.11.7 first on this
# machine's PATH was built with neither (its CONFIG_ARGS: --enable-shared only): pure
# Python ~20% slower, the order consumer's batch path alone ~10% more CPU a message
# (bench/README, session 21; in the whole stack, where system calls and C extensions
# take most of the CPU, the difference was within the noise). `make PYTHON=python3 venv`
# (after removing .venv) picks another.
SYSTEM_PYTHON := $(wildcard /usr/bin/python3.11)
PYTHON ?= $(or $(SYSTEM_PYTHON),python3)
VENV_STAMP := .venv/.stamp
# Installable packages besides shared/: every services/<name>/ with a pyproject.toml.
SERVICE_PROJECTS := $(patsubst %/pyproject.toml,%,$(wildcard services/*/pyproject.toml simulators/pyproject.toml))

.PHONY: venv up down status run stop services-status test check lint types imports demo invariants asyncapi bench bench-quick

# Rebuilt only when the pinned requirements (or a package's metadata) change.
venv: $(VENV_STAMP)

$(VENV_STAMP): requirements.txt requirements-bench.txt shared/pyproject.toml $(addsuffix /pyproject.toml,$(SERVICE_PROJECTS))
	test -x $(PY) || $(PYTHON) -m venv .venv || { rm -rf .venv; python3 -m venv .venv; }
	# The benchmark's packages too: mypy checks bench/ and the suite runs a smoke benchmark.
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-bench.txt
	$(PY) -m pip install --quiet -e shared $(addprefix -e ,$(SERVICE_PROJECTS))
	touch $@

# Local Kafka + PostgreSQL (deploy/stack.py; runtime data in .run/).
up: venv
	$(PY) deploy/stack.py up

down: venv
	$(PY) deploy/stack.py down

status: venv
	$(PY) deploy/stack.py status

# The whole OMS: Kafka, PostgreSQL and the five services, started and reported healthy.
run: up
	$(PY) deploy/services.py start
	$(PY) deploy/services.py status

stop: venv
	$(PY) deploy/services.py stop

services-status: venv
	$(PY) deploy/services.py status

# The test suite against the real broker and database (started first if needed).
test: up
	$(PY) -m pytest $(PYTEST_ARGS)

# Every quality gate, then the tests: what CI runs (.ci/run).
check: lint types imports test

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

types: venv
	$(PY) -m mypy

imports: venv
	.venv/bin/lint-imports

# Place a few orders on the running OMS (after `make run`) and print their timelines.
demo: venv
	$(PY) tools/demo.py

# Check every invariant of ARCHITECTURE.md §7 across the service databases.
invariants: venv
	$(PY) tools/invariants.py

# Regenerate docs/asyncapi.yaml from the contracts.
asyncapi: venv
	$(PY) tools/asyncapi.py

# The benchmark (bench/README.md): our journey stepped to its maximum sustainable rate,
# beside raw Kafka, raw PostgreSQL and a DBOS peer; writes bench/results/<date>.{json,md,png}.
bench: up
	$(PY) bench/run.py --warmup-s 60 --warmup-rate 100 $(BENCH_ARGS)

bench-quick: up
	$(PY) bench/run.py --rates 50,150,300 --step-s 20 $(BENCH_ARGS)
