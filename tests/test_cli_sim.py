"""`fastmamba sim`: summary, JSON, trace, inputs, output files and the one-line error paths.

The binary here needs no compute unit: its output tensor `y` lies at the same
DDR address as its input `x`, so a run returns what was written (or the
constant image's bytes there), and its bundles are a delay and a halt.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from fastmamba.compiler.cli import main
from fastmamba.isa.container import Binary, Program, TensorDesc, write_fmb
from fastmamba.isa.instructions import Bundle, Instruction
from fastmamba.isa.target import load_target

TARGET = load_target("vc709")
IDLE = 5


def _program(name: str) -> Program:
    return Program(name, ddr_size=4096, bundles=(Bundle((), delay=IDLE), Bundle((Instruction("ctl.halt"),))), tensors=(
        TensorDesc("x", "input", 1024, (2, 3), "i16"),
        TensorDesc("y", "output", 1024, (2, 3), "i16"),
        TensorDesc("big", "output", 2048, (40,), "f32"),
        TensorDesc("h", "state", 0, (4,), "u8"),
    ))


@pytest.fixture
def fmb(tmp_path):
    path = tmp_path / "p.fmb"
    write_fmb(path, Binary((_program("main"),), const_image=bytes([7, 8, 9, 10]), target_digest=TARGET.digest()))
    return path


def _sim(capsys, *argv):
    code = main(["sim", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_summary_table(fmb, capsys):
    code, out, err = _sim(capsys, fmb)
    assert code == 0 and err == ""
    # nop with delay 5 at 0; halt at 6: 7 cycles.
    assert out.startswith("program main: 7 cycles")
    assert "output y int16[2, 3] = [[0, 0, 0], [0, 0, 0]]" in out
    assert "output big float32[40]: min 0.0, max 0.0" in out
    assert "state h uint8[4] = [7, 8, 9, 10]" in out
    for unit in ("LD", "ST", "LIN", "CONV", "SSM", "VEC"):
        assert f"\n{unit} " in out
    assert "structural" in out and "DDR bytes read" in out


def test_json_with_input(fmb, tmp_path, capsys):
    x = np.arange(6, dtype=np.int16).reshape(2, 3) - 3
    np.save(tmp_path / "x.npy", x)
    code, out, _ = _sim(capsys, fmb, "--json", "--input", f"x={tmp_path / 'x.npy'}")
    assert code == 0
    doc = json.loads(out)
    assert doc["program"] == "main" and doc["cycles"] == IDLE + 2
    assert doc["time_s"] == pytest.approx((IDLE + 2) / TARGET.clock_hz)
    assert doc["outputs"]["y"] == {"shape": [2, 3], "dtype": "int16", "values": x.tolist()}
    assert doc["outputs"]["big"]["summary"]["max"] == 0.0
    assert doc["states"]["h"]["values"] == [7, 8, 9, 10]
    assert set(doc["units"]["LIN"]) >= {"busy_cycles", "utilization"}
    assert set(doc["stalls"]) == {"semaphore", "structural", "dma_queue"}
    assert doc["ddr_bytes_read"] == 0 and doc["ddr_bytes_written"] == 0


def test_trace_and_output_dir(fmb, tmp_path, capsys):
    trace, outdir = tmp_path / "t.json", tmp_path / "out" / "deeper"
    code, _, _ = _sim(capsys, fmb, "--trace", trace, "--output-dir", outdir)
    assert code == 0
    doc = json.loads(trace.read_text())
    assert "traceEvents" in doc and "cycle" in doc["otherData"]["time_unit"]
    assert sorted(p.name for p in outdir.iterdir()) == ["big.npy", "h.npy", "y.npy"]
    assert np.array_equal(np.load(outdir / "h.npy"), np.array([7, 8, 9, 10], np.uint8))


def test_program_choice(tmp_path, capsys):
    path = tmp_path / "two.fmb"
    write_fmb(path, Binary((_program("prefill"), _program("decode")), target_digest=TARGET.digest()))
    code, _, err = _sim(capsys, path)
    assert code == 1 and err.strip() == ("fastmamba sim: error: the binary has 2 programs (prefill, decode): "
                                         "choose one with --program")
    code, out, _ = _sim(capsys, path, "--program", "decode")
    assert code == 0 and out.startswith("program decode:")
    code, _, err = _sim(capsys, path, "--program", "main")
    assert code == 1 and "no program 'main' (has: prefill, decode)" in err


@pytest.mark.parametrize("argv, message", [
    (["--input", "x"], "--input expects NAME=FILE.npy, got 'x'"),
    (["--input", "x=/nonexistent/x.npy"], "cannot read --input x from /nonexistent/x.npy"),
    (["--input", "q={npy}"], "program main has no input or state 'q'"),
    (["--input", "x={npy}", "--input", "x={npy}"], "--input x given twice"),
    (["--input", "y={npy}"], "'y' is an output, not an input or state"),
    (["--input", "h={npy}"], "state 'h' must have dtype u8 (uint8), got int16"),
    (["--target", "/nonexistent/target.json"], "/nonexistent/target.json"),
])
def test_errors_are_one_line(fmb, tmp_path, capsys, argv, message):
    npy = tmp_path / "x.npy"
    np.save(npy, np.zeros((2, 3), np.int16))
    code, out, err = _sim(capsys, fmb, *[a.format(npy=npy) for a in argv])
    assert code == 1 and out == ""
    assert err.startswith("fastmamba sim: error: ") and message in err and err.count("\n") == 1


def test_missing_and_foreign_binaries(tmp_path, capsys):
    code, _, err = _sim(capsys, tmp_path / "none.fmb")
    assert code == 1 and "cannot read" in err and err.count("\n") == 1
    (tmp_path / "junk.fmb").write_bytes(b"not a binary")
    code, _, err = _sim(capsys, tmp_path / "junk.fmb")
    assert code == 1 and "not a .fmb file" in err
    other = tmp_path / "other.fmb"
    write_fmb(other, Binary((_program("main"),), target_digest=bytes(range(32))))
    code, _, err = _sim(capsys, other)
    assert code == 1
    assert f"digest {bytes(range(32)).hex()[:16]}" in err and f"has digest {TARGET.digest().hex()[:16]}" in err


def test_program_errors_are_one_line(tmp_path, capsys):
    path = tmp_path / "nohalt.fmb"
    prog = Program("main", ddr_size=64, bundles=(Bundle((Instruction("ctl.wait", {"sem": 1, "count": 1}),)),
                                                 Bundle((Instruction("ctl.halt"),))))
    write_fmb(path, Binary((prog,), target_digest=TARGET.digest()))
    code, _, err = _sim(capsys, path)
    assert code == 1 and err.startswith("fastmamba sim: error: bundle 0, slot CTL: `ctl.wait sem=1, count=1`: deadlock")


def test_target_defaults_to_the_preset_the_binary_records(tmp_path, capsys):
    small = tmp_path / "small.fmb"
    write_fmb(small, Binary((_program("main"),), target_digest=load_target("small").digest()))
    code, out, err = _sim(capsys, small, "--json")
    assert code == 0 and err == "" and json.loads(out)["target"] == "small"
    code, _, err = _sim(capsys, small, "--target", "vc709")  # an explicit target is still checked
    assert code == 1 and "built for another target" in err
