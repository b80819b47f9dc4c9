# Quick start: `make run` then `make test`. Both create or refresh .venv from pyproject.toml.
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed

.PHONY: run test test-all bench example venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/python -m pip install --quiet --upgrade pip
	@$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/diaspora-survey run

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

test-all: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m ''

example: $(STAMP)
	$(VENV)/bin/python -m diaspora_survey.example raw

bench: $(STAMP)
	$(VENV)/bin/python bench/run.py

clean:
	rm -rf build reports/*.pdf $(VENV)
