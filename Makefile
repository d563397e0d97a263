# mlspec: everything installs into .venv from nothing (Python 3.11, make and git are all you need).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
PORT   ?= 8555

export MLSPEC_HOME ?= $(CURDIR)/.mlspec
export MLSPEC_SERVER_URL ?= http://127.0.0.1:$(PORT)
export MLSPEC_SPECS_DIR ?= $(CURDIR)/specs
export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export TF_CPP_MIN_LOG_LEVEL ?= 2
# airflow standalone starts its components as `airflow ...` subprocesses: they must find the venv's.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install test demo up serve serve-bg stop lint schema bench bench-parse fuzz clean

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

# Trains, gates, exports, stores, registers, deploys and smoke-tests specs/digits.yaml through Airflow.
demo: install $(AIRFLOW_HOME)/.migrated serve-bg
	$(BIN)/mlspec run specs/digits.yaml

serve: install
	$(BIN)/mlspec serve --port $(PORT) --state-dir $(MLSPEC_HOME)/server

# The model server in the background; it keeps running after the demo so the printed curl works.
serve-bg: install
	@mkdir -p $(MLSPEC_HOME)/server
	@if curl -sf $(MLSPEC_SERVER_URL)/v2/health/live >/dev/null 2>&1; then \
		echo "model server already running at $(MLSPEC_SERVER_URL)"; \
	else \
		nohup $(BIN)/mlspec serve --port $(PORT) --state-dir $(MLSPEC_HOME)/server >$(MLSPEC_HOME)/server/server.log 2>&1 & \
		echo $$! >$(MLSPEC_HOME)/server/server.pid; \
		for i in $$(seq 1 60); do curl -sf $(MLSPEC_SERVER_URL)/v2/health/live >/dev/null 2>&1 && break; sleep 0.5; done; \
		curl -sf $(MLSPEC_SERVER_URL)/v2/health/live >/dev/null || { cat $(MLSPEC_HOME)/server/server.log; exit 1; }; \
		echo "model server started at $(MLSPEC_SERVER_URL) (pid $$(cat $(MLSPEC_HOME)/server/server.pid); stop it with: make stop)"; \
	fi

stop:
	@if [ -f $(MLSPEC_HOME)/server/server.pid ]; then kill $$(cat $(MLSPEC_HOME)/server/server.pid) 2>/dev/null || true; rm -f $(MLSPEC_HOME)/server/server.pid; echo "model server stopped"; else echo "no model server started by make"; fi

# Airflow (standalone: api-server, scheduler, dag-processor, triggerer) with every spec, plus the model server.
up: install $(AIRFLOW_HOME)/.migrated serve-bg
	@echo "Airflow UI: http://localhost:8080  (user admin; password in $(AIRFLOW_HOME)/simple_auth_manager_passwords.json.generated)"
	$(BIN)/airflow standalone

lint: install
	$(BIN)/mlspec lint specs/

schema: install
	$(BIN)/mlspec schema

clean:
	rm -rf $(AIRFLOW_HOME) $(MLSPEC_HOME) .pytest_cache

# Parse-time benchmark: mlspec vs a hand-written DAG vs dag-factory, 200 specs; writes benchmarks/results/parse.json.
# dag-factory goes into its own --target folder, never .venv; Airflow comes from .venv so all three share it.
DAGFACTORY_SITE := benchmarks/.work/dagfactory-site

$(DAGFACTORY_SITE)/.installed: $(VENV)/.installed
	rm -rf $(DAGFACTORY_SITE)
	$(UV) pip install --python $(BIN)/python --quiet --no-deps --target $(DAGFACTORY_SITE) 'dag-factory==1.1.*'
	touch $@

bench-parse: install $(DAGFACTORY_SITE)/.installed
	$(BIN)/python benchmarks/bench_parse.py

bench: bench-parse

# Property-based fuzzing of the spec loader; prints the case count and writes benchmarks/results/fuzz.json.
FUZZ_EXAMPLES ?= 10000

fuzz: install
	MLSPEC_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) MLSPEC_FUZZ_REPORT=benchmarks/results/fuzz.json \
		$(BIN)/python -m pytest tests/spec/test_spec_fuzz.py -q -p no:cacheprovider

# Serving benchmark: mlspec serve (pinned to CPU 0) against in-process onnxruntime, digits and a CIFAR-shape
# CNN, JSON and binary, batch 1 and batched; writes benchmarks/results/serve.json. LOAD_TEST=1 adds the
# 50-connection, 25 s load test at batch 1 and 32; BASELINE=<commit> also measures that commit's server,
# interleaved on the same CPU (e.g. BASELINE=783cbcb, the server before issue 9).
.PHONY: bench-serve
bench-serve: install
	$(if $(BASELINE),rm -rf benchmarks/.work/baseline && mkdir -p benchmarks/.work/baseline && git archive $(BASELINE) plugins | tar -x -C benchmarks/.work/baseline)
	$(BIN)/python benchmarks/bench_serve.py $(if $(LOAD_TEST),--load-test) $(if $(BASELINE),--baseline benchmarks/.work/baseline/plugins)
