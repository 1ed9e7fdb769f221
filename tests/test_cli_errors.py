"""Honest errors at the command line (compiler/cli.py, compiler/diagnostics.py).

Bad input is one line and exit status 1; a bug in fastmamba (an InternalError, or any other exception
escaping a command) is one block saying it is a bug, what to report and where the reproducer IR is, exit
status 70, with the traceback only under --debug (before or after the command name).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from xdsl.passes import ModulePass

from fastmamba.compiler import diagnostics
from fastmamba.compiler.cli import main
from fastmamba.compiler.commands import opt as opt_command
from fastmamba.compiler.diagnostics import EXIT_INTERNAL, invariant, write_reproducer
from fastmamba.compiler.pipeline import PASSES, DriverOptions, PassDriver, parse_ir, parse_passes
from fastmamba.isa.errors import FastmambaError, InputError, InternalError

IR = """builtin.module {
  func.func @prefill(%x: tensor<2x16xf32>) -> tensor<2x16xf32> {
    %0 = mamba.silu %x : tensor<2x16xf32>
    func.return %0 : tensor<2x16xf32>
  }
}
"""


@pytest.fixture
def ir_file(tmp_path):
    path = tmp_path / "in.mlir"
    path.write_text(IR)
    return path


def _lookup(table: dict, key: str):
    return table[key]  # the innermost frame of the bug below


def test_internal_error_is_not_an_input_error():
    assert not issubclass(InternalError, FastmambaError)
    with pytest.raises(InternalError, match="buffers overlap"):
        invariant(1 > 2, "buffers overlap")
    invariant(2 > 1, "never raised")


def test_unexpected_exception_is_reported_as_a_bug(ir_file, monkeypatch, capsys):
    monkeypatch.setattr(opt_command, "run", lambda args: _lookup({}, "layers.0.in_proj"))
    assert main(["opt", str(ir_file)]) == EXIT_INTERNAL
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert out == "" and "Traceback" not in err
    assert lines[0].startswith("fastmamba opt: internal error: KeyError: 'layers.0.in_proj' (in _lookup, ")
    assert lines[0].endswith(f"test_cli_errors.py:{_lookup.__code__.co_firstlineno + 1})")
    assert lines[1] == "  This is a bug in fastmamba, not a problem with your input."
    assert "report it to the fastmamba developers with the command you ran, this message." in err
    assert "--debug" in lines[-1] and len(lines) == 4


@pytest.mark.parametrize("argv", [["--debug", "opt"], ["opt", "--debug"]])
def test_debug_prints_the_traceback_first(argv, ir_file, monkeypatch, capsys):
    monkeypatch.setattr(opt_command, "run", lambda args: _lookup({}, "x"))
    assert main(argv + [str(ir_file)]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    tb, block = err.split("fastmamba opt: internal error: ", 1)
    assert "in _lookup" in tb and "return table[key]" in tb and tb.rstrip().endswith("KeyError: 'x'")
    assert "bug in fastmamba" in block and "--debug" not in block


def test_internal_error_names_its_reproducer(ir_file, monkeypatch, capsys):
    def run(args):
        raise InternalError("plan-memory placed two live buffers at 0x40", reproducer="/some/03-plan-memory.mlir",
                            rerun="fastmamba opt /some/03-plan-memory.mlir -p plan-memory")

    monkeypatch.setattr(opt_command, "run", run)
    assert main(["opt", str(ir_file)]) == EXIT_INTERNAL
    assert capsys.readouterr().err.splitlines() == [
        "fastmamba opt: internal error: plan-memory placed two live buffers at 0x40",
        "  This is a bug in fastmamba, not a problem with your input.",
        "  The IR the failing pass ran on is in /some/03-plan-memory.mlir",
        "  Reproduce it with: fastmamba opt /some/03-plan-memory.mlir -p plan-memory",
        "  Please report it to the fastmamba developers with the command you ran, this message and that file.",
        "  Rerun with --debug for the traceback (fastmamba --debug ...).",
    ]


def test_input_errors_stay_one_line_without_traceback(ir_file, monkeypatch, capsys):
    def run(args):
        raise InputError("--seq-len must be at least 1, got 0")

    monkeypatch.setattr(opt_command, "run", run)
    assert main(["--debug", "opt", str(ir_file)]) == 1
    assert capsys.readouterr().err == "fastmamba opt: error: --seq-len must be at least 1, got 0\n"


def test_write_reproducer_into_the_dump_dir_or_a_named_temp_file(tmp_path, monkeypatch):
    path = write_reproducer("builtin.module {}\n", "03-plan-memory.failed-input.mlir", tmp_path / "dump")
    assert path == tmp_path / "dump" / "03-plan-memory.failed-input.mlir"
    assert path.read_text() == "builtin.module {}\n"
    monkeypatch.setattr(diagnostics.tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    first = write_reproducer("a", "plan-memory.mlir")
    second = write_reproducer("b", "plan-memory.mlir")
    assert first.parent == second.parent == tmp_path / "tmp" and first != second  # never overwrites another
    assert first.name.startswith("fastmamba-") and first.name.endswith("-plan-memory.mlir")
    assert (first.read_text(), second.read_text()) == ("a", "b")


@pytest.mark.parametrize("spec,message", [
    ("cse,,dce", "expected pass name here (at character 5)"),
    ("cse{", "expected argument name here (at character 5)"),
    ("cse dce", "expected a comma or pass arguments here (at character 4)"),
    (",dce", "expected pass name here (at character 1)"),
    ("cse{a=1", "malformed pass arguments, expected either a space or `}` here (at character 8)"),
])
def test_malformed_pipelines_are_one_line(spec, message, ir_file, capsys):
    assert main(["opt", str(ir_file), "-p", spec]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == f"fastmamba opt: error: bad pass pipeline {spec!r}: {message}\n"


@dataclass(frozen=True)
class CrashingPass(ModulePass):
    """A pass with a bug: it looks up a name that is not there."""

    name = "crashing-for-test"

    def apply(self, ctx, op) -> None:
        _lookup({}, "l0_in_proj")


@dataclass(frozen=True)
class InvalidIRPass(ModulePass):
    """A pass with a bug: it removes the op defining a value that is still used."""

    name = "invalid-ir-for-test"

    def apply(self, ctx, op) -> None:
        fn = next(iter(op.body.block.ops))
        next(iter(fn.body.block.ops)).detach()


@pytest.fixture
def broken_passes(monkeypatch):
    monkeypatch.setitem(PASSES, CrashingPass.name, lambda: CrashingPass)
    monkeypatch.setitem(PASSES, InvalidIRPass.name, lambda: InvalidIRPass)


@pytest.mark.parametrize("broken,first_line", [
    ("crashing-for-test", "pass crashing-for-test failed: KeyError: 'l0_in_proj' (in _lookup, "),
    ("invalid-ir-for-test", "IR does not verify after pass invalid-ir-for-test: "),
])
def test_a_failing_pass_is_a_bug_with_its_reproducer_in_the_dump_dir(broken, first_line, broken_passes, ir_file,
                                                                      tmp_path, capsys):
    dump = tmp_path / "dump"
    assert main(["opt", str(ir_file), "-p", f"dce,{broken}", "--dump-dir", str(dump)]) == EXIT_INTERNAL
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert out == "" and "Traceback" not in err
    assert lines[0].startswith(f"fastmamba opt: internal error: {first_line}")
    assert lines[1] == "  This is a bug in fastmamba, not a problem with your input."
    repro = dump / f"02-{broken}.failed-input.mlir"  # 00 the input, 01 after dce
    assert lines[2] == f"  The IR the failing pass ran on is in {repro}"
    assert lines[3] == f"  Reproduce it with: fastmamba opt {repro} -p '{broken}'"
    assert "and that file." in lines[4]
    assert repro.read_text() == (dump / "01-dce.mlir").read_text() == IR  # the failing pass's input, as dce left it
    # the command it names fails the same way, on that file alone
    assert main(["opt", str(repro), "-p", broken]) == EXIT_INTERNAL
    assert capsys.readouterr().err.splitlines()[0] == lines[0]


def test_a_failing_pass_without_a_dump_dir_writes_no_file(broken_passes, ir_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(diagnostics.tempfile, "tempdir", str(tmp_path))
    before = sorted(tmp_path.iterdir())
    assert main(["opt", str(ir_file), "-p", "crashing-for-test"]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "internal error: pass crashing-for-test failed: KeyError" in err and "failing pass ran on" not in err
    assert sorted(tmp_path.iterdir()) == before


def test_driver_reproducer_without_dump_dir_is_a_new_file_named_in_the_error(broken_passes, tmp_path, monkeypatch):
    monkeypatch.setattr(diagnostics.tempfile, "tempdir", str(tmp_path))
    module = parse_ir(IR)
    driver = PassDriver(parse_passes("dce,crashing-for-test"), DriverOptions(reproducer=True))
    with pytest.raises(InternalError) as info:
        driver.run(module)
    (repro,) = tmp_path.iterdir()
    assert info.value.reproducer == str(repro) and repro.read_text() == IR
    assert repro.name.startswith("fastmamba-") and repro.name.endswith("-02-crashing-for-test.failed-input.mlir")
    assert info.value.rerun == f"fastmamba opt {repro} -p 'crashing-for-test'"
    assert isinstance(info.value.__cause__, KeyError)  # the original exception, for --debug's traceback
