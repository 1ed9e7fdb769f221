"""The LIN and CONV datapaths under Verilator: tens of thousands of random and extreme operand sets per component
against fastmamba.isa.numerics, bit for bit (the Amaranth-simulator tests hold the directed cases and run the vc709
shapes; this is the volume those cannot afford).

CONV runs at vc709 size.  The LIN components run on a mid-size target (64-element Hadamard window, 8 MAC trees):
the same generated logic per tree, since compiling the vc709 MAC array or Hadamard window with Verilator takes
about 100 s each on this machine (22 s to verilate, 74 s of g++), too much for every fresh `make test`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fastmamba.hardware.conv_datapath import OUT_BITS, OUT_TYPES, ConvDatapath
from fastmamba.hardware.lin_datapath import HadamardRequant, LinRescale, MacArray
from fastmamba.isa import numerics
from fastmamba.isa.target import load_target
from hw_datapath_bulk import StreamRunner, f32_mul_reference, pack, unpack

VC709 = load_target("vc709")
MID = dataclasses.replace(VC709, name="hw_mid", lin_groups=1, lin_mac_trees=8, hadamard_max_block=64)


def test_hadamard_requant_bulk():
    comp = HadamardRequant(MID)
    runner = StreamRunner(comp, ("a", "hlog2", "qmul", "qshift", "j"), ("q",), valid_out="q_valid")
    rng = np.random.default_rng(21)
    n, window, width = 40_000, comp.window, comp.width
    kind = rng.integers(0, 3, n)
    a = np.where(kind[:, None] == 0, rng.integers(-128, 128, (n, window)), rng.integers(-32768, 32768, (n, window)))
    a[kind == 2] = rng.choice(np.array([-32768, 32767, 0, -1]), (int((kind == 2).sum()), window))
    hlog2 = rng.integers(0, MID.hadamard_max_block.bit_length(), n)
    qmul = np.where(rng.integers(0, 2, n), rng.integers(0, 65536, n), rng.choice([1, 3, 65535], n))
    j = rng.integers(0, comp.groups, n)
    rotated = np.empty((n, width), dtype=np.int64)
    for h in np.unique(hlog2):
        rows = np.nonzero(hlog2 == h)[0]
        full = numerics.hadamard_blocks(a[rows], int(h))
        rotated[rows] = full[np.arange(len(rows))[:, None], j[rows, None] * width + np.arange(width)]
    peak = np.abs(rotated * qmul[:, None]).max(axis=1)
    fit = np.array([int(p).bit_length() for p in peak]) - 7
    qshift = np.clip(np.where(rng.integers(0, 4, n) == 0, rng.integers(0, 4, n), fit + rng.integers(-1, 2, n)), 0, 63)
    (q,) = runner.run(pack(a, 16), hlog2, qmul, qshift, j)
    want = numerics.saturate(numerics.rshift_round(rotated * qmul[:, None], qshift[:, None]), "i8")
    assert len(q) == n
    got = unpack(q, 8, width)
    bad = np.nonzero((got != want).any(axis=1))[0]
    assert bad.size == 0, (bad[:5], got[bad[:2]], want[bad[:2]], hlog2[bad[:2]], j[bad[:2]])
    # Coverage: exact ties of the rounding shift, and saturation at both ends.
    scaled = rotated * qmul[:, None]
    tie = (qshift[:, None] > 0) & ((scaled & ((1 << qshift[:, None]) - 1)) == (1 << np.maximum(qshift - 1, 0))[:, None])
    assert tie.sum() > 1000 and (want == 127).sum() > 1000 and (want == -128).sum() > 1000


def test_mac_array_bulk_with_bubbles_and_saturation():
    comp = MacArray(MID)
    runner = StreamRunner(comp, ("q", "w", "init", "first", "last"), ("total",), valid_out="total_valid")
    rng = np.random.default_rng(22)
    trees, width = comp.trees, comp.width
    ops = 6000
    lengths = rng.integers(1, 9, ops)  # cycles (groups of W along k) per op
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    cycles = int(lengths.sum())
    q = rng.integers(-128, 128, (cycles, width))
    q[rng.integers(0, 4, cycles) == 0] = -128
    w = rng.integers(-128, 128, (cycles, trees, width)).astype(np.int8)
    w[rng.integers(0, 4, cycles) == 0] = -128
    big = (1 << 31) - 1
    init = rng.integers(-(1 << 31), 1 << 31, (ops, trees))
    near = rng.integers(0, 3, ops)
    init[near == 1] = big - rng.integers(0, 200_000, (int((near == 1).sum()), trees))
    init[near == 2] = -big - 1 + rng.integers(0, 200_000, (int((near == 2).sum()), trees))
    op_of_cycle = np.repeat(np.arange(ops), lengths)
    first = np.zeros(cycles, dtype=np.uint32)
    last = np.zeros(cycles, dtype=np.uint32)
    first[starts] = 1
    last[starts + lengths - 1] = 1
    # Interleave idle cycles whose inputs are garbage (first/last set, random data): they must change nothing.
    idle = rng.integers(0, 8, cycles) == 0
    total_cycles = cycles + int(idle.sum())
    slot = np.arange(cycles) + np.cumsum(idle)
    valid = np.zeros(total_cycles, dtype=bool)
    valid[slot] = True

    def spread(x, garbage):
        out = np.array(np.broadcast_to(garbage, (total_cycles,) + x.shape[1:]))
        out[slot] = x
        return out

    got = runner.run(spread(pack(q, 8), 0xA5A5A5A5), spread(pack(w.reshape(cycles, -1), 8), 0x5A5A5A5A),
                     spread(pack(init[op_of_cycle], 32), 0x7FFFFFFF), spread(first, 1), spread(last, 1),
                     valid=valid)[0]
    dots = np.einsum("cti,ci->ct", w.astype(np.int64), q.astype(np.int64))
    want = numerics.lin_accumulate(np.add.reduceat(dots, starts, axis=0), init)
    assert got.shape[0] == ops
    total = unpack(got, 32, trees)
    bad = np.nonzero((total != want).any(axis=1))[0]
    assert bad.size == 0, bad[:5]
    assert (want == big).sum() > 300 and (want == -big - 1).sum() > 300


def test_rescale_bulk():
    lanes = 8
    comp = LinRescale(MID, lanes=lanes)
    runner = StreamRunner(comp, ("total", "scale"), ("y",))
    rng = np.random.default_rng(23)
    n = 50_000
    total = rng.integers(-(1 << 31), 1 << 31, (n, lanes)) >> rng.integers(0, 32, (n, lanes))
    scale = rng.integers(0, 1 << 32, (n, lanes), dtype=np.uint64).astype(np.uint32)
    scale[:, ::2] = np.float32(1.0).view(np.uint32) + rng.integers(-(1 << 26), 1 << 26, (n, lanes // 2))
    (y,) = runner.run(pack(total, 32), scale)
    want = numerics.lin_rescale(total, scale.view(np.float32)).view(np.uint32)  # one NaN operand at most: numpy's
    assert len(y) == n
    assert (y == want).all()
    assert (want == f32_mul_reference(total.astype(np.int32).astype(np.float32).view(np.uint32), scale)).all()
    assert ((want & 0x7FFFFFFF) > 0x7F800000).sum() > 100  # NaN scales are propagated


@pytest.mark.parametrize("seed", [24])
def test_conv_bulk(seed):
    comp = ConvDatapath(VC709)
    runner = StreamRunner(comp, ("x", "w", "bias", "kw", "shift", "out_type"), ("y",))
    rng = np.random.default_rng(seed)
    n, lanes, kernel = 40_000, comp.channels, comp.kernel
    x = rng.integers(-32768, 32768, (n, kernel, lanes))
    w = rng.integers(-32768, 32768, (n, kernel, lanes))
    ext = rng.integers(0, 4, n) == 0
    x[ext] = rng.choice(np.array([-32768, 32767]), (int(ext.sum()), kernel, lanes))
    w[ext] = rng.choice(np.array([-32768, 32767]), (int(ext.sum()), kernel, lanes))
    bias = rng.integers(-(1 << 31), 1 << 31, (n, lanes))
    kw = rng.integers(2, kernel + 1, n)
    out_type = rng.integers(0, len(OUT_TYPES), n)
    used = np.arange(kernel)[None, :, None] < kw[:, None, None]
    acc = (x * w * used).sum(axis=1) + bias
    fit = np.array([int(v).bit_length() for v in np.abs(acc).max(axis=1)]) - np.array(OUT_BITS)[out_type] + 1
    shift = np.where(rng.integers(0, 5, n) == 0, rng.integers(0, 128, n),
                     np.clip(fit + rng.integers(-3, 2, n), 0, 127))
    shift[rng.integers(0, 10, n) == 0] = rng.integers(0, 3, 1)[0]
    (y,) = runner.run(pack(x.reshape(n, -1), 16), pack(w.reshape(n, -1), 16), pack(bias, 32), kw, shift, out_type)
    rounded = numerics.rshift_round(acc, shift[:, None])
    want = np.where(out_type[:, None] == OUT_TYPES.index("i16"), numerics.saturate(rounded, "i16"),
                    numerics.saturate(rounded, "i32"))
    assert len(y) == n
    got = unpack(y, 32, lanes)
    bad = np.nonzero((got != want).any(axis=1))[0]
    assert bad.size == 0, bad[:5]
    assert (want == 32767).sum() > 1000 and (want == -(1 << 31)).sum() > 1000
