# isolharness: `make check-isol` runs the main job, `make test` the test suite.
# Both set up what they need first: Debian packages (apt-get, when root),
# a virtual environment with the Python dependencies, the kernel source.

PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
ARGS    ?=
SUDO    := $(if $(filter 0,$(shell id -u)),,sudo )

.PHONY: all check-isol test unit e2e bench mutants deps venv lint clean

all: check-isol

deps:
	@missing="$$($(PYTHON) -m harness.doctor --missing-packages)"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "isolharness: installing Debian packages: $$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	  else \
	    echo "isolharness: missing Debian packages. Run this, then make again:"; \
	    echo "  $(SUDO)apt-get install -y --no-install-recommends $$missing"; \
	    exit 2; \
	  fi; \
	fi

$(BIN)/isolharness: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	@touch $@

venv: $(BIN)/isolharness

check-isol: deps venv
	$(BIN)/isolharness check $(ARGS)

# Unit tests first (seconds), then the end-to-end tests (real builds, boots).
test: deps venv
	$(BIN)/python -m pytest -q tests/unit tests/e2e $(ARGS)

unit: venv
	$(BIN)/python -m pytest -q tests/unit $(ARGS)

e2e: deps venv
	$(BIN)/python -m pytest -q tests/e2e $(ARGS)

bench: deps venv
	$(BIN)/python bench/run.py $(ARGS)

# Every mutant of tests/e2e/mutants/ built and booted on the default series
# (one tree, incremental builds), running the tests each names;
# ARGS=--all-tests runs the whole guest suite on each, ARGS=NAME... a few.
mutants: deps venv
	$(BIN)/python tests/mutation.py $(ARGS)

clean:
	rm -rf results $(VENV) *.egg-info
