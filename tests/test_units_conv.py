"""CONV semantics against a Python loop: taps, bias, rounding shift, saturation, state update, split runs, cost."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fastmamba.isa.instructions import Instruction
from fastmamba.isa.target import load_target
from fastmamba.simulator.effects import MachineState, SimulationError
from fastmamba.simulator.semantics import SEMANTICS
from buffer_io import get, put

TARGET = load_target("vc709")
KW = TARGET.conv_kernel_max
ADDR = dict(src=0x1000, state=0x8000, wgt=0x9000, bias=0xA000, dst=0x10000)


def new_state() -> MachineState:
    return MachineState(ddr=np.zeros(8, np.uint8), buf=np.zeros(1 << 18, np.uint8))


def conv(**kw):
    args = dict(ADDR, t=1, c=1, kw=KW, src_ld=1, dst_ld=1, shift=0, out_type="i16", upd=1)
    args.update(kw)
    return Instruction("conv", args)


def issue(instr, state):
    sem = SEMANTICS[instr.op]
    fp = sem.footprint(instr, state, TARGET)
    sem.execute(instr, state, TARGET)
    return fp


def reference(src, st, wgt, bias, shift, out_type):
    """docs/NUMERICS.md §3 per element, Python integers."""
    t, c = src.shape
    kw = wgt.shape[0]
    lo, hi = (-32768, 32767) if out_type == "i16" else (-(2**31), 2**31 - 1)
    out = [[0] * c for _ in range(t)]
    for ch in range(c):
        xx = [int(v) for v in st[:, ch]] + [int(v) for v in src[:, ch]]
        for tt in range(t):
            acc = sum(int(wgt[j, ch]) * xx[tt + j] for j in range(kw)) + int(bias[ch])
            r = acc if shift == 0 else (acc + (1 << (shift - 1))) // (1 << shift)
            out[tt][ch] = max(lo, min(hi, r))
        new = xx[-(kw - 1):]
        st = st.copy()
        st[:, ch] = new
    return np.array(out), st


def load(state, src, st, wgt, bias, src_ld):
    put(state, ADDR["src"], src, src_ld)
    put(state, ADDR["state"], st)
    put(state, ADDR["wgt"], wgt)
    put(state, ADDR["bias"], bias)


@pytest.mark.parametrize("kw,shift,out_type", [(KW, 7, "i16"), (2, 0, "i32"), (3, 12, "i16"), (KW, 70, "i32"), (KW, 0,
                                                                                                                "i16")])
def test_conv_bit_exact_with_state_update(kw, shift, out_type):
    rng = np.random.default_rng(kw * 100 + shift)
    t, c, src_ld, dst_ld = 6, 40, 48, 45
    src = rng.integers(-32768, 32768, (t, c)).astype(np.int16)
    st = rng.integers(-32768, 32768, (kw - 1, c)).astype(np.int16)
    wgt = rng.integers(-32768, 32768, (kw, c)).astype(np.int16)
    bias = rng.integers(-(2**31), 2**31, c).astype(np.int32)
    state = new_state()
    load(state, src, st, wgt, bias, src_ld)
    issue(conv(t=t, c=c, kw=kw, src_ld=src_ld, dst_ld=dst_ld, shift=shift, out_type=out_type), state)
    dst, new_st = reference(src, st, wgt, bias, shift, out_type)
    got = get(state, ADDR["dst"], t, c, np.int16 if out_type == "i16" else np.int32, dst_ld)
    assert got.tolist() == dst.tolist()
    assert get(state, ADDR["state"], kw - 1, c, np.int16).tolist() == new_st.tolist()
    if shift == 7:  # large inputs at a small shift: saturation really happens
        assert {32767, -32768} <= set(got.ravel().tolist())


def test_conv_without_update_keeps_state_and_short_t_keeps_old_rows():
    rng = np.random.default_rng(2)
    c = 8
    src = rng.integers(-100, 100, (1, c)).astype(np.int16)
    st = rng.integers(-100, 100, (KW - 1, c)).astype(np.int16)
    wgt = rng.integers(-100, 100, (KW, c)).astype(np.int16)
    bias = np.zeros(c, np.int32)
    state = new_state()
    load(state, src, st, wgt, bias, c)
    issue(conv(t=1, c=c, src_ld=c, dst_ld=c, upd=0), state)
    assert get(state, ADDR["state"], KW - 1, c, np.int16).tolist() == st.tolist()
    issue(conv(t=1, c=c, src_ld=c, dst_ld=c, upd=1), state)  # one token: the state shifts by one row
    assert get(state, ADDR["state"], KW - 1, c, np.int16).tolist() == np.concatenate([st[1:], src]).tolist()


def test_conv_over_t_equals_two_halves_with_state_carried():
    rng = np.random.default_rng(9)
    t, c = 10, 33
    src = rng.integers(-4000, 4000, (t, c)).astype(np.int16)
    st = rng.integers(-4000, 4000, (KW - 1, c)).astype(np.int16)
    wgt = rng.integers(-4000, 4000, (KW, c)).astype(np.int16)
    bias = rng.integers(-(2**20), 2**20, c).astype(np.int32)
    whole = new_state()
    load(whole, src, st, wgt, bias, c)
    issue(conv(t=t, c=c, src_ld=c, dst_ld=c, shift=9), whole)
    halves = new_state()
    load(halves, src, st, wgt, bias, c)
    for lo, hi in ((0, 3), (3, t)):
        issue(conv(t=hi - lo, c=c, src_ld=c, dst_ld=c, shift=9, src=ADDR["src"] + 2 * c * lo,
                   dst=ADDR["dst"] + 2 * c * lo),
              halves)
    assert np.array_equal(whole.buf, halves.buf)
    assert get(whole, ADDR["dst"], t, c, np.int16).tolist() == reference(src, st, wgt, bias, 9, "i16")[0].tolist()


def test_conv_footprint_cost_and_state_access():
    state = new_state()
    t, c = 5, 100
    fp = SEMANTICS["conv"].footprint(conv(t=t, c=c, src_ld=c, dst_ld=c), state, TARGET)
    assert fp.occupancy == math.ceil(t * c / TARGET.conv_channels) and fp.latency == TARGET.conv_latency
    assert fp.macs == t * c * KW
    state_range = [r for r in fp.reads if r.start == ADDR["state"]]
    assert state_range and state_range[0] in fp.writes and len(fp.writes) == 2
    fp = SEMANTICS["conv"].footprint(conv(t=t, c=c, src_ld=c, dst_ld=c, upd=0), state, TARGET)
    assert len(fp.writes) == 1 and len(fp.reads) == 4


def test_conv_validation_names_the_field():
    state = new_state()
    cases = [
        (conv(kw=KW + 1), r"^conv: field kw = .* outside \[2, "),
        (conv(kw=1), r"^conv: field kw = 1 outside"),
        (conv(t=0), r"^conv: field t must be at least 1"),
        (conv(c=0), r"^conv: field c must be at least 1"),
        (conv(bias=ADDR["bias"] + 2), r"^conv: field bias = .* is not aligned to 4 bytes"),
        (conv(dst=ADDR["dst"] + 2, out_type="i32"), r"^conv: field dst = .* is not aligned to 4 bytes"),
        (conv(src=(1 << 18) - 2, t=2, src_ld=1), r"^conv: field src: buf bytes .* outside"),
        (conv(t=3, c=4, src_ld=4, dst_ld=2), r"^conv: field dst_ld: written rows of dst overlap"),
        (conv(dst=ADDR["state"]), r"^conv: field state: the written buf bytes .* overlap operand dst"),
    ]
    for instr, pattern in cases:
        with pytest.raises(SimulationError, match=pattern):
            SEMANTICS["conv"].footprint(instr, state, TARGET)
