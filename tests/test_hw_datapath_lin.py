"""hardware.lin_datapath in Amaranth's simulator against fastmamba.isa.numerics' LIN functions, bit for bit.

Directed cases (every hlog2 and output group, requantization ties and
saturation, i16 extremes, the worked example of docs/NUMERICS.md §2,
accumulator saturation once per op, k-tiling) and random vectors.  Most run
on small targets (the same components with fewer trees and a smaller
Hadamard block) because the Python simulator runs the vc709 MAC array at a
few cycles per second; the vc709 instances get a short run each.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fastmamba.hardware.lin_datapath import ACC_BITS, HadamardRequant, LinRescale, MacArray
from fastmamba.isa import numerics
from fastmamba.isa.target import load_target
from hw_datapath_bulk import stream_sim

VC709 = load_target("vc709")
SMALL = dataclasses.replace(VC709, name="hw_small", lin_groups=1, lin_mac_trees=4, hadamard_max_block=16)
TINY_BLOCK = dataclasses.replace(SMALL, name="hw_tiny_block", hadamard_max_block=2)  # blocks smaller than W


def _requant_vectors(target, cases):
    """cases: (window values, hlog2, qmul, qshift, j) -> (input vectors, expected q per vector)."""
    comp = HadamardRequant(target)
    w = target.lin_mac_tree_width
    vectors, want = [], []
    for a, hlog2, qmul, qshift, j in cases:
        a = np.asarray(a, dtype=np.int64)
        vectors.append({"a": a.tolist(), "hlog2": hlog2, "qmul": qmul, "qshift": qshift, "j": j})
        want.append(numerics.lin_requant(a[None, :], hlog2, qmul, qshift)[0, j * w:(j + 1) * w].tolist())
    got = stream_sim(comp, vectors, ("q",), comp.LATENCY, valid_out="q_valid")
    return [list(g["q"]) for g in got], want


def _fitting_shift(a: np.ndarray, hlog2: int, qmul: int, rng) -> int:
    """A qshift that brings the rotated, scaled window near the int8 range (plus a little saturation)."""
    peak = int(np.abs(numerics.hadamard_blocks(a[None, :], hlog2)).max()) * qmul
    return int(min(max(peak.bit_length() - 7 + int(rng.integers(-1, 2)), 0), 63))


def _random_cases(target, rng, count, hlog2s=None):
    window = max(target.hadamard_max_block, target.lin_mac_tree_width)
    groups = window // target.lin_mac_tree_width
    max_h = target.hadamard_max_block.bit_length() - 1
    cases = []
    for n in range(count):
        hlog2 = hlog2s[n % len(hlog2s)] if hlog2s else int(rng.integers(0, max_h + 1))
        kind = n % 3
        if kind == 0:
            a = rng.integers(-128, 128, window)  # an i8 source
        elif kind == 1:
            a = rng.integers(-32768, 32768, window)
        else:
            a = rng.choice(np.array([-32768, 32767, -1, 0, 1]), window)  # i16 extremes
        qmul = int(rng.choice([1, 3, 255, 65535, int(rng.integers(0, 65536))]))
        cases.append((a, hlog2, qmul, _fitting_shift(a, hlog2, qmul, rng), int(rng.integers(0, groups))))
    return cases


@pytest.mark.parametrize("target", [SMALL, TINY_BLOCK], ids=["block16", "block2"])
def test_hadamard_requant_every_hlog2_and_group(target):
    rng = np.random.default_rng(3)
    window = max(target.hadamard_max_block, target.lin_mac_tree_width)
    groups = window // target.lin_mac_tree_width
    cases = []
    for hlog2 in range(target.hadamard_max_block.bit_length()):
        for j in range(groups):
            for a in (rng.integers(-32768, 32768, window), np.full(window, -32768), rng.integers(-128, 128, window)):
                qmul = int(rng.integers(1, 65536))
                cases.append((a, hlog2, qmul, _fitting_shift(a, hlog2, qmul, rng), j))
    cases += _random_cases(target, rng, 60)
    got, want = _requant_vectors(target, cases)
    assert got == want


def test_hadamard_requant_vc709_every_hlog2():
    rng = np.random.default_rng(4)
    groups = VC709.hadamard_max_block // VC709.lin_mac_tree_width
    cases = []
    for hlog2 in range(VC709.hadamard_max_block.bit_length()):
        for j in (0, groups - 1, int(rng.integers(1, groups - 1))):
            a = rng.integers(-32768, 32768, VC709.hadamard_max_block) if j else np.full(VC709.hadamard_max_block,
                                                                                          -32768)
            qmul = int(rng.integers(1, 65536))
            cases.append((a, hlog2, qmul, _fitting_shift(a, hlog2, qmul, rng), j))
    got, want = _requant_vectors(VC709, cases)
    assert got == want
    assert HadamardRequant.latency(VC709) == 4 and HadamardRequant.latency(TINY_BLOCK) == 3


def test_requantization_ties_and_saturation():
    window = SMALL.hadamard_max_block
    # hlog2 = 0 (a' = a): four values per case sharing (qmul, qshift).  Ties (x + 1/2) * 2^s round up for both
    # signs; 127.5 -> 128 saturates to 127, -128.5 -> -128, -129.5 -> -129 -> -128; the largest shift gives 0
    # even for -32768 * 65535; -32768 * 65535 >> 23 = -256 (exact) saturates.
    groups = [
        ((5, -5, 3, -3), 1, 1, [3, -2, 2, -1]),
        ((6, -6, -2, 2), 1, 2, [2, -1, 0, 1]),
        ((255, -257, -259, 254), 1, 1, [127, -128, -128, 127]),
        ((-32768, 32767, -1, 1), 65535, 63, [0, 0, 0, 0]),
        ((-32768, 32767, 1, -1), 65535, 23, [-128, 127, 0, 0]),
        ((127, -128, 128, -129), 1, 0, [127, -128, 127, -128]),
        ((3, -3, 1, -1), 5, 1, [8, -7, 3, -2]),
        ((7, -7, 9, -9), 3, 3, [3, -3, 3, -3]),
        ((-32768, -32767, 32767, 0), 1, 8, [-128, -128, 127, 0]),
    ]
    cases = []
    for values, qmul, qshift, _ in groups:
        a = np.zeros(window, dtype=np.int64)
        a[:4] = values
        cases.append((a, 0, qmul, qshift, 0))
    got, want = _requant_vectors(SMALL, cases)
    assert got == want
    assert got == [expected for *_, expected in groups]


def _pad(x: np.ndarray, rows: int, cols: int) -> np.ndarray:
    out = np.zeros((rows, cols), dtype=np.int64)
    out[:x.shape[0], :x.shape[1]] = x
    return out


def run_lin(target, a, wgt, *, hlog2, qmul, qshift, prev=None, scale=None, bubble_every=0):
    """One LIN op through HadamardRequant -> MacArray (-> LinRescale), sequenced here as a controller would:
    returns (the requantized q [m, k], the int32 totals [m, n] or the f32 results)."""
    a = np.asarray(a, dtype=np.int64)
    wgt = np.asarray(wgt, dtype=np.int64)
    m, k = a.shape
    n = wgt.shape[0]
    width = target.lin_mac_tree_width
    window = max(target.hadamard_max_block, width)
    trees = target.lin_groups * target.lin_mac_trees
    assert n <= trees
    kp = -(-k // window) * window
    a_pad = _pad(a, m, kp)
    groups_per_row = -(-k // width)
    # 1. The requantizer, one group of W outputs per cycle.
    hr = HadamardRequant(target)
    vectors = []
    for row in range(m):
        for g in range(groups_per_row):
            base = g * width // window * window
            vectors.append({"a": a_pad[row, base:base + window].tolist(), "hlog2": hlog2, "qmul": qmul,
                            "qshift": qshift, "j": g * width % window // width})
    q = np.array([list(r["q"]) for r in stream_sim(hr, vectors, ("q",), hr.LATENCY, valid_out="q_valid")])
    q = q.reshape(m, groups_per_row * width)[:, :k]
    # 2. The MAC array: a new output per row, the weights of the group's k positions.
    w_pad = _pad(wgt, trees, groups_per_row * width)
    q_pad = _pad(q, m, groups_per_row * width)
    init = np.zeros((m, trees), dtype=np.int64) if prev is None else _pad(np.asarray(prev), m, trees)
    mac = MacArray(target)
    vectors = []
    for row in range(m):
        for g in range(groups_per_row):
            sl = slice(g * width, (g + 1) * width)
            vectors.append({"q": q_pad[row, sl].tolist(), "w": w_pad[:, sl].tolist(), "init": init[row].tolist(),
                            "first": int(g == 0), "last": int(g == groups_per_row - 1)})
            if bubble_every and len(vectors) % bubble_every == 0:
                vectors.append(None)  # a cycle without valid inside an accumulation
    totals = _stream_with_bubbles(mac, vectors)
    totals = np.array(totals, dtype=np.int64)[:, :n]
    if scale is None:
        return q, totals
    # 3. The rescale, one row of totals per cycle.
    resc = LinRescale(target, lanes=n)
    scale_bits = np.asarray(scale, dtype=np.float32).view(np.uint32)
    got = stream_sim(resc, [{"total": t.tolist(), "scale": scale_bits.tolist()} for t in totals], ("y",),
                     resc.LATENCY)
    return q, np.array([list(r["y"]) for r in got], dtype=np.uint32).view(np.float32)


def _stream_with_bubbles(mac, vectors):
    """MacArray driven with optional idle cycles (None); the totals of every `last`, checked LATENCY after it."""
    from amaranth.sim import Simulator

    results, cycles, lasts = [], [], []

    async def bench(ctx):
        for cycle in range(len(vectors) + mac.LATENCY + 1):
            vec = vectors[cycle] if cycle < len(vectors) else None
            if vec is not None:
                for name, value in vec.items():
                    ctx.set(getattr(mac, name), value)
                if vec["last"]:
                    lasts.append(cycle)
            ctx.set(mac.valid, int(vec is not None))
            if ctx.get(mac.total_valid):
                cycles.append(cycle)
                results.append(list(ctx.get(mac.total)))
            await ctx.tick()

    sim = Simulator(mac)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert cycles == [c + mac.LATENCY for c in lasts]
    return results


def test_worked_example_of_numerics_section_2():
    a = np.array([[100, -3, 50, 7]])
    wgt = np.array([[1, 2, 3, 4], [-1, 0, 1, 0]])
    q, totals = run_lin(SMALL, a, wgt, hlog2=1, qmul=3, qshift=2, prev=np.array([[10, 7]]))
    assert q.tolist() == [[73, 77, 43, 32]]
    assert totals.tolist() == [[494, -23]]
    _, out = run_lin(SMALL, a, wgt, hlog2=1, qmul=3, qshift=2, scale=np.array([0.5, 0.1], dtype=np.float32))
    assert out.tolist() == [[242.0, np.float32(-3.0)]]
    assert out.view(np.uint32).tolist() == numerics.lin(a, wgt, hlog2=1, qmul=3, qshift=2,
                                                        scale=np.array([0.5, 0.1])).view(np.uint32).tolist()


def test_accumulator_saturates_once_per_op():
    width = SMALL.lin_mac_tree_width
    trees = SMALL.lin_groups * SMALL.lin_mac_trees
    big = (1 << 31) - 1
    # Tree 0: +2^31 - 1 plus 4 * 16129, then minus the same: exact, so the end is 2^31 - 1 - 0 (no early clip).
    # Tree 1: -2^31 plus negative products: saturates to -2^31.  Tree 2: 2^31 - 1 plus positive: 2^31 - 1.
    # Tree 3: 2^31 - 1 - 5 plus 4 * 127 * 1: over the top by 503.
    q = np.array([[127] * width + [127] * width])
    wgt = np.zeros((trees, 2 * width), dtype=np.int64)
    wgt[0] = [127] * width + [-127] * width
    wgt[1] = -128
    wgt[2] = 127
    wgt[3, :width] = 1
    prev = np.array([[big, -(1 << 31), big, big - 5]])
    _, totals = run_lin(SMALL, q, wgt, hlog2=0, qmul=1, qshift=0, prev=prev)
    want = numerics.lin(q, wgt, hlog2=0, qmul=1, qshift=0, prev=prev)
    assert totals.tolist() == want.tolist() == [[big, -(1 << 31), big, big]]
    assert ACC_BITS >= ((1 << 14) * ((1 << 16) - 1) + (1 << 31)).bit_length() + 1


def test_k_tiling_equals_one_op():
    rng = np.random.default_rng(5)
    m, k, n = 2, 48, 4
    a = rng.integers(-32768, 32768, (m, k))
    wgt = rng.integers(-128, 128, (n, k))
    scale = rng.uniform(-1e-3, 1e-3, n).astype(np.float32)
    hlog2, qmul, qshift = 3, 7, 12
    whole = numerics.lin(a, wgt, hlog2=hlog2, qmul=qmul, qshift=qshift, scale=scale)
    # Three tiles along k (16 each: whole Hadamard blocks): acc = 0 i32, acc = 1 i32, acc = 1 f32.
    _, t0 = run_lin(SMALL, a[:, :16], wgt[:, :16], hlog2=hlog2, qmul=qmul, qshift=qshift)
    _, t1 = run_lin(SMALL, a[:, 16:32], wgt[:, 16:32], hlog2=hlog2, qmul=qmul, qshift=qshift, prev=t0)
    _, out = run_lin(SMALL, a[:, 32:], wgt[:, 32:], hlog2=hlog2, qmul=qmul, qshift=qshift, prev=t1, scale=scale)
    assert out.view(np.uint32).tolist() == whole.view(np.uint32).tolist()


def test_random_ops_with_bubbles():
    rng = np.random.default_rng(6)
    for trial in range(4):
        m, n = int(rng.integers(1, 3)), int(rng.integers(1, 5))
        hlog2 = int(rng.integers(0, 5))
        k = int(rng.choice([4, 8, 16, 32, 36, 20])) // (1 << hlog2) * (1 << hlog2) or (1 << hlog2)
        a = rng.integers(-32768, 32768, (m, k)) if trial % 2 else rng.integers(-128, 128, (m, k))
        wgt = rng.integers(-128, 128, (n, k))
        qmul = int(rng.integers(1, 65536))
        qshift = _fitting_shift(a[0], hlog2, qmul, rng)
        prev = rng.integers(-(1 << 31), 1 << 31, (m, n)) if trial % 3 else None
        q, totals = run_lin(SMALL, a, wgt, hlog2=hlog2, qmul=qmul, qshift=qshift, prev=prev, bubble_every=3)
        assert q.tolist() == numerics.lin_requant(a, hlog2, qmul, qshift).tolist()
        assert totals.tolist() == numerics.lin(a, wgt, hlog2=hlog2, qmul=qmul, qshift=qshift, prev=prev).tolist()


def test_rescale_corners_match_numerics():
    totals = np.array([0, 1, -1, (1 << 24) + 1, -(1 << 31), (1 << 31) - 1, 12345, -7], dtype=np.int64)
    scales = np.array([0.5, 0.1, np.inf, np.nan, -0.0, 1e-45, 3e38, -1.5], dtype=np.float32)
    rows = [np.roll(totals, r) for r in range(len(totals))]
    resc = LinRescale(SMALL, lanes=len(scales))
    got = stream_sim(resc, [{"total": t.tolist(), "scale": scales.view(np.uint32).tolist()} for t in rows], ("y",),
                     resc.LATENCY)
    for t, g in zip(rows, got):
        assert list(g["y"]) == numerics.lin_rescale(t, scales).view(np.uint32).tolist()


def test_vc709_mac_array_and_rescale_lanes():
    mac = MacArray(VC709)
    trees = VC709.lin_groups * VC709.lin_mac_trees
    assert mac.trees == trees
    rng = np.random.default_rng(7)
    k = 3 * VC709.lin_mac_tree_width
    q = rng.integers(-128, 128, (1, k))
    wgt = rng.integers(-128, 128, (trees, k))
    wgt[0] = -128
    q[0] = np.where(np.arange(k) % 2, -128, q[0])
    prev = rng.integers(-(1 << 31), 1 << 31, (1, trees))
    width = VC709.lin_mac_tree_width
    vectors = [{"q": q[0, g * width:(g + 1) * width].tolist(), "w": wgt[:, g * width:(g + 1) * width].tolist(),
                "init": prev[0].tolist(), "first": int(g == 0), "last": int(g == 2)} for g in range(3)]
    (totals,) = _stream_with_bubbles(mac, vectors)
    assert totals == numerics.lin_accumulate(numerics.int8_matmul(q, wgt), prev)[0].tolist()
