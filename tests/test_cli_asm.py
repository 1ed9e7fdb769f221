"""`fastmamba asm` and `fastmamba disasm` through compiler.cli.main: success and error paths."""

from __future__ import annotations

import pytest

from fastmamba.compiler.cli import main
from fastmamba.isa.container import Binary, Program, TensorDesc, dump_fmb, read_fmb
from fastmamba.isa.instructions import Bundle, Instruction

BINARY = Binary((Program("main", 64, (Bundle((Instruction("ctl.wait", {"sem": 1, "count": 1}),), 2),
                                      Bundle((Instruction("ctl.halt", {}),))),
                         (TensorDesc("x", "input", 16, (4,), "i8"),), {1: "end"}),), bytes(range(1, 9)), bytes(32))


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture
def fmb(tmp_path):
    path = tmp_path / "p.fmb"
    path.write_bytes(dump_fmb(BINARY))
    return path


def test_disasm_to_stdout(fmb, capsys):
    assert main(["disasm", str(fmb)]) == 0
    out = capsys.readouterr().out
    assert "ctl.wait sem=1, count=1 ; delay=2" in out and '.loc "end"' in out and ".input x ddr=0x10" in out


def test_disasm_to_file_without_data(fmb, tmp_path, capsys):
    out = tmp_path / "p.s"
    assert main(["disasm", str(fmb), "-o", str(out), "--no-data", "--no-numbers"]) == 0
    text = out.read_text()
    assert ".data" not in text and "# 0" not in text and "ctl.halt\n" in text
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("content, needle", [
    (b"", "wrong magic"),
    (b"#!/bin/sh\necho hi\n", "wrong magic"),
    (dump_fmb(BINARY)[:100], "truncated"),
    (dump_fmb(BINARY)[:8] + b"\x07" + dump_fmb(BINARY)[9:], "unsupported .fmb format version 7"),
])
def test_disasm_rejects_bad_binaries(tmp_path, capsys, content, needle):
    path = tmp_path / "bad.fmb"
    path.write_bytes(content)
    out = tmp_path / "bad.s"
    assert main(["disasm", str(path), "-o", str(out)]) != 0
    _one_line_error(capsys, "fastmamba disasm: error:", needle)
    assert not out.exists()


def test_disasm_missing_file(tmp_path, capsys):
    assert main(["disasm", str(tmp_path / "none.fmb")]) != 0
    _one_line_error(capsys, "cannot read", "none.fmb")


def test_disasm_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["disasm", "--help"])
    assert info.value.code == 0
    assert "--no-data" in capsys.readouterr().out


# --- asm ----------------------------------------------------------------------------
@pytest.fixture
def load_target():
    from fastmamba.isa.target import load_target

    return load_target

SOURCE = """\
.data addr=0x0 dtype=i8 values=[1, 2, 3, 4]
.program main ddr_size=0x100
.input x ddr=0x10 shape=(4,) dtype=i8
ctl.wait sem=0, count=1 ; delay=3
ctl.halt
"""


def test_asm_then_disasm_round_trip(tmp_path, capsys, load_target):
    src = tmp_path / "p.s"
    src.write_text(SOURCE)
    out = tmp_path / "p.fmb"
    assert main(["asm", str(src), "-o", str(out)]) == 0
    binary = read_fmb(out, load_target("vc709"))
    assert binary.target_digest == load_target("vc709").digest()
    assert binary.program("main").tensor("x").ddr == 0x10
    text = tmp_path / "back.s"
    assert main(["disasm", str(out), "-o", str(text)]) == 0
    again = tmp_path / "again.fmb"
    assert main(["asm", str(text), "-o", str(again)]) == 0
    assert again.read_bytes() == out.read_bytes()


@pytest.mark.parametrize("source, needle", [
    (".program main ddr_size=0x100\nctl.wait sem=0\n", "p.s:2: ctl.wait: missing field(s) count"),
    (".program main ddr_size=0x100\nctl.halt | ctl.halt\n", "p.s:2: bundle issues more than one operation"),
    (f".target_digest {'ab' * 32}\n", "differs from the target's"),
    (".program main ddr_size=0x10000000000000\n", "exceeds the target's DDR"),
])
def test_asm_errors_leave_no_output(tmp_path, capsys, source, needle, load_target):
    src = tmp_path / "p.s"
    src.write_text(source)
    out = tmp_path / "p.fmb"
    assert main(["asm", str(src), "-o", str(out)]) != 0
    _one_line_error(capsys, "fastmamba asm: error:", needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.s"]


def test_asm_missing_source(tmp_path, capsys, load_target):
    assert main(["asm", str(tmp_path / "none.s"), "-o", str(tmp_path / "x.fmb")]) != 0
    _one_line_error(capsys, "cannot read", "none.s")


def test_asm_unknown_target(tmp_path, capsys, load_target):
    src = tmp_path / "p.s"
    src.write_text(SOURCE)
    assert main(["asm", str(src), "-o", str(tmp_path / "p.fmb"), "--target", "no-such-board"]) != 0
    _one_line_error(capsys, "fastmamba asm: error:")
    assert not (tmp_path / "p.fmb").exists()


def test_asm_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["asm", "--help"])
    assert info.value.code == 0
    assert "--target" in capsys.readouterr().out
