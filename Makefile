# The two commands the README promises: `make demo` and `make test`.
# Both bootstrap .venv on first use (install + Cython build); later runs reuse it
# and rebuild only when the packaging or a kernel changes.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test unit integration bench broker clean

$(STAMP): pyproject.toml setup.py $(wildcard ext/*.pyx) $(wildcard ext/*.pxd) $(wildcard ext/*.h)
	@$(PY) -c 'import sys; v=sys.version_info; sys.exit(0 if (3,11)<=v[:2]<=(3,12) else "aiotstream needs CPython 3.11 or 3.12 (bytewax 0.21.1 wheels); set PY=python3.12 or similar")'
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python setup.py --quiet build_ext --inplace
	touch $@

demo: $(STAMP)
	$(BIN)/aiotstream demo --out out

test: $(STAMP)
	$(BIN)/python -m pytest

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit aiotstream

integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration

bench: $(STAMP)
	$(BIN)/aiotstream bench kernels --json benchmarks/results/$$(date +%F)-$$(hostname).json

broker: $(STAMP)
	$(BIN)/aiotstream broker

clean:
	rm -rf build out aiotstream/_kernels*.so aiotstream/_streaming*.so ext/*.c .pytest_cache
