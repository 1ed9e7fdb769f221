"""The hand-written programs in examples/: they assemble, run on the simulator and match numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fastmamba.compiler.cli import main
from fastmamba.isa.assembler import assemble, assemble_file
from fastmamba.isa.target import load_target
from fastmamba.simulator.effects import SimulationError
from fastmamba.simulator.runtime import SimulatorBackend, numpy_dtype

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TARGET = load_target("vc709")


def _shipped(binary, program, name):
    """The default value of a tensor: the constant image's bytes at its descriptor."""
    t = binary.program(program).tensor(name)
    return np.frombuffer(binary.const_image[t.ddr:t.ddr + t.nbytes], numpy_dtype(t.dtype)).reshape(t.shape)


def _backend(binary):
    backend = SimulatorBackend(TARGET)
    backend.load(binary)
    return backend


def test_matmul_int8_matches_numpy():
    binary = assemble_file(EXAMPLES / "matmul_int8.s", TARGET)
    backend = _backend(binary)
    a, w = _shipped(binary, "main", "a"), _shipped(binary, "main", "w")
    result = backend.run("main")
    assert np.array_equal(result.outputs["c"], a.astype(np.int32) @ w.astype(np.int32).T)
    rng = np.random.default_rng(3)
    a2 = rng.integers(-128, 128, a.shape, dtype=np.int8)
    w2 = rng.integers(-128, 128, w.shape, dtype=np.int8)
    result = backend.run("main", {"a": a2, "w": w2})
    assert np.array_equal(result.outputs["c"], a2.astype(np.int32) @ w2.astype(np.int32).T)
    stats = result.stats
    assert stats.ops_per_unit["LIN"] == 4 and stats.macs == 16 * 64 * 64
    assert stats.ddr_bytes_read == 16 * 64 + 64 * 64 and stats.ddr_bytes_written == 16 * 64 * 4


def test_matmul_int8_without_its_wait_is_a_hazard():
    text = (EXAMPLES / "matmul_int8.s").read_text()
    broken = text.replace("ctl.wait sem=2, count=1\n", "", 1)
    assert broken != text
    backend = _backend(assemble(broken, "broken.s", TARGET))
    with pytest.raises(SimulationError, match=r"^bundle 4, slot LIN: .*RAW hazard.*\(bundle 1, slot LD\)"):
        backend.run("main")


def test_readme_commands(tmp_path, capsys):
    fmb = tmp_path / "mm.fmb"
    assert main(["asm", str(EXAMPLES / "matmul_int8.s"), "-o", str(fmb)]) == 0
    assert main(["sim", str(fmb)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("program main: ") and "output c int32[16, 64]" in out
