# The two set-up commands of README.md: `make demo` (main job on the bundled
# model) and `make test` (the test suite).  Each creates .venv and installs
# what is missing; a second run reuses it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/fastmamba demo --max-new-tokens 64

test: $(STAMP)
	$(BIN)/python -m pytest -W error tests

clean:
	rm -rf $(VENV) build *.egg-info
