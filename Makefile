# Two entry points (see README): `make train` and `make test`. Both create ./.venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.ppox-installed
EXTRAS := $(VENV)/.ppox-extras-installed

.PHONY: setup train test test-all lint bench clean docs

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# Install torch 2.13.0 first, on its own: with it in place, the project's range
	# (torch<2.14) installs nothing more. Where a local CPU wheel is on pip's path it is used.
	$(PIP) install --quiet "torch==2.13.0"
	$(PIP) install --quiet -e ".[dev,bench]"
	touch $(STAMP)

# The optional backends (SUMO for ppox/Traffic-v0, EnvPool: ~1 GB with their assets), POPGym's
# tasks, Atari (ale-py, OpenCV), MinAtar, the language-model stack (transformers, peft), W&B and ONNX: `make train` does without them, `make test` installs
# them so their tests run instead of skipping.
$(EXTRAS): $(STAMP)
	$(PIP) install --quiet -e ".[dev,bench,traffic,envpool,popgym,atari,minatar,llm,wandb,export]"
	touch $(EXTRAS)

setup: $(STAMP)

train: $(STAMP)
	$(VENV)/bin/ppox train $(ARGS)

# The tests start with the lint checks, so CI (.ci/run = make test) fails on unformatted code too.
test: $(EXTRAS) lint
	$(PY) -m pytest -q $(ARGS)

test-all: $(EXTRAS)
	$(PY) -m pytest -q -m "" $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples
	$(VENV)/bin/mypy src/ppox

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info

docs: $(STAMP)
	$(PY) -c "from ppox.config import config_markdown; print(config_markdown(), end='')" > docs/config.md
	$(PY) -c "from ppox.llm.config import llm_config_markdown; print(llm_config_markdown(), end='')" > docs/llm_config.md
