"""mlir-opt conventions of the command line (compiler/cli.py, compiler/commands/opt.py, compile.py,
compiler/pipeline.py's PassDriver): --version, opt --list-passes, --print-ir-before*, --time-passes."""

from __future__ import annotations

import subprocess
import time
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
    assert listed["lower-to-accel"] == ["  tile_kib: int = 0", "  prefetch: int = 3", "  fuse_front: bool = true",
                                        "  head_prefetch: bool = true"]
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


def _time_report(err: str) -> list[tuple[float, float, str]]:
    """--time-passes' rows as (seconds, percent, name), the Total last; checks the header's total is the row's."""
    head, table = err.split("  ----Wall Time----  ----Name----\n")
    rows = []
    for line in table.splitlines():
        seconds, rest = line.split(" (", 1)
        percent, name = rest.split("%)  ")
        rows.append((float(seconds), float(percent), name))
        if name == "Total":  # (compile writes its summary after the report)
            break
    assert f"  Total Execution Time: {rows[-1][0]:.4f} seconds\n" in head
    return rows


def _check_shares(rows: list[tuple[float, float, str]], wall: float) -> None:
    """The stages sum to the total (to the printed rounding), each percent is its share, and the total is at
    most the wall time measured around the command."""
    *stages, (total, hundred, name) = rows
    printed_rounding = 0.5e-4  # the report prints seconds to 4 decimals: 0.00329 s is printed 0.0033
    assert name == "Total" and hundred == 100.0 and 0 < total <= wall + printed_rounding
    assert abs(sum(s for s, _, _ in stages) - total) <= 1e-4 * len(rows)
    for seconds, percent, _ in stages:
        assert abs(percent - 100 * seconds / total) <= 0.05 + 100 * 1e-4 / total


def test_opt_time_passes_reports_startup_each_pass_and_total(small_ir, capsys):
    start = time.perf_counter()
    assert main(["opt", str(small_ir), "-p", "set-target,cse,dce", "--time-passes"]) == 0
    wall = time.perf_counter() - start
    rows = _time_report(capsys.readouterr().err)
    assert [name for _, _, name in rows] == ["start-up", "parse", "set-target", "cse", "dce", "other", "Total"]
    _check_shares(rows, wall)


def test_compile_print_ir_before_and_time_passes(tmp_path, capsys):
    """compile: the IR before plan-memory is the dump of the stage before it; --time-passes lists start-up,
    the import, every pass of the pipeline (as --print-pipeline names them) and the emission, then the total."""
    from model_factory import make_config, random_hf_model, save_hf_dir

    model = save_hf_dir(random_hf_model(make_config("tiny"), seed=5), tmp_path / "model")
    common = ["--model", str(model), "--seq-len", "3", "--calibration", "random", "--calibration-windows", "1"]
    assert main(["compile", *common, "--print-pipeline"]) == 0
    passes = [p.split("{")[0] for p in capsys.readouterr().out.strip().split(",")]
    dump = tmp_path / "stages"
    start = time.perf_counter()
    assert main(["compile", *common, "-o", str(tmp_path / "m.fmb"), "--dump-dir", str(dump),
                 "--print-ir-before", "plan-memory", "--time-passes"]) == 0
    wall = time.perf_counter() - start
    err = capsys.readouterr().err
    (header, ir), = _dumps(err.split("===---")[0])
    before = passes.index("plan-memory")  # the stage before it: dump number `before` (00 is the import)
    assert header == "Before plan-memory" and ir == next(dump.glob(f"{before:02d}-*.mlir")).read_text()
    rows = _time_report(err)
    names = [name for _, _, name in rows]
    assert names[:2] == ["start-up", "import"] and names[2:2 + len(passes)] == passes
    assert names[2 + len(passes):] in (["emit", "Total"], ["emit", "other", "Total"])
    _check_shares(rows, wall)


def test_compile_print_ir_after_all_starts_with_the_import(tmp_path, capsys):
    """--print-ir-after-all: the import is the first stage printed (as --dump-dir's 00-import.mlir), then every
    pass; --print-ir-after=import names it alone; the import has no 'before' (an error naming the passes)."""
    from model_factory import make_config, random_hf_model, save_hf_dir

    model = save_hf_dir(random_hf_model(make_config("tiny"), seed=5), tmp_path / "model")
    common = ["--model", str(model), "--seq-len", "3", "--calibration", "random", "--calibration-windows", "1"]
    assert main(["compile", *common, "--print-pipeline"]) == 0
    passes = [p.split("{")[0] for p in capsys.readouterr().out.strip().split(",")]
    dump = tmp_path / "stages"
    assert main(["compile", *common, "-o", str(tmp_path / "a.fmb"), "--dump-dir", str(dump),
                 "--print-ir-after-all"]) == 0
    pairs = _dumps(capsys.readouterr().err)
    assert [h for h, _ in pairs] == [f"After {name}" for name in ["import", *passes]]
    stages = [f.read_text() for f in sorted(dump.glob("*.mlir"))]
    assert [ir for _, ir in pairs[:-1]] == stages[:-1]
    assert pairs[-1][1].startswith(stages[-1] + "wrote ")  # (compile's summary follows the last stage)
    assert main(["compile", *common, "-o", str(tmp_path / "b.fmb"), "--print-ir-after=import"]) == 0
    assert [h for h, _ in _dumps(capsys.readouterr().err)] == ["After import"]
    assert main(["compile", *common, "-o", str(tmp_path / "c.fmb"), "--print-ir-before=import"]) == 1
    assert capsys.readouterr().err.startswith("fastmamba compile: error: --print-ir-before names a pass not in the "
                                              "pipeline: import (its passes: set-target, ")


def test_the_reproducer_is_named_by_its_absolute_path(small_ir, tmp_path, monkeypatch, capsys):
    """A relative --dump-dir: the error names the failing pass's input IR by its absolute path, so the command
    it prints reruns the failure from any folder."""
    monkeypatch.chdir(tmp_path)
    assert main(["opt", small_ir.name, "-p", "set-target,calibrate", "--dump-dir", "stages"]) == 1
    err = capsys.readouterr().err
    failed = tmp_path / "stages" / "02-calibrate.failed-input.mlir"
    assert f"(its input IR: {failed}; reproduce: fastmamba opt {failed} -p 'calibrate')" in err and failed.is_file()
