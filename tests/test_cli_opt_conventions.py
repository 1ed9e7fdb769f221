"""mlir-opt conventions of the command line (compiler/cli.py, compiler/commands/opt.py, compile.py,
compiler/pipeline.py's PassDriver): --version, opt --list-passes, --print-ir-before*, --time-passes."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

from fastmamba.compiler.cli import main


def test_version_prints_fastmamba_and_its_dependencies_without_importing_torch():
    """`fastmamba --version` (and -V): the installed distributions' versions, read from their metadata; neither
    torch nor any command module is imported for it."""
    code = ("import sys\nfrom fastmamba.compiler.cli import main\n"
            "try:\n    main([sys.argv[1]])\nexcept SystemExit as e:\n    code = e.code\n"
            "print('exit', code, 'torch' in sys.modules, 'fastmamba.compiler.commands.opt' in sys.modules)\n")
    expected = (f"fastmamba {version('fastmamba')}\n  xdsl {version('xdsl')}\n  torch-mlir {version('torch-mlir')}\n"
                f"  torch {version('torch')}\nexit 0 False False\n")
    for flag in ("--version", "-V"):
        done = subprocess.run([sys.executable, "-c", code, flag], capture_output=True, text=True, check=True)
        assert done.stdout == expected and done.stderr == ""


def test_version_is_listed_in_help(capsys):
    try:
        main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0
    assert "-V, --version" in capsys.readouterr().out
