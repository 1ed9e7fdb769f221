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


def _list_passes(capsys) -> dict[str, list[str]]:
    """`opt --list-passes` (no FILE) as {pass name: its option lines}."""
    assert main(["opt", "--list-passes"]) == 0
    blocks = capsys.readouterr().out.split("\n\n")
    return {b.splitlines()[0].split(":")[0]: b.splitlines()[1:] for b in blocks}


def test_list_passes_needs_no_file_and_its_defaults_parse_back_to_the_default_pass(capsys):
    """Every registered pass is listed, in name order; writing each listed default back as `-p name{opt=value}`
    gives a pass equal to the one built with no options (so the listed defaults are the real ones)."""
    from fastmamba.compiler.pipeline import PASSES, parse_passes

    listed = _list_passes(capsys)
    assert list(listed) == sorted(PASSES)
    assert listed["lower-to-accel"] == ["  tile_kib: int = 0", "  prefetch: int = 3", "  fuse_front: bool = true"]
    assert listed["set-target"] == ['  target: str = "vc709"']
    for name, lines in listed.items():
        options = [line.strip().split(": ", 1)[0] + "=" + line.rsplit(" = ", 1)[1] for line in lines
                   if not line.endswith("(none)")]
        spec = f"{name}{{{' '.join(options)}}}" if options else name
        assert parse_passes(spec) == [PASSES[name]()()], spec


def test_opt_without_a_file_is_a_one_line_error(capsys):
    assert main(["opt", "-p", "dce"]) == 1
    err = capsys.readouterr().err
    assert err == "fastmamba opt: error: give the mamba IR file to read (- for stdin), or --list-passes\n"
