# metalearn-lab: the two commands in README.md are `make lab` and `make test`.
# Each creates .venv on first use, installs torch==2.13.0 (CPU) first, then the package.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# GPU users: make TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128" lab
TORCH_SPEC ?= torch==2.13.0
LAB_ARGS ?=
PYTEST_ARGS ?=
# Where Omniglot lives (see README). Developers' checkouts have a copy beside them in ../shared.
SHARED_OMNIGLOT := $(abspath $(wildcard ../shared/data/omniglot))
ifeq ($(strip $(METALEARN_LAB_DATA)),)
ifneq ($(SHARED_OMNIGLOT),)
export METALEARN_LAB_DATA := $(SHARED_OMNIGLOT)
endif
endif

.PHONY: setup lab test book notebooks benchmark clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install $(TORCH_SPEC)
	$(PY) -m pip install -e ".[lab,book,test]"
	touch $@

setup: $(VENV)/.installed

# JupyterLab's set-up (shared with repo2docker's postBuild): a double click opens a lesson as a
# notebook, each lesson shows once, paired notebooks synced; it never writes a tracked file.
notebooks: setup
	$(PY) scripts/setup_lab.py

lab: notebooks
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(LAB_ARGS)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

book: setup
	$(PY) book/build.py $(BOOK_ARGS)

benchmark: setup
	$(PY) benchmarks/maml_throughput.py

clean:
	rm -rf book/_build book/lessons notebooks/_lesson_outputs notebooks/*.ipynb .pytest_cache
