# Two entry points (see README): `make train` and `make test`. Both create ./.venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.ppox-installed
EXTRAS := $(VENV)/.ppox-extras-installed
DOCS   := $(VENV)/.ppox-docs-installed
BACKENDS := $(VENV)/.ppox-backends-installed
SKIPPED  := $(VENV)/.ppox-backends-skipped

.PHONY: setup train test test-all lint bench clean docs docs-site

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# Install torch 2.13.0 first, on its own: with it in place, the project's range
	# (torch<2.14) installs nothing more. Where a local CPU wheel is on pip's path it is used.
	$(PIP) install --quiet "torch==2.13.0"
	$(PIP) install --quiet -e ".[dev,bench]"
	touch $(STAMP)

# The optional extras: POPGym's tasks, Atari (ale-py, OpenCV), MinAtar, the language-model stack
# (transformers, peft), W&B, ONNX and the documentation site's tools (~1.1 GB), and the two largest
# backends, SUMO for ppox/Traffic-v0 and EnvPool (~1.5 GB with their assets). `make train` does
# without them; `make test` installs them so their tests run instead of skipping. A machine without
# the disk for the two backends gets neither and says so (tools/install_backends.sh): their tests
# skip, and the next `make test` tries again.
$(EXTRAS): $(STAMP)
	$(PIP) install --quiet -e ".[dev,bench,popgym,atari,minatar,llm,wandb,export,docs]"
	touch $(EXTRAS) $(DOCS)

$(BACKENDS): $(STAMP)
	tools/install_backends.sh $(PY) $(BACKENDS) $(SKIPPED)

$(DOCS): $(STAMP)
	$(PIP) install --quiet -e ".[docs]"
	touch $(DOCS)

setup: $(STAMP)

train: $(STAMP)
	$(VENV)/bin/ppox train $(ARGS)

# The tests start with the lint checks and the documentation site's strict build, so CI (.ci/run =
# make test) fails on unformatted code, a broken link or a translation out of step too.
test: $(EXTRAS) $(BACKENDS) lint docs-site
	$(PY) -m pytest -q $(ARGS)
	@if [ -e $(SKIPPED) ]; then echo "make: warning: SUMO and EnvPool were not installed (no disk space); their tests skipped" >&2; fi

test-all: $(EXTRAS) $(BACKENDS)
	$(PY) -m pytest -q -m "" $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples tools
	$(VENV)/bin/ruff format --check src tests benchmarks examples tools
	$(VENV)/bin/mypy src/ppox

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info

docs: $(STAMP)
	$(PY) -c "from ppox.config import config_markdown; print(config_markdown(), end='')" > docs/config.md
	$(PY) -c "from ppox.llm.config import llm_config_markdown; print(llm_config_markdown(), end='')" > docs/llm_config.md

# The documentation site, English and Chinese, into site/ (not committed). --strict: a broken link
# or anchor, a page missing from a language, a reference that does not resolve fails the build.
docs-site: $(DOCS)
	$(PY) tools/docs_i18n.py --all
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict  # not --quiet: it hides the warnings --strict counts
