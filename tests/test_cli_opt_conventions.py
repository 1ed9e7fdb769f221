"""mlir-opt conventions of the command line (compiler/cli.py, compiler/commands/opt.py, compile.py,
compiler/pipeline.py's PassDriver): --version, opt --list-passes, --print-ir-before*, --time-passes."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import pytest

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


SMALL_IR = """builtin.module {
  func.func @prefill(%x: tensor<2x16xf32>) -> tensor<2x16xf32> {
    %0 = mamba.silu %x : tensor<2x16xf32>
    %1 = mamba.silu %x : tensor<2x16xf32>
    func.return %0 : tensor<2x16xf32>
  }
}
"""


@pytest.fixture
def small_ir(tmp_path):
    path = tmp_path / "small.mlir"
    path.write_text(SMALL_IR)
    return path


def _dumps(err: str) -> list[tuple[str, str]]:
    """The (header, IR) pairs of --print-ir-* output, in order."""
    parts = err.split("// -----// IR Dump ")[1:]
    return [(part.split(" //----- //\n", 1)[0], part.split(" //----- //\n", 1)[1]) for part in parts]


def test_print_ir_before_and_after_all_interleave_and_show_each_stage(small_ir, tmp_path, capsys):
    """Before each pass: the IR the previous pass left (the dump folder's previous file); after: its own."""
    dump = tmp_path / "dump"
    assert main(["opt", str(small_ir), "-p", "set-target,cse,dce", "--print-ir-before-all", "--print-ir-after-all",
                 "--dump-dir", str(dump)]) == 0
    pairs = _dumps(capsys.readouterr().err)
    assert [h for h, _ in pairs] == ["Before set-target", "After set-target", "Before cse", "After cse",
                                     "Before dce", "After dce"]
    files = ["00-input.mlir", "01-set-target.mlir", "02-cse.mlir", "03-dce.mlir"]
    for i, name in enumerate(files[:-1]):  # IR before pass i+1 == the dump of stage i; after it == stage i+1
        assert pairs[2 * i][1] == (dump / name).read_text()
        assert pairs[2 * i + 1][1] == (dump / files[i + 1]).read_text()
    assert pairs[2][1].count("mamba.silu") == 2 and pairs[3][1].count("mamba.silu") == 1  # cse merged the two


def test_print_ir_before_named_passes_only(small_ir, capsys):
    assert main(["opt", str(small_ir), "-p", "set-target,cse,dce", "--print-ir-before=cse,dce"]) == 0
    captured = capsys.readouterr()
    pairs = _dumps(captured.err)
    assert [h for h, _ in pairs] == ["Before cse", "Before dce"]
    assert pairs[1][1] == captured.out  # dce changes nothing after cse


@pytest.mark.parametrize("flag", ["--print-ir-before", "--print-ir-after"])
def test_print_ir_of_a_pass_not_in_the_pipeline_is_one_line_before_reading_the_file(flag, tmp_path, capsys):
    missing = tmp_path / "nowhere.mlir"  # the names are checked first: the file is never read
    assert main(["opt", str(missing), "-p", "cse,dce", f"{flag}=cse,canonicalize"]) == 1
    assert capsys.readouterr().err == (f"fastmamba opt: error: {flag} names a pass not in the pipeline: canonicalize "
                                       f"(its passes: cse, dce)\n")


def test_compile_checks_print_ir_before_names_before_any_work(tmp_path, capsys):
    """The names are checked against compile's pipeline before the model is read (here it does not exist)."""
    assert main(["compile", "--model", str(tmp_path / "nowhere"), "-o", str(tmp_path / "m.fmb"),
                 "--print-ir-before", "cse"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fastmamba compile: error: --print-ir-before names a pass not in the pipeline: cse "
                          "(its passes: set-target, ") and err.count("\n") == 1
