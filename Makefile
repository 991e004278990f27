# mgdiary: `make run` serves the API with a demo study; `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
# Which database `make test` uses: the embedded SQLite by default; set a PostgreSQL URL to use it.
MGDIARY_TEST_DATABASE_URL ?=
export MGDIARY_TEST_DATABASE_URL

.PHONY: install run test check lint typecheck openapi openapi-check migrations-check audit-deps demo clean bench crash-drill pg-restart-drill chaos fuzz

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## Migrate the embedded SQLite database, load the demo study, serve on $(HOST):$(PORT).
run: $(STAMP)
	$(BIN)/mgdiary migrate
	$(BIN)/mgdiary demo --base-url http://$(HOST):$(PORT)
	$(BIN)/mgdiary serve --no-migrate --host $(HOST) --port $(PORT)

## The test suite (SQLite unless MGDIARY_TEST_DATABASE_URL names a PostgreSQL database).
test: $(STAMP)
	$(BIN)/pytest

## Contract fuzzing for a release (checklist H47): the Schemathesis tests of `make test`
## (tests/test_contract_fuzz.py) with many more examples, longer stateful runs and the coverage
## phase. FUZZ_EXAMPLES=... to change the count; uses MGDIARY_TEST_DATABASE_URL like `make test`.
FUZZ_EXAMPLES ?= 500
fuzz: $(STAMP)
	MGDIARY_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) MGDIARY_FUZZ_STEPS=30 MGDIARY_FUZZ_COVERAGE=1 \
		$(BIN)/pytest -p no:cacheprovider tests/test_contract_fuzz.py

## Lint, types, OpenAPI drift and migration drift.
check: lint typecheck openapi-check migrations-check

lint: $(STAMP)
	$(BIN)/ruff check app tests migrations bench
	$(BIN)/ruff format --check app tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

openapi: $(STAMP)
	$(BIN)/mgdiary openapi

openapi-check: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider tests/test_openapi.py

## `alembic upgrade head` then `alembic check` on a scratch SQLite database.
migrations-check: $(STAMP)
	rm -f var/migrations-check.sqlite3
	MGDIARY_DATABASE_URL=sqlite:///$(CURDIR)/var/migrations-check.sqlite3 $(BIN)/alembic upgrade head
	MGDIARY_DATABASE_URL=sqlite:///$(CURDIR)/var/migrations-check.sqlite3 $(BIN)/alembic check

demo: $(STAMP)
	$(BIN)/mgdiary demo

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache .hypothesis

## Known vulnerabilities in the installed dependencies (checklist A9).
audit-deps: $(STAMP)
	$(BIN)/pip-audit --progress-spinner off --skip-editable

## The benchmark (not part of the tests): the app against a minimal baseline on PostgreSQL
## (127.0.0.1:5432, user postgres) and the SQLite default under load, ending with the mixed
## load (syncs, single entries, trend and list reads at once); see docs/performance.md.
## Extra options: make bench BENCH_ARGS="--quick" (one round), "--scenarios entry,sqlite", ...
BENCH_STAMP := $(VENV)/.bench-installed
BENCH_ARGS ?=

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

## Chaos drill "no alert lost" (checklist E31; not a test): 500 fevers through the API while the
## webhook worker is SIGKILLed every 0.5-3 s and the receiver goes down for a while; PostgreSQL
## at 127.0.0.1:5432, database mgdiary_chaos (recreated). CHAOS_ARGS="--sqlite" for the embedded one.
CHAOS_ARGS ?=

chaos: $(STAMP)
	$(BIN)/python scripts/chaos_webhooks.py $(CHAOS_ARGS)

## Crash drill (issue 8 item 2): the API SIGKILLed before commit, after commit and mid-request;
## the client retries; every acknowledged entry stored exactly once. A scratch database on
## 127.0.0.1:5432 (created and dropped). CRASH_DRILL_ARGS="--sqlite" for SQLite.
CRASH_DRILL_ARGS ?=
crash-drill: $(STAMP)
	$(BIN)/python scripts/crash_drill.py $(CRASH_DRILL_ARGS)

## PostgreSQL restart under load (issue 8 item 3): a throwaway cluster 15/drill on port 5433
## (created and dropped; needs root), `restart -m immediate` under 50 req/s.
## PG_RESTART_DRILL_ARGS="--down-seconds 20 --duration 50" for a longer outage.
PG_RESTART_DRILL_ARGS ?=
pg-restart-drill: $(STAMP)
	$(BIN)/python scripts/pg_restart_drill.py $(PG_RESTART_DRILL_ARGS)
