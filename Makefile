# mlspec: everything installs into .venv from nothing (Python 3.11, make and git are all you need).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
PORT   ?= 8555
# The Airflow UI and API of `make up` (127.0.0.1 only).
AIRFLOW_PORT ?= 8080
# Starts and stops what `make up`, `make serve-bg` and `make demo` run, by the PIDs and sessions it records.
STACK  := $(BIN)/python scripts/local_stack.py

export MLSPEC_HOME ?= $(CURDIR)/.mlspec
export MLSPEC_SERVER_URL ?= http://127.0.0.1:$(PORT)
export MLSPEC_SPECS_DIR ?= $(CURDIR)/specs
export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
# No AIRFLOW__CORE__PLUGINS_FOLDER: mlspec registers with Airflow once, through its package's entry point.
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export TF_CPP_MIN_LOG_LEVEL ?= 2
# airflow standalone starts its components as `airflow ...` subprocesses: they must find the venv's.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install test demo up down serve serve-bg stop example-data contracts lint schema bench bench-parse fuzz clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==0.13.8
	$(UV) pip install --python $(BIN)/python --quiet -r requirements.lock
	$(UV) pip install --python $(BIN)/python --quiet --no-deps -e .
	touch $@

# Airflow's metadata DB (SQLite under .airflow/, git-ignored); migrated once.
$(AIRFLOW_HOME)/.migrated: $(VENV)/.installed
	mkdir -p $(AIRFLOW_HOME)
	$(BIN)/airflow db migrate >$(AIRFLOW_HOME)/migrate.log 2>&1 || { tail -20 $(AIRFLOW_HOME)/migrate.log; exit 1; }
	touch $@

test: install
	$(BIN)/python -m pytest

# The example tables (data/*.csv, e.g. penguins) where specs name them, file://data/<name> under MLSPEC_HOME;
# a copy already there is kept.
example-data:
	@mkdir -p $(MLSPEC_HOME)/data && cp -n data/*.csv $(MLSPEC_HOME)/data/

# Trains, gates, exports, stores, registers, deploys and smoke-tests specs/digits.yaml through Airflow.
demo: install $(AIRFLOW_HOME)/.migrated example-data serve-bg
	$(BIN)/mlspec run specs/digits.yaml

serve: install
	$(BIN)/mlspec serve --port $(PORT) --state-dir $(MLSPEC_HOME)/server

# The model server in the background, in a session of its own (PID in $(MLSPEC_HOME)/server/server.json and
# server.pid); it keeps running after the demo so the printed curl works.
serve-bg: install
	@$(STACK) serve-bg --server-port $(PORT)

stop:
	@if [ -x $(BIN)/python ]; then $(STACK) stop-server; else echo "no model server started by make"; fi

# Airflow (api-server, scheduler, dag-processor, triggerer: what `airflow standalone` runs, every port on
# 127.0.0.1) with every spec, plus the model server, in the background; returns once the UI is usable.
# Logs: $(AIRFLOW_HOME)/up/. `make down` stops all of it (see scripts/local_stack.py).
up: install example-data
	@$(STACK) up --airflow-port $(AIRFLOW_PORT) --server-port $(PORT)

down:
	@if [ -x $(BIN)/python ]; then $(STACK) down; else echo "nothing to stop (no $(VENV))"; fi

# The published contracts (KServe CRDs and Open Inference Protocol, Kubeflow Model Registry OpenAPI) that
# contract tests need where ../shared/contracts is absent: downloaded from their pinned upstream commits
# (scripts/contracts.json), each kept only when its sha256 matches, into $(CONTRACTS_DIR) (git-ignored).
# Without access to GitHub: MLSPEC_CONTRACTS_BASE_URL=file:///path/to/contracts make contracts.
# Standard library only, so it needs no `make install`.
CONTRACTS_DIR ?= .contracts
CONTRACTS_PY := $(firstword $(wildcard $(BIN)/python) $(shell command -v $(PYTHON) python3 2>/dev/null))

contracts:
	@$(CONTRACTS_PY) scripts/fetch_contracts.py --dest $(CONTRACTS_DIR)

lint: install
	$(BIN)/mlspec lint specs/

schema: install
	$(BIN)/mlspec schema

# Stops what make up / make serve-bg started first: their records live in the folders it removes.
clean: down
	rm -rf $(AIRFLOW_HOME) $(MLSPEC_HOME) .pytest_cache

# Parse-time benchmark: mlspec vs a hand-written DAG vs dag-factory, 200 specs; writes benchmarks/results/parse.json.
# dag-factory goes into its own --target folder, never .venv; Airflow comes from .venv so all three share it.
DAGFACTORY_SITE := benchmarks/.work/dagfactory-site

$(DAGFACTORY_SITE)/.installed: $(VENV)/.installed
	rm -rf $(DAGFACTORY_SITE)
	$(UV) pip install --python $(BIN)/python --quiet --no-deps --target $(DAGFACTORY_SITE) 'dag-factory==1.1.*'
	touch $@

# BASELINE=<commit>: that commit's mlspec is measured in the same rounds, for a before/after on one machine.
bench-parse: install $(DAGFACTORY_SITE)/.installed
	$(if $(BASELINE),rm -rf benchmarks/.work/parse-baseline && mkdir -p benchmarks/.work/parse-baseline && git archive $(BASELINE) plugins schemas | tar -x -C benchmarks/.work/parse-baseline)
	$(BIN)/python benchmarks/bench_parse.py $(if $(BASELINE),--baseline benchmarks/.work/parse-baseline/plugins)

bench: bench-parse

# Property-based fuzzing of the spec loader; prints the case count and writes benchmarks/results/fuzz.json.
FUZZ_EXAMPLES ?= 10000

fuzz: install
	MLSPEC_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) MLSPEC_FUZZ_REPORT=benchmarks/results/fuzz.json \
		$(BIN)/python -m pytest tests/spec/test_spec_fuzz.py -q -p no:cacheprovider

# Serving benchmark: mlspec serve (pinned to CPU 0) against in-process onnxruntime, digits and a CIFAR-shape
# CNN, JSON and binary, batch 1 and batched; writes benchmarks/results/serve.json. LOAD_TEST=1 adds the
# 50-connection, 25 s load test at batch 1 and 32; BASELINE=<commit> also measures that commit's server,
# interleaved on the same CPU (e.g. BASELINE=783cbcb, the server before issue 9), and writes
# benchmarks/results/serve_vs_baseline.json with both servers' CPU per request (utime + stime) side by side.
# CASES="digits b1 c8 json,..." narrows the run; ROUNDS=<n> and DURATION=<seconds per run> shape it (on a busy
# machine, many short rounds pair the two servers more closely).
.PHONY: bench-serve
bench-serve: install
	$(if $(BASELINE),rm -rf benchmarks/.work/baseline && mkdir -p benchmarks/.work/baseline && git archive $(BASELINE) plugins | tar -x -C benchmarks/.work/baseline)
	$(BIN)/python benchmarks/bench_serve.py $(if $(LOAD_TEST),--load-test) $(if $(CASES),--cases "$(CASES)") $(if $(ROUNDS),--rounds $(ROUNDS)) $(if $(DURATION),--duration $(DURATION)) \
		$(if $(BASELINE),--baseline benchmarks/.work/baseline/plugins --output benchmarks/results/serve_vs_baseline.json)

# Data benchmark: a generated 1,000,000-row table (10 numbers with gaps, 10 categories) as CSV, Parquet and a
# PostgreSQL table, through prepare_data, a logistic regression and the ONNX export, against the same work by hand
# (pandas + a scikit-learn Pipeline + skl2onnx); writes benchmarks/results/data.json. ROWS=<n> for a smaller table.
# Then validate_data's profiling and drift checks on 1,000,000 and on 1,000 rows (benchmarks/bench_drift.py), added
# to data.json as "profile_drift".
.PHONY: bench-data
bench-data: install
	$(BIN)/python benchmarks/bench_data.py $(if $(ROWS),--rows $(ROWS))
	$(BIN)/python benchmarks/bench_drift.py $(if $(ROWS),--rows $(ROWS))
