"""`fastmamba translate`: scheduled accel IR -> .fmb (compiler/commands/translate.py, compiler.compile.emit_module).

A small random model is compiled with --dump-dir; its last stage translates to compile's binary byte for byte
(from a file or stdin), an edit of that IR shows in the binary (translate reads the IR, not a copy of the
binary), and a bad output path is one line with nothing written.  The wrong-level errors are FileCheck
tests (tests/filecheck/cli/pass-order.mlir); the bundled model's case is test_opt_compile_equivalence.py."""

from __future__ import annotations

import io
import sys

import pytest

from fastmamba.compiler.cli import main
from fastmamba.isa.container import read_fmb
from model_factory import make_config, random_hf_model, save_hf_dir


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("translate")
    model = save_hf_dir(random_hf_model(make_config("tiny"), seed=3), folder / "model")
    out, dump = folder / "m.fmb", folder / "stages"
    assert main(["compile", "--model", str(model), "--seq-len", "3", "--calibration", "random",
                 "--calibration-windows", "1", "-o", str(out), "--dump-dir", str(dump)]) == 0
    return sorted(dump.glob("*.mlir"))[-1], out


def test_translate_gives_compiles_bytes_from_a_file_or_stdin(compiled, tmp_path, monkeypatch):
    last, out = compiled
    assert main(["translate", str(last), "-o", str(tmp_path / "a.fmb")]) == 0
    assert (tmp_path / "a.fmb").read_bytes() == out.read_bytes()
    monkeypatch.setattr(sys, "stdin", io.StringIO(last.read_text()))
    assert main(["translate", "-", "-o", str(tmp_path / "b.fmb")]) == 0
    assert (tmp_path / "b.fmb").read_bytes() == out.read_bytes()


def test_an_edit_of_the_ir_shows_in_the_binary(compiled, tmp_path):
    """The first bundle's delay raised by 7 in the IR: the translated binary's first bundle has it, the rest equal."""
    last, out = compiled
    text = last.read_text()
    head = "accel.bundle attributes {delay = "
    at = text.index(head) + len(head)
    old = int(text[at:text.index(" ", at)])
    edited = tmp_path / "edited.mlir"
    edited.write_text(text[:at] + str(old + 7) + text[text.index(" ", at):])
    assert main(["translate", str(edited), "-o", str(tmp_path / "e.fmb")]) == 0
    original, changed = read_fmb(out), read_fmb(tmp_path / "e.fmb")
    first = changed.programs[0].bundles[0]
    assert first.delay == original.programs[0].bundles[0].delay + 7 == old + 7
    assert changed.programs[0].bundles[1:] == original.programs[0].bundles[1:]
    assert changed.programs[1:] == original.programs[1:] and changed.const_image == original.const_image


def test_unwritable_output_is_one_line_and_writes_nothing(compiled, tmp_path, capsys):
    last, _ = compiled
    out = tmp_path / "missing" / "m.fmb"
    assert main(["translate", str(last), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fastmamba translate: error: ") and err.count("\n") == 1 and not out.exists()
