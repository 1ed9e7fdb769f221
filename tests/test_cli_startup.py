"""The command line starts fast: `fastmamba --help` and `fastmamba opt --help` import neither torch nor xDSL
(what is imported is checked in a fresh process, not timed; benchmarks/bench_cli_startup.py prints the times)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from fastmamba.compiler.cli import COMMANDS, command_help

PROBE = """import sys
from fastmamba.compiler.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert exc.code == 0, exc.code
print(' '.join(sorted(m for m in ('torch', 'transformers', 'xdsl', 'numpy') if m in sys.modules)))
print(' '.join(sorted(m for m in sys.modules if m.startswith('fastmamba.compiler.commands.'))))
"""


def _imported(*argv: str) -> tuple[set[str], set[str]]:
    """The heavy modules and the command modules a fresh process has imported after `fastmamba ARGV`."""
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, check=True)
    heavy, commands = done.stdout.splitlines()[-2:]
    return set(heavy.split()), set(commands.split())


def test_importing_the_cli_imports_no_torch():
    done = subprocess.run([sys.executable, "-c", "import sys, fastmamba.compiler.cli; "
                           "print(sorted(m for m in ('torch', 'xdsl') if m in sys.modules))"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_help_imports_no_command_module():
    heavy, commands = _imported("--help")
    assert heavy == set() and commands == set()


@pytest.mark.parametrize("command", ["import", "opt", "translate"])
def test_command_help_imports_no_torch_nor_xdsl(command):
    heavy, commands = _imported(command, "--help")
    assert not heavy & {"torch", "transformers", "xdsl"}, heavy
    assert commands == {COMMANDS[command]}


def test_the_listed_help_is_each_modules_own():
    """command_help reads HELP from the source: the same text as the imported module's constant."""
    for module in COMMANDS.values():
        assert command_help(module) == importlib.import_module(module).HELP, module


def test_help_lists_every_command(capsys):
    from fastmamba.compiler.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for name, module in COMMANDS.items():
        assert f"{name} {' '.join(command_help(module).split())}" in out, name
