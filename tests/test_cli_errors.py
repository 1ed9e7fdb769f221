"""Honest errors at the command line (compiler/cli.py, compiler/diagnostics.py).

Bad input is one line and exit status 1; a bug in fastmamba (an InternalError, or any other exception
escaping a command) is one block saying it is a bug, what to report and where the reproducer IR is, exit
status 70, with the traceback only under --debug (before or after the command name).
"""

from __future__ import annotations

import pytest

from fastmamba.compiler import diagnostics
from fastmamba.compiler.cli import main
from fastmamba.compiler.commands import opt as opt_command
from fastmamba.compiler.diagnostics import EXIT_INTERNAL, invariant, write_reproducer
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
