"""LIN semantics against a plain integer reference: Hadamard, requantization, acc, both outputs, k-tiling, cost."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fastmamba.isa.instructions import Instruction
from fastmamba.isa.target import load_target
from fastmamba.simulator.effects import MachineState, Range, SimulationError
from fastmamba.simulator.semantics import SEMANTICS
from buffer_io import get, put

TARGET = load_target("vc709")
NP = {"i8": np.int8, "i16": np.int16, "i32": np.int32, "f32": np.float32}


def new_state() -> MachineState:
    return MachineState(ddr=np.zeros(64, np.uint8), buf=np.zeros(1 << 20, np.uint8))


def lin(**kw):
    args = dict(dst=0, src=0, wgt=0, scale=0, m=1, k=1, n=1, src_ld=1, dst_ld=1, src_type="i8", hlog2=0, qmul=1,
                qshift=0, acc=0, out="i32")
    args.update(kw)
    return Instruction("lin", args)


def issue(instr, state):
    sem = SEMANTICS[instr.op]
    fp = sem.footprint(instr, state, TARGET)
    sem.execute(instr, state, TARGET)
    return fp


def sylvester(b):
    h = np.array([[1]], dtype=np.int64)
    while len(h) < b:
        h = np.kron(np.array([[1, 1], [1, -1]]), h)
    return h


def reference_total(a, w, hlog2, qmul, qshift, prev=None):
    """The documented steps with plain Python integers (no isa.numerics)."""
    b = 1 << hlog2
    h = sylvester(b).tolist()
    m, k = a.shape
    n = w.shape[0]
    out = [[0] * n for _ in range(m)]
    for i in range(m):
        rot = [sum(int(a[i, blk * b + r]) * h[r][c] for r in range(b)) for blk in range(k // b) for c in range(b)]
        q = []
        for v in rot:
            v *= qmul
            v = v if qshift == 0 else (v + (1 << (qshift - 1))) // (1 << qshift)
            q.append(max(-128, min(127, v)))
        for j in range(n):
            s = sum(q[x] * int(w[j, x]) for x in range(k)) + (int(prev[i, j]) if prev is not None else 0)
            out[i][j] = max(-(2**31), min(2**31 - 1, s))
    return np.array(out, dtype=np.int64)


LAYOUT = dict(src=0x1000, wgt=0x20000, dst=0x40000, scale=0x60000)


@pytest.mark.parametrize("src_type,hlog2,qmul,qshift", [("i8", 0, 1, 0), ("i8", 2, 3, 2), ("i16", 3, 181, 12),
                                                         ("i16", 0, 1, 8), ("i8", 4, 1, 2)])
def test_lin_i32_bit_exact(src_type, hlog2, qmul, qshift):
    rng = np.random.default_rng(hlog2 * 7 + qshift)
    m, k, n, src_ld, dst_ld = 5, 32, 6, 40, 9
    lo, hi = (-128, 128) if src_type == "i8" else (-32768, 32768)
    a = rng.integers(lo, hi, (m, k)).astype(NP[src_type])
    w = rng.integers(-128, 128, (n, k)).astype(np.int8)
    state = new_state()
    put(state, LAYOUT["src"], a, src_ld)
    put(state, LAYOUT["wgt"], w)
    instr = lin(m=m, k=k, n=n, src_ld=src_ld, dst_ld=dst_ld, src_type=src_type, hlog2=hlog2, qmul=qmul, qshift=qshift,
                dst=LAYOUT["dst"], src=LAYOUT["src"], wgt=LAYOUT["wgt"])
    issue(instr, state)
    got = get(state, LAYOUT["dst"], m, n, np.int32, dst_ld)
    assert got.tolist() == reference_total(a, w, hlog2, qmul, qshift).tolist()
    # the gap columns between dst rows are untouched
    assert not state.buf[LAYOUT["dst"] + 4 * n:LAYOUT["dst"] + 4 * dst_ld].any()


def test_lin_identity_requant_is_plain_int8_matmul():
    rng = np.random.default_rng(3)
    a = rng.integers(-128, 128, (4, 16)).astype(np.int8)
    w = rng.integers(-128, 128, (3, 16)).astype(np.int8)
    state = new_state()
    put(state, LAYOUT["src"], a)
    put(state, LAYOUT["wgt"], w)
    issue(lin(m=4, k=16, n=3, src_ld=16, dst_ld=3, dst=LAYOUT["dst"], src=LAYOUT["src"], wgt=LAYOUT["wgt"]), state)
    assert get(state, LAYOUT["dst"], 4, 3, np.int32).tolist() == (a.astype(np.int64) @ w.T.astype(np.int64)).tolist()


def test_lin_acc_saturates_and_out_f32_rescales():
    rng = np.random.default_rng(5)
    m, k, n = 3, 64, 4
    a = rng.integers(1, 128, (m, k)).astype(np.int8)
    w = rng.integers(-128, 128, (n, k)).astype(np.int8)
    w[0], w[1] = 127, -127  # push column 0 past int32's max, column 1 past its min
    prev = np.array([[2**31 - 10, -(2**31) + 5, 0, 17]] * m, dtype=np.int32)
    scale = np.array([0.5, 1e-3, -2.0, 3.0e-7], dtype=np.float32)
    for out in ("i32", "f32"):
        state = new_state()
        put(state, LAYOUT["src"], a)
        put(state, LAYOUT["wgt"], w)
        put(state, LAYOUT["dst"], prev)
        put(state, LAYOUT["scale"], scale)
        issue(lin(m=m, k=k, n=n, src_ld=k, dst_ld=n, acc=1, out=out, **LAYOUT), state)
        total = reference_total(a, w, 0, 1, 0, prev)
        assert total[:, 0].tolist() == [2**31 - 1] * m and total[:, 1].tolist() == [-(2**31)] * m
        if out == "i32":
            assert get(state, LAYOUT["dst"], m, n, np.int32).tolist() == total.tolist()
        else:
            expect = [[np.float32(np.float32(int(total[i, j])) * scale[j]) for j in range(n)] for i in range(m)]
            assert get(state, LAYOUT["dst"], m, n, np.float32).tolist() == np.array(expect, np.float32).tolist()


def test_lin_k_tiling_equals_one_big_matmul():
    rng = np.random.default_rng(11)
    m, k, n, tile = 4, 128, 5, 64
    a = rng.integers(-32768, 32768, (m, k)).astype(np.int16)
    w = rng.integers(-128, 128, (n, k)).astype(np.int8)
    scale = rng.uniform(1e-6, 1e-4, n).astype(np.float32)
    common = dict(m=m, n=n, src_ld=k, dst_ld=n, src_type="i16", hlog2=5, qmul=3, qshift=9)

    whole = new_state()
    put(whole, LAYOUT["src"], a)
    put(whole, LAYOUT["wgt"], w)
    put(whole, LAYOUT["scale"], scale)
    issue(lin(k=k, out="f32", **LAYOUT, **common), whole)

    tiled = new_state()
    put(tiled, LAYOUT["src"], a)
    put(tiled, LAYOUT["scale"], scale)
    for i in range(k // tile):
        wtile = np.ascontiguousarray(w[:, i * tile:(i + 1) * tile])
        put(tiled, LAYOUT["wgt"] + i * 0x1000, wtile)
        issue(lin(k=tile, acc=int(i > 0), out="f32" if i == k // tile - 1 else "i32", dst=LAYOUT["dst"],
                  src=LAYOUT["src"] + 2 * i * tile, wgt=LAYOUT["wgt"] + i * 0x1000, scale=LAYOUT["scale"], **common),
              tiled)
    got_whole = get(whole, LAYOUT["dst"], m, n, np.float32)
    assert get(tiled, LAYOUT["dst"], m, n, np.float32).tolist() == got_whole.tolist()
    total = reference_total(a, w, 5, 3, 9)
    assert got_whole.tolist() == (total.astype(np.float32) * scale).tolist()


def test_lin_footprint_cost_and_ranges():
    state = new_state()
    m, k, n = 7, 256, 96
    fp = SEMANTICS["lin"].footprint(lin(m=m, k=k, n=n, src_ld=300, dst_ld=100, acc=1, out="f32", **LAYOUT), state,
                                    TARGET)
    assert fp.occupancy == math.ceil(m * k * n / TARGET.lin_macs_per_cycle) and fp.latency == TARGET.lin_latency
    assert fp.macs == m * k * n
    dst = Range("buf", LAYOUT["dst"], LAYOUT["dst"] + (m - 1) * 400 + 4 * n)
    assert set(fp.reads) == {Range("buf", LAYOUT["src"], LAYOUT["src"] + (m - 1) * 300 + k),
                             Range("buf", LAYOUT["wgt"], LAYOUT["wgt"] + n * k), dst,
                             Range("buf", LAYOUT["scale"], LAYOUT["scale"] + 4 * n)}
    assert fp.writes == (dst,)
    fp = SEMANTICS["lin"].footprint(lin(m=1, k=8, n=1, **LAYOUT), state, TARGET)
    assert Range("buf", LAYOUT["dst"], LAYOUT["dst"] + 4) not in fp.reads and len(fp.reads) == 2


def test_lin_validation_names_the_field():
    state = MachineState(ddr=np.zeros(8, np.uint8), buf=np.zeros(4096, np.uint8))
    max_log2 = TARGET.hadamard_max_block.bit_length() - 1
    cases = [
        (lin(k=2 << max_log2, hlog2=max_log2 + 1), r"^lin: field hlog2: Hadamard block"),
        (lin(k=24, hlog2=4, src_ld=24), r"^lin: field k = 24 is not a multiple of the Hadamard block 16"),
        (lin(m=0), r"^lin: field m must be at least 1"),
        (lin(k=0), r"^lin: field k must be at least 1"),
        (lin(dst=2), r"^lin: field dst = 0x2 is not aligned to 4 bytes"),
        (lin(src=1, src_type="i16"), r"^lin: field src = 0x1 is not aligned to 2 bytes"),
        (lin(scale=4094, out="f32", dst=64), r"^lin: field scale = 0xffe is not aligned"),
        (lin(scale=4096, out="f32", dst=64), r"^lin: field scale: buf bytes \[0x1000, 0x1004\) outside"),
        (lin(wgt=4000, n=4, k=32, src_ld=32, dst_ld=4, dst=64, src=512), r"^lin: field wgt: buf bytes"),
        (lin(m=2, n=4, dst_ld=3, dst=64), r"^lin: field dst_ld: written rows of dst overlap"),
        (lin(dst=0, src=0), r"^lin: field dst: the written buf bytes .* overlap operand src"),
    ]
    for instr, pattern in cases:
        with pytest.raises(SimulationError, match=pattern):
            SEMANTICS["lin"].footprint(instr, state, TARGET)
    assert not state.buf.any()
