# Two commands on a fresh machine with Python 3.10+ and make:
#   make demo   run the daily bikeshare report for 2019-11-07
#   make test   install everything the tests need (venv, kernels, storage servers) and run them
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: demo test deps venv lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,all]'
	touch $@

venv: $(VENV)/.installed

# System parts the tests use (kernels for other languages, storage servers, ...): one script
# per concern in .ci/deps/, each idempotent.
deps: venv
	@for script in .ci/deps/*.sh; do [ -f "$$script" ] || continue; \
	  echo "== $$script"; VENV=$(abspath $(VENV)) bash "$$script" || exit 1; done

test: deps
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check src tests bench examples

demo: venv
	$(MAKE) -C examples/bikeshare demo PY=$(abspath $(PY)) PARAMILL=$(abspath $(VENV))/bin/paramill

# papermill gets its own venv so it never leaks into paramill's; both run the same kernel
BENCH_VENV := bench/.venv-papermill
$(BENCH_VENV)/.installed: bench/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q --disable-pip-version-check -r bench/requirements.txt
	touch $@

bench: venv $(BENCH_VENV)/.installed
	$(MAKE) -C examples/bikeshare requirements PY=$(abspath $(PY))
	$(PY) bench/run.py --papermill $(BENCH_VENV)/bin/papermill $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
