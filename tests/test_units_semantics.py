"""The SEMANTICS registry: every operation of the table except the engine's ctl ops, each honouring the contract."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fastmamba.isa.instructions import OPS, Instruction
from fastmamba.isa.target import load_target
from fastmamba.simulator.effects import MachineState, Range, SimulationError
from fastmamba.simulator.operands import region_ranges, view
from fastmamba.simulator.semantics import SEMANTICS

TARGET = load_target("vc709")


def test_every_non_control_op_has_semantics():
    expected = {name for name, spec in OPS.items() if spec.slot != "CTL"}
    assert set(SEMANTICS) == expected
    for sem in SEMANTICS.values():
        assert callable(sem.footprint) and callable(sem.execute)


def test_ranges_are_region_spans_with_rw_in_both():
    instr = Instruction("conv", dict(dst=0x400, src=0x100, state=0x40, wgt=0x80, bias=0x200, t=2, c=3, kw=3,
                                     src_ld=5, dst_ld=4, shift=0, out_type="i32", upd=1))
    reads, writes = region_ranges(instr.regions())
    assert reads == (Range("buf", 0x100, 0x100 + 10 + 6), Range("buf", 0x40, 0x40 + 12), Range("buf", 0x80, 0x80 + 18),
                     Range("buf", 0x200, 0x20c))
    assert writes == (Range("buf", 0x40, 0x4c), Range("buf", 0x400, 0x400 + 16 + 12))


def test_view_is_a_strided_window_onto_memory():
    state = MachineState(ddr=np.zeros(4, np.uint8), buf=np.zeros(64, np.uint8))
    instr = Instruction("lin", dict(dst=8, src=0, wgt=0, scale=0, m=3, k=2, n=2, src_ld=2, dst_ld=3, src_type="i8",
                                    hlog2=0, qmul=1, qshift=0, acc=0, out="i32"))
    dst = next(r for r in instr.regions() if r.field == "dst")
    v = view(state, dst, "i32")
    v[...] = [[1, 2], [3, 4], [5, 6]]
    assert state.buf[8:8 + 32].view("<i4").tolist() == [1, 2, 0, 3, 4, 0, 5, 6]


def test_checks_are_redone_when_the_memory_or_the_target_changes():
    """Each unit remembers its last successful check; another memory size or target must not reuse it."""
    instr = Instruction("lin", dict(dst=0x800, src=0, wgt=0x400, scale=0, m=2, k=8, n=2, src_ld=8, dst_ld=2,
                                    src_type="i8", hlog2=3, qmul=1, qshift=0, acc=0, out="i32"))
    big = MachineState(ddr=np.zeros(4, np.uint8), buf=np.zeros(4096, np.uint8))
    small = MachineState(ddr=np.zeros(4, np.uint8), buf=np.zeros(0x800, np.uint8))
    lin = SEMANTICS["lin"]
    lin.footprint(instr, big, TARGET)
    with pytest.raises(SimulationError, match="field dst: buf bytes"):
        lin.execute(instr, small, TARGET)
    lin.footprint(instr, big, TARGET)
    narrow = dataclasses.replace(TARGET, hadamard_max_block=4)
    with pytest.raises(SimulationError, match="hadamard_max_block 4"):
        lin.execute(instr, big, narrow)
    tiny = dataclasses.replace(TARGET, buffer_bytes=0x800)
    with pytest.raises(SimulationError, match="field dst: buf bytes"):
        lin.footprint(instr, big, tiny)
