"""`fastmamba import` and `fastmamba opt` (compiler/commands/import_cmd.py, opt.py) end to end."""

from __future__ import annotations

import json

import pytest

from fastmamba.compiler.cli import main
from fastmamba.compiler.pipeline import parse_ir
from model_factory import make_config, random_hf_model, save_hf_dir


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_hf_dir(random_hf_model(make_config("groups2"), seed=4), tmp_path_factory.mktemp("m") / "model")


@pytest.fixture(scope="module")
def ir_file(model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ir") / "prefill.mlir"
    assert main(["import", "--model", str(model_dir), "--seq-len", "6", "-o", str(out)]) == 0
    return out


def test_import_writes_verified_ir(ir_file):
    module = parse_ir(ir_file.read_text())
    fn = next(iter(module.body.block.ops))
    assert fn.sym_name.data == "prefill"
    assert list(fn.function_type.inputs.data[0].get_shape()) == [6]


def test_import_decode_to_stdout(model_dir, capsys):
    assert main(["import", "--model", str(model_dir), "--program", "decode"]) == 0
    out = capsys.readouterr().out
    assert "func.func @decode(%token: tensor<1xi64>" in out and "mamba.ssm_step" in out


def test_opt_empty_pipeline_prints_input_back(ir_file, capsys):
    assert main(["opt", str(ir_file)]) == 0
    assert capsys.readouterr().out == ir_file.read_text()


def test_opt_generic_passes_and_print_after(ir_file, capsys):
    assert main(["opt", str(ir_file), "-p", "canonicalize,cse,dce", "--print-ir-after=cse"]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("// -----// IR Dump After") == 1 and "After cse" in captured.err
    assert captured.out == ir_file.read_text()  # nothing to simplify in freshly raised IR


def test_opt_print_after_all(ir_file, capsys):
    assert main(["opt", str(ir_file), "-p", "dce,cse", "--print-ir-after-all"]) == 0
    err = capsys.readouterr().err
    assert "After dce" in err and "After cse" in err


def test_opt_dce_removes_unused_ops(ir_file, tmp_path, capsys):
    text = ir_file.read_text().replace("func.return", '%unused = mamba.weight "x" : tensor<3xf32>\n    func.return', 1)
    src = tmp_path / "extra.mlir"
    src.write_text(text)
    assert main(["opt", str(src), "-p", "dce", "-o", str(tmp_path / "out.mlir")]) == 0
    assert (tmp_path / "out.mlir").read_text() == ir_file.read_text()


@pytest.mark.parametrize("argv,message", [
    (["opt", "{ir}", "-p", "no-such-pass"], "Unrecognized passes"),
    (["opt", "{ir}", "-p", "dce", "--print-ir-after=cse"], "not in the pipeline"),
    (["opt", "{ir}", "-p", "insert-hadamard"], "insert-hadamard: the module has no target (accel.target): run set-"),
    (["opt", "{ir}", "-p", "set-target{{target=\"nowhere.toml\"}}"], "target file not found: nowhere.toml"),
    (["opt", "{missing}"], "cannot read"),
    (["opt", "{garbage}"], "cannot parse"),
    (["import", "--model", "{missing}"], "not found"),
    (["import", "--model", "{bad_config}"], "unsupported config value hidden_act='gelu'"),
    (["import", "--model", "{model}", "--seq-len", "0"], "--seq-len must be at least 1"),
])
def test_errors_are_one_line(argv, message, ir_file, model_dir, tmp_path, capsys):
    garbage = tmp_path / "garbage.mlir"
    garbage.write_text("builtin.module { mamba.bogus }")
    bad = tmp_path / "bad"
    bad.mkdir()
    cfg = json.loads((model_dir / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**cfg, "hidden_act": "gelu"}))
    (bad / "model.safetensors").write_bytes((model_dir / "model.safetensors").read_bytes())
    paths = dict(ir=ir_file, missing=tmp_path / "nope", garbage=garbage, bad_config=bad, model=model_dir)
    out = tmp_path / "never.mlir"
    argv = [a.format(**paths) for a in argv] + ["-o", str(out)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err
    assert not out.exists()


def test_opt_dump_dir_and_time_passes(ir_file, tmp_path, capsys):
    dump = tmp_path / "dump"
    assert main(["opt", str(ir_file), "-p", "set-target,canonicalize,dce", "--dump-dir", str(dump),
                 "--time-passes"]) == 0
    captured = capsys.readouterr()
    names = sorted(p.name for p in dump.iterdir())
    assert names == ["00-input.mlir", "01-set-target.mlir", "02-canonicalize.mlir", "03-dce.mlir"]
    assert (dump / "03-dce.mlir").read_text() == captured.out  # the last stage is what opt prints
    assert "#accel.target<\"vc709\"" in captured.out and "#accel.target" not in (dump / "00-input.mlir").read_text()
    rows = [line.split()[-1] for line in captured.err.split("----Name----\n")[1].splitlines()]
    assert rows[:6] == ["start-up", "parse", "set-target", "canonicalize", "dce", "other"] and rows[-1] == "Total"


def test_a_pass_that_crashes_or_breaks_the_ir_is_a_bug_with_a_reproducer(ir_file, tmp_path, monkeypatch, capsys):
    """An exception that is not an input error, or IR that no longer verifies after a pass, is an internal error
    (exit 70) naming the failing pass's input IR, written into --dump-dir, and the command rerunning it."""
    from dataclasses import dataclass

    from xdsl.passes import ModulePass

    from fastmamba.compiler import pipeline
    from fastmamba.compiler.diagnostics import EXIT_INTERNAL

    @dataclass(frozen=True)
    class Crash(ModulePass):
        name = "crash"

        def apply(self, ctx, op):
            raise KeyError("no such site")

    @dataclass(frozen=True)
    class Unverified(ModulePass):
        name = "unverified"

        def apply(self, ctx, op):
            fn = next(iter(op.body.block.ops))
            fn.body.block.last_op.detach()  # the function loses its terminator

    monkeypatch.setitem(pipeline.PASSES, "crash", lambda: Crash)
    monkeypatch.setitem(pipeline.PASSES, "unverified", lambda: Unverified)
    for name, message in (("crash", "pass crash failed: KeyError: 'no such site' (in apply, "),
                          ("unverified", "IR does not verify after pass unverified: ")):
        dump = tmp_path / name
        assert main(["opt", str(ir_file), "-p", f"dce,{name}", "--dump-dir", str(dump)]) == EXIT_INTERNAL
        lines = capsys.readouterr().err.splitlines()
        assert lines[0].startswith(f"fastmamba opt: internal error: {message}")
        reproducer = dump / f"02-{name}.failed-input.mlir"
        assert lines[2] == f"  The IR the failing pass ran on is in {reproducer}"
        assert lines[3] == f"  Reproduce it with: fastmamba opt {reproducer} -p '{name}'"
        assert reproducer.read_text() == (dump / "01-dce.mlir").read_text()
