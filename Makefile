# Two entry points (see README): `make train` and `make test`. Both create ./.venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.ppox-installed

.PHONY: setup train test test-all lint bench clean docs

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# Install torch 2.13.0 first, on its own: with it in place, the project's range
	# (torch<2.14) installs nothing more. Where a local CPU wheel is on pip's path it is used.
	$(PIP) install --quiet "torch==2.13.0"
	$(PIP) install --quiet -e ".[dev,bench,traffic]"
	touch $(STAMP)

setup: $(STAMP)

train: $(STAMP)
	$(VENV)/bin/ppox train $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q $(ARGS)

test-all: $(STAMP)
	$(PY) -m pytest -q -m "" $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy src/ppox

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info

docs: $(STAMP)
	$(PY) -c "from ppox.config import config_markdown; print(config_markdown(), end='')" > docs/config.md
