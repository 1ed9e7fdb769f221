"""DMA semantics (ld, ldg, st): strided copies and the row gather against byte-level loops, through the engine too."""

from __future__ import annotations

import numpy as np
import pytest

from fastmamba.isa.instructions import Bundle, Instruction
from fastmamba.isa.target import load_target
from fastmamba.simulator.effects import MachineState, Range, SimulationError
from fastmamba.simulator.engine import simulate
from fastmamba.simulator.semantics import SEMANTICS

TARGET = load_target("vc709")


def new_state(buf: int = 1 << 16, ddr: int = 1 << 16) -> MachineState:
    rng = np.random.default_rng(7)
    return MachineState(ddr=rng.integers(0, 256, ddr, dtype=np.uint8), buf=np.zeros(buf, np.uint8))


def issue(instr, state):
    sem = SEMANTICS[instr.op]
    fp = sem.footprint(instr, state, TARGET)
    sem.execute(instr, state, TARGET)
    return fp


def ld(**kw):
    args = dict(buf=0, ddr=0, rows=1, row_bytes=1, ddr_stride=0, buf_stride=0, sem=0)
    args.update(kw)
    return Instruction("ld", args)


def st(**kw):
    args = dict(buf=0, ddr=0, rows=1, row_bytes=1, ddr_stride=0, buf_stride=0, sem=0)
    args.update(kw)
    return Instruction("st", args)


def ldg(**kw):
    args = dict(buf=0, ddr=0, idx=0, rows=1, row_bytes=1, ddr_stride=0, buf_stride=0, limit=1, sem=0)
    args.update(kw)
    return Instruction("ldg", args)


def test_ld_2d_strides_copy_exactly_the_rows():
    state = new_state()
    ddr_before = state.ddr.copy()
    fp = issue(ld(buf=100, ddr=1000, rows=5, row_bytes=7, ddr_stride=13, buf_stride=9), state)
    expect = np.zeros_like(state.buf)
    for r in range(5):
        for b in range(7):
            expect[100 + 9 * r + b] = ddr_before[1000 + 13 * r + b]
    assert np.array_equal(state.buf, expect)
    assert np.array_equal(state.ddr, ddr_before)
    assert fp.ddr_bytes == 35
    assert fp.reads == (Range("ddr", 1000, 1000 + 4 * 13 + 7),) and fp.writes == (Range("buf", 100, 100 + 4 * 9 + 7),)


def test_ld_broadcast_row_with_zero_ddr_stride():
    state = new_state()
    issue(ld(buf=0, ddr=40, rows=3, row_bytes=4, ddr_stride=0, buf_stride=4), state)
    assert state.buf[:12].tolist() == state.ddr[40:44].tolist() * 3


def test_st_2d_strides():
    state = new_state()
    state.buf[:] = np.arange(state.buf.size) % 251
    ddr_before = state.ddr.copy()
    issue(st(ddr=500, buf=64, rows=4, row_bytes=6, ddr_stride=10, buf_stride=8), state)
    expect = ddr_before.copy()
    for r in range(4):
        for b in range(6):
            expect[500 + 10 * r + b] = state.buf[64 + 8 * r + b]
    assert np.array_equal(state.ddr, expect)


def test_ldg_gathers_rows_and_reads_only_those():
    state = new_state()
    idx = np.array([3, 0, 3, 7, 8], dtype=np.int32)
    state.buf[4000:4000 + idx.nbytes] = idx.view(np.uint8)
    table = 2000
    fp = issue(ldg(buf=64, ddr=table, idx=4000, rows=5, row_bytes=6, ddr_stride=6, buf_stride=8, limit=10), state)
    for r, i in enumerate(idx):
        assert state.buf[64 + 8 * r:64 + 8 * r + 6].tolist() == state.ddr[table + 6 * i:table + 6 * i + 6].tolist()
    # rows 7 and 8 touch: one range; rows 0 and 3 apart
    assert set(fp.reads) == {Range("buf", 4000, 4020), Range("ddr", table, table + 6), Range("ddr", table + 18,
                                                                                             table + 24),
                             Range("ddr", table + 42, table + 54)}
    assert fp.writes == (Range("buf", 64, 64 + 4 * 8 + 6),) and fp.ddr_bytes == 30


@pytest.mark.parametrize("bad", [-1, 10, 1 << 30])
def test_ldg_index_outside_the_table_is_an_error(bad):
    state = new_state()
    idx = np.array([1, bad], dtype=np.int32)
    state.buf[4000:4008] = idx.view(np.uint8)
    before = state.buf.copy()
    with pytest.raises(SimulationError, match=r"^ldg: field idx: index idx\[1\] = .* outside \[0, limit = 10\)"):
        issue(ldg(buf=64, ddr=0, idx=4000, rows=2, row_bytes=4, ddr_stride=4, buf_stride=4, limit=10), state)
    assert np.array_equal(state.buf, before)


def test_dma_validation_names_the_field():
    state = new_state(buf=1024, ddr=2048)
    cases = [
        (ld(buf=1000, rows=2, row_bytes=16, buf_stride=16), r"^ld: field buf: buf bytes .* outside the buf of 0x400"),
        (ld(ddr=2040, rows=1, row_bytes=16), r"^ld: field ddr: ddr bytes .* outside the ddr of 0x800"),
        (st(ddr=0, buf=0, rows=3, row_bytes=8, ddr_stride=4, buf_stride=8), r"^st: field ddr_stride: written rows"),
        (ld(rows=3, row_bytes=8, buf_stride=7), r"^ld: field buf_stride: written rows"),
        (ld(rows=0, row_bytes=8), r"^ld: field rows must be at least 1"),
        (st(row_bytes=0), r"^st: field row_bytes must be at least 1"),
        (ldg(idx=2, rows=1), r"^ldg: field idx = 0x2 is not aligned to 4 bytes"),
        (ldg(idx=0, buf=2, rows=1, row_bytes=4), r"^ldg: field buf: the written buf bytes .* overlap operand idx"),
        (ldg(ddr=2000, limit=100, row_bytes=8, ddr_stride=8), r"^ldg: field ddr: ddr bytes"),
        (ld(sem=TARGET.semaphores + 1),
         rf"^ld: field sem = {TARGET.semaphores + 1} outside \[0, {TARGET.semaphores}\]"),
        (st(sem=255), r"^st: field sem = 255 outside"),
        (ldg(idx=64, sem=TARGET.semaphores + 1), r"^ldg: field sem = "),
    ]
    for instr, pattern in cases:
        with pytest.raises(SimulationError, match=pattern):
            SEMANTICS[instr.op].footprint(instr, state, TARGET)
        with pytest.raises(SimulationError, match=pattern):
            SEMANTICS[instr.op].execute(instr, state, TARGET)


def test_buffer_limit_is_the_targets():
    state = new_state(buf=TARGET.buffer_bytes + 4096)
    with pytest.raises(SimulationError, match="outside the buf"):
        issue(ld(buf=TARGET.buffer_bytes - 4, row_bytes=8), state)


def test_round_trip_through_the_engine():
    state = new_state()
    payload = state.ddr[100:164].copy()
    bundles = [
        Bundle((ld(buf=256, ddr=100, rows=8, row_bytes=8, ddr_stride=8, buf_stride=16, sem=1),)),
        Bundle((Instruction("ctl.wait", {"sem": 1, "count": 1}),)),
        Bundle((st(ddr=9000, buf=256, rows=8, row_bytes=8, ddr_stride=8, buf_stride=16),)),
        Bundle((Instruction("ctl.halt", {}),)),
    ]
    stats = simulate(bundles, state, TARGET)
    assert state.ddr[9000:9064].tolist() == payload.tolist()
    assert stats.ddr_bytes_read == 64 and stats.ddr_bytes_written == 64
