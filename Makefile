# isolharness: `make check-isol` runs the main job, `make test` the test suite.
# Both set up what they need first: Debian packages (apt-get, when root),
# a virtual environment with the Python dependencies, the kernel source.

PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
ARGS    ?=
SUDO    := $(if $(filter 0,$(shell id -u)),,sudo )

.PHONY: all check-isol test unit e2e bench bench-interference mutants variants fuzz deps venv lint clean

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
# The kernel variants (tests/e2e/test_kernel_variants.py) run from `make variants`.
test: deps venv
	$(BIN)/python -m pytest -q -m "not variants" tests/unit tests/e2e $(ARGS)

unit: venv
	$(BIN)/python -m pytest -q tests/unit $(ARGS)

e2e: deps venv
	$(BIN)/python -m pytest -q -m "not variants" tests/e2e $(ARGS)

# The series built with CONFIG_TASK_ISOLATION=n, with CONFIG_CPU_ISOLATION=n,
# and as the debug kernel running the whole suite and 10,000 fuzz calls.
variants: deps venv
	$(BIN)/python -m pytest -q -m variants tests/e2e/test_kernel_variants.py $(ARGS)

# The fuzz tests alone on the debug kernel; FUZZ_SEED=N replays a failure.
FUZZ_CALLS ?= 10000
fuzz: deps venv
	ISOLHARNESS_FUZZ_CALLS=$(FUZZ_CALLS) $(if $(FUZZ_SEED),ISOLHARNESS_FUZZ_SEED=$(FUZZ_SEED)) \
	  $(BIN)/isolharness check --kconfig base --kconfig isolation --kconfig debug -k fuzz $(ARGS)

bench: deps venv
	$(BIN)/python bench/run.py $(ARGS)

# The interference account's cost: the guest suite with and without it.
bench-interference: deps venv
	$(BIN)/python bench/interference.py $(ARGS)

# Every mutant of tests/e2e/mutants/ built and booted on the default series
# (one tree, incremental builds), running the tests each names;
# ARGS=--all-tests runs the whole guest suite on each, ARGS=NAME... a few.
mutants: deps venv
	$(BIN)/python tests/mutation.py $(ARGS)

clean:
	rm -rf results $(VENV) *.egg-info
