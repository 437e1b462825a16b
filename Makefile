# Two commands set everything up on a fresh clone: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch; where a local wheel folder exists (this machine: /opt/wheels) pip takes it from there.
TORCH_SPEC ?= torch==2.13.0
WHEELS ?= /opt/wheels
FIND_LINKS := $(if $(wildcard $(WHEELS)),--find-links $(WHEELS),--index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple)

.PHONY: install run test test-slow lint bench docs clean

$(BIN)/activate:
	$(PY) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install -q $(FIND_LINKS) "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[test,bench,envpool,docs]"
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/multiq train

# ruff, the architecture contracts (import-linter, pyproject.toml) and the type checker (mypy)
lint: install
	$(BIN)/ruff check multiq tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

test-slow: install
	$(BIN)/pytest -q -m slow

bench: install
	$(BIN)/python benchmarks/throughput.py

# the documentation site into site/ (mkdocs.yml; warnings, e.g. broken links, are errors)
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) runs site
