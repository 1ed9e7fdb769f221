# The two set-up commands of README.md: `make demo` (main job on the bundled
# model) and `make test` (lint, types, then the test suite).  Each creates
# .venv and installs what is missing; a second run reuses it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint install clean synth

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/fastmamba demo --max-new-tokens 64

test: lint
	$(BIN)/python -m pytest -W error tests

# FPGA resource estimates of the vc709 preset (docs/SYNTH.md): yosys synth_xilinx on each unit of the RTL,
# pre-place-and-route, composed from parts as the report states with each part's yosys time; hours on a cold
# cache (build/synth/: vc709's HadamardRequant alone took 5,140 s of yosys here), seconds after.
synth: $(STAMP)
	$(BIN)/fastmamba synth --target vc709

# ruff (rules and width in pyproject.toml) over every Python file; mypy over the
# installed namespace.  The folders install as fastmamba.* through setuptools'
# package-dir, which mypy cannot follow, so it reads a tree of links that lays
# them out as the installed package does (build/typecheck/fastmamba/...).
TYPECHECK := build/typecheck/fastmamba
lint: $(STAMP)
	$(BIN)/ruff check
	rm -rf $(TYPECHECK) && mkdir -p $(TYPECHECK)
	ln -s ../../../fastmamba/__init__.py ../../../fastmamba/__main__.py $(TYPECHECK)/
	for d in compiler isa passes simulator hardware; do test ! -d $$d || ln -s ../../../$$d $(TYPECHECK)/$$d; done
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info
