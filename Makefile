# The README's commands. Python is the project's venv (.venv, made by `make setup`) when it
# exists, else python3 (CI installs into the machine's Python).
PY := $(shell if [ -x .venv/bin/python ]; then echo .venv/bin/python; else echo python3; fi)
PYTEST := $(PY) -m pytest -p no:cacheprovider
DS := $(PY) -m pipeline

.PHONY: help setup demo test test-unit test-browser test-stack wheel-check bench lint stack-up stack-down stack-status

help:
	@echo "make setup    venv (.venv) + pip install -e '.[dev]' + fetch Kafka and Elasticsearch"
	@echo "make demo     start the local stack and run the demo"
	@echo "make test     lint, unit + golden tests, the report in Chromium, then integration / e2e / fault tests"
	@echo "make wheel-check  build sdist + wheel, install the wheel in a fresh venv, run it (stack up)"
	@echo "make bench    run every bench/*.py"
	@echo "make lint     ruff check . && ruff format --check ."
	@echo "make stack-up | stack-down | stack-status"

setup:
	@test -x .venv/bin/python || python3 -m venv .venv || { \
	  echo "cannot create .venv: on Debian, apt-get install python3-venv"; exit 1; }
	.venv/bin/python -m pip install --upgrade pip
	.venv/bin/python -m pip install -e '.[dev]'
	npm ci --prefix grafana --no-audit --no-fund
	.venv/bin/python -m pipeline stack fetch

demo:
	$(DS) demo

lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# Unit and golden tests need no servers; the browser tests need Debian's chromium and
# chromium-driver; the rest bring up the local stack if it is down.
test: lint test-unit test-browser test-stack

test-unit:
	$(PYTEST) -m "not integration and not e2e and not faults and not browser" tests

test-browser:
	$(PYTEST) -m browser tests

test-stack:
	$(PYTEST) -m "integration or e2e or faults" tests

# The installed program, not the checkout: needs the local stack up (setup --check, stack status).
wheel-check:
	.ci/wheel-check $(PY)

bench:
	@set -e; for script in bench/*.py; do \
	  [ -e "$$script" ] || continue; echo "== $$script"; $(PY) "$$script"; done

stack-up:
	$(DS) stack up

stack-down:
	$(DS) stack down

stack-status:
	$(DS) stack status
