# Two commands set everything up on a fresh machine:
#   make demo   install into .venv, then rank 8 generated networks on the embedded digits data
#   make test   install into .venv, then run the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.unnas-installed

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

docs: install
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[docs]'
	$(PY) -m mkdocs build --strict

lint: install
	$(PY) -m ruff check unnas pretext moco eval tests benchmarks

clean:
	rm -rf runs build site *.egg-info
