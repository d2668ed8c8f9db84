# `make repro` and `make test` work on a fresh clone with only Python 3.11 and pip.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Stage commands in dvc.yaml call `python`: put the venv first on PATH.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: repro test test-bench plots metrics dvc clean-venv

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

repro: $(VENV)/.installed
	$(BIN)/dvc repro

# Any DVC command with the venv's dvc and python, no activation needed:
#   make dvc ARGS="metrics diff main"     make dvc ARGS="exp run -S train.epochs=5"
dvc: $(VENV)/.installed
	$(BIN)/dvc $(ARGS)

# The run's headline numbers (`dvc metrics show`); `make metrics REVS=main` diffs against main.
metrics: $(VENV)/.installed
	$(BIN)/dvc metrics $(if $(REVS),diff $(REVS),show)

# the linter first (seconds), then the suite on two workers (pytest-xdist), each test
# file on one of them: most tests spend their time starting Python, TensorFlow and DVC,
# which one core does while the other computes. The benchmarks' runs at tiny sizes
# (tests/test_bench.py, marked `bench`) are left to `make test-bench`; CI runs both.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile
test: $(VENV)/.installed
	$(BIN)/ruff check .
	$(PYTEST) -m "not bench" $(PYTEST_ARGS)

# each script in bench/ once at tiny sizes: that they run and report sane figures
test-bench: $(VENV)/.installed
	$(PYTEST) -m bench $(PYTEST_ARGS)

# The plots page with vega's scripts inlined, so it opens offline: dvc_plots/index.html.
# `make plots REVS=main` draws `dvc plots diff main` (the workspace against main) instead.
PLOTS_TEMPLATE := dvc_plots/.offline-template.html
plots: $(VENV)/.installed
	$(BIN)/python -m plots_html.build_template $(PLOTS_TEMPLATE)
	$(BIN)/dvc plots $(if $(REVS),diff $(REVS),show) --html-template $(PLOTS_TEMPLATE) -o dvc_plots

clean-venv:
	rm -rf $(VENV)
