# Two commands set everything up on a fresh machine:
#   make demo   install into .venv, then rank 8 generated networks on the embedded digits data
#   make test   install into .venv, then run the test suite
# and `make docs` builds the documentation site into site/ (installs the docs extra first).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.unnas-installed
DOCS_STAMP := $(VENV)/.unnas-docs-installed

.PHONY: install demo test test-slow bench lint docs clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,video]'
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) -m unnas.rank

test: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,video,docs]'
	@touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

lint: install
	$(PY) -m ruff check unnas pretext moco eval tests benchmarks

clean:
	rm -rf runs build site *.egg-info
