"""hardware.fp32: int32 -> binary32, binary32 multiply, add, divide and square root, bit for bit against numpy.

Directed corner cases run in Amaranth's simulator (which also measures each
LATENCY); millions of random and structured operands run through the same
components compiled with Verilator (tests/hw_datapath_bulk.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from fastmamba.hardware.fp32 import DEFAULT_NAN, F32Add, F32Div, F32Mul, F32Sqrt, I32ToF32
from hw_datapath_bulk import (F32_SPECIALS, StreamRunner, f32_add_pairs, f32_add_reference, f32_div_pairs,
                              f32_div_reference, f32_mul_reference, f32_pairs, f32_sqrt_reference,
                              f32_sqrt_values, i32_values, stream_sim)

BULK = 2_000_000


def _f32(x: float) -> int:
    return int(np.array([x], dtype=np.float32).view(np.uint32)[0])


def _cvt_reference(x) -> list[int]:
    return np.asarray(x, dtype=np.int64).astype(np.int32).astype(np.float32).view(np.uint32).tolist()


DIRECTED_I32 = [0, 1, -1, 2, 3, 7, -7, (1 << 24) - 1, 1 << 24, (1 << 24) + 1, (1 << 24) + 2, (1 << 24) + 3,
                -(1 << 24) - 1, -(1 << 24) - 3, (1 << 25) + 1, (1 << 25) + 2, (1 << 25) + 6, (1 << 25) + 3,
                -(1 << 25) - 2, -(1 << 25) - 6, (1 << 31) - 1, -(1 << 31), -(1 << 31) + 1, (1 << 31) - 64,
                (1 << 31) - 128, (1 << 31) - 129, 0x7FFFFF80, 0x7FFFFFBF, 0x7FFFFFC0, 123456789, -987654321]


def test_i32_to_f32_directed_ties_and_extremes():
    got = stream_sim(I32ToF32(), [{"a": v} for v in DIRECTED_I32], ("y",), I32ToF32.LATENCY)
    assert [g["y"] for g in got] == _cvt_reference(DIRECTED_I32)
    # The ties by name: 2^24 + 1 rounds down to the even 2^24, 2^24 + 3 up to 2^24 + 4, 2^25 + 2 down, 2^25 + 6 up.
    assert got[DIRECTED_I32.index((1 << 24) + 1)]["y"] == _f32(2.0**24)
    assert got[DIRECTED_I32.index((1 << 24) + 3)]["y"] == _f32(2.0**24 + 4)
    assert got[DIRECTED_I32.index((1 << 25) + 2)]["y"] == _f32(2.0**25)
    assert got[DIRECTED_I32.index((1 << 25) + 6)]["y"] == _f32(2.0**25 + 8)
    assert got[DIRECTED_I32.index(-(1 << 31))]["y"] == 0xCF000000
    assert got[DIRECTED_I32.index((1 << 31) - 1)]["y"] == 0x4F000000  # rounds up to 2^31


def _mul_directed_pairs() -> list[tuple[int, int]]:
    pairs = [(int(a), int(b)) for a in F32_SPECIALS[::2] for b in F32_SPECIALS]
    pairs += [
        (_f32(1.5), 0x3F800001),  # 1.5 * (1 + 2^-23): a tie, rounds to even
        (_f32(1.5), 0x3F800003),  # a tie rounding up
        (0x00800000, 0x3F7FFFFF),  # min normal * (1 - 2^-24): a subnormal-range tie that rounds up to min normal
        (0x00000001, _f32(0.5)), (0x00000003, _f32(0.5)), (0x00000001, _f32(1.5)), (0x00000005, _f32(0.5)),
        (0x00000001, _f32(0.75)), (0x00000001, _f32(0.25)),  # the smallest subnormal's products: ties, under half
        (0x007FFFFF, _f32(0.5)), (0x00FFFFFF, _f32(0.5)),  # across the subnormal boundary
        (0x7F7FFFFF, 0x3F800001), (0x7F7FFFFF, _f32(1.0)), (0x7F000000, _f32(2.0)), (0x7F000000, 0x3FFFFFFF),
        (0x7F7FFFFF, 0x3F7FFFFF), (0xFF7FFFFF, 0x3F800001),  # overflow to inf and just below
        (0x1F800000, 0x1F800000), (0x20000000, 0x1F800000), (0x1F800000, 0x1F000000),  # 2^-64 squared and so on
        (_f32(-0.0), _f32(3.0)), (_f32(0.0), _f32(-3.0)), (_f32(-0.0), _f32(-0.0)),
        (0x7F800000, 0x00000000), (0x80000000, 0xFF800000), (0x7F800000, 0x00000001),
        (0x7F800001, 0x7FC00002), (0x7FC00002, 0x7F800001), (0xFFC00123, 0x3F800000), (0x3F800000, 0x7F800001),
    ]
    return pairs


def test_f32_mul_directed_corners():
    pairs = _mul_directed_pairs()
    got = stream_sim(F32Mul(), [{"a": a, "b": b} for a, b in pairs], ("y",), F32Mul.LATENCY)
    a = np.array([p[0] for p in pairs], dtype=np.uint32)
    b = np.array([p[1] for p in pairs], dtype=np.uint32)
    want = f32_mul_reference(a, b)
    assert [g["y"] for g in got] == want.tolist()
    by_pair = dict(zip(pairs, (g["y"] for g in got)))
    assert by_pair[(0x7F800000, 0x00000000)] == DEFAULT_NAN  # inf * 0 = the default NaN
    assert by_pair[(0x7F800001, 0x7FC00002)] == 0x7FC00001  # two NaNs: a's, quieted
    assert by_pair[(0x3F800000, 0x7F800001)] == 0x7FC00001  # a signalling NaN comes back quiet
    assert by_pair[(0x00800000, 0x3F7FFFFF)] == 0x00800000
    assert by_pair[(0x00000001, _f32(0.5))] == 0 and by_pair[(0x00000003, _f32(0.5))] == 2
    assert by_pair[(0x7F7FFFFF, 0x3F800001)] == 0x7F800000
    assert by_pair[(_f32(-0.0), _f32(3.0))] == 0x80000000


def _ties_and_subnormals(a: np.ndarray, b: np.ndarray, ref: np.ndarray) -> tuple[int, int]:
    """How many finite products are exact half-way cases, and how many results are subnormal (coverage)."""
    with np.errstate(all="ignore"):
        exact = a.view(np.float32).astype(np.float64) * b.view(np.float32).astype(np.float64)  # exact: 48 bits
        r = ref.view(np.float32).astype(np.float64)
        toward = np.nextafter(ref.view(np.float32), np.where(exact > r, np.inf, -np.inf).astype(np.float32))
        tie = np.isfinite(exact) & np.isfinite(r) & (exact != r) & (exact - r == toward.astype(np.float64) - exact)
    exp = (ref >> 23) & 0xFF
    subnormal = (exp == 0) & ((ref & 0x7FFFFF) != 0)
    return int(tie.sum()), int(subnormal.sum())


@pytest.fixture(scope="module")
def mul_runner():
    return StreamRunner(F32Mul(), ("a", "b"), ("y",))


def test_f32_mul_bulk_matches_numpy(mul_runner):
    a, b = f32_pairs(BULK, seed=11)
    (got,) = mul_runner.run(a, b)
    assert got.shape == (len(a), 1)
    got = got[:, 0]
    want = f32_mul_reference(a, b)
    bad = np.nonzero(got != want)[0]
    assert bad.size == 0, [(hex(a[i]), hex(b[i]), hex(got[i]), hex(want[i])) for i in bad[:8]]
    ties, subnormals = _ties_and_subnormals(a, b, want)
    assert ties > 100_000 and subnormals > 100_000, (ties, subnormals)  # the structured sets do what they say
    nan = ((want >> 23) & 0xFF == 0xFF) & ((want & 0x7FFFFF) != 0)
    assert nan.sum() > 10_000 and (want == DEFAULT_NAN).sum() > 100


def test_i32_to_f32_bulk_matches_numpy():
    runner = StreamRunner(I32ToF32(), ("a",), ("y",))
    x = i32_values(BULK, seed=12)
    (got,) = runner.run(x.view(np.uint32))
    assert got.shape == (len(x), 1)
    got = got[:, 0]
    want = x.astype(np.float32).view(np.uint32)
    bad = np.nonzero(got != want)[0]
    assert bad.size == 0, [(int(x[i]), hex(got[i]), hex(want[i])) for i in bad[:8]]
    inexact = x.astype(np.float32).astype(np.int64) != x
    assert inexact.sum() > 200_000  # values of 25 bits and more: rounding happens


def _add_directed() -> list[tuple[int, int, int]]:
    """(a, b, sub) triples: every pair of specials both ways, then the adder's named corners."""
    triples = [(int(a), int(b), s) for a in F32_SPECIALS for b in F32_SPECIALS[::2] for s in (0, 1)]
    one = _f32(1.0)
    for d in (1, 2, 3, 23, 24, 25, 26, 27, 40):  # ties and near-ties on alignment shifts of d bits
        small = one - (d << 23)  # 2^-d
        triples += [(one, small, 0), (0x3F800001, small, 0), (one, small | 0x1, 0), (0x3F800001, small | 0x1, 0),
                    (one, small, 1), (0x3F800001, small, 1), (one, small | 0x1, 1), (0x3FFFFFFF, small, 0)]
    triples += [
        (_f32(1.0), 0x33800000, 0),  # 1 + 2^-24: a tie, to even (1.0)
        (0x3F800001, 0x33800000, 0),  # (1 + 2^-23) + 2^-24: a tie, up to 1 + 2^-22
        (_f32(1.0), 0x33800001, 0),  # just over the tie: up
        (_f32(1.0), 0x33000000, 1),  # 1 - 2^-25: a tie below 1 (ulp 2^-24 there), to even (1.0)
        (_f32(1.0), 0x33000001, 1),  # just over it: 1 - 2^-24
        (0x4B7FFFFF, 0x3F000000, 0),  # (2^24 - 1) + 0.5: a tie with a carry out, up to 2^24
        (0x3F800001, 0x3F800000, 1), (0x3FC00000, 0x3FBFFFFF, 1),  # massive cancellation: 2^-23, 2^-22
        (0x00800000, 0x007FFFFF, 1), (0x00800001, 0x00800000, 1),  # across the smallest normal: subnormal results
        (0x007FFFFF, 0x00000001, 0), (0x00400000, 0x00400000, 0), (0x00000001, 0x00000001, 0),  # to the normal range
        (0x00000003, 0x80000001, 0), (0x80000005, 0x00000002, 0), (0x00000001, 0x00000001, 1),  # exact: x - x = +0
        (0x7F7FFFFF, 0x7F7FFFFF, 0), (0x7F7FFFFF, 0x73800000, 0), (0x7F7FFFFF, 0x73000000, 0),  # overflow, the tie
        (0x7F7FFFFF, 0x72FFFFFF, 0), (0xFF7FFFFF, 0x73800000, 1), (0x7F7FFFFF, 0xFF7FFFFF, 0),
        (_f32(-0.0), _f32(-0.0), 0), (_f32(-0.0), _f32(0.0), 0), (_f32(0.0), _f32(-0.0), 0),
        (_f32(-0.0), _f32(0.0), 1), (_f32(0.0), _f32(0.0), 1), (_f32(-2.5), _f32(-2.5), 1), (_f32(-2.5), _f32(2.5), 0),
        (0x7F800000, 0x7F800000, 1), (0x7F800000, 0xFF800000, 0), (0xFF800000, 0xFF800000, 0),
        (0x7F800000, 0x7F800000, 0), (0xFF800000, 0x7F800000, 1), (0x7F800000, 0x00000001, 1),
        (0x7F800001, 0x7FC00002, 0), (0x7FC00002, 0x7F800001, 1), (0xFFC00123, 0x3F800000, 1),
        (0x3F800000, 0x7F800001, 1), (0x3F800000, 0xFFA00001, 1), (0x7F800000, 0x7FC00001, 1),
    ]
    return triples


def test_f32_add_directed_corners():
    triples = _add_directed()
    got = stream_sim(F32Add(), [{"a": a, "b": b, "sub": s} for a, b, s in triples], ("y",), F32Add.LATENCY)
    want = f32_add_reference(*(np.array([t[i] for t in triples], dtype=np.uint32) for i in range(3)))
    bad = [(hex(t[0]), hex(t[1]), t[2], hex(g["y"]), hex(w)) for t, g, w in zip(triples, got, want) if g["y"] != w]
    assert not bad, bad[:8]
    y = dict(zip(triples, (g["y"] for g in got)))
    assert y[(_f32(1.0), 0x33800000, 0)] == _f32(1.0) and y[(0x3F800001, 0x33800000, 0)] == 0x3F800002
    assert y[(_f32(1.0), 0x33000000, 1)] == _f32(1.0) and y[(0x4B7FFFFF, 0x3F000000, 0)] == _f32(2.0**24)
    assert y[(0x3F800001, 0x3F800000, 1)] == 0x34000000  # 2^-23, exactly
    assert y[(0x00800001, 0x00800000, 1)] == 0x00000001 and y[(0x007FFFFF, 0x00000001, 0)] == 0x00800000
    # Half an ulp above max finite: a tie, and max finite's significand is odd, so it rounds up to inf; just below
    # half an ulp it stays.
    assert y[(0x7F7FFFFF, 0x73000000, 0)] == 0x7F800000 and y[(0x7F7FFFFF, 0x72FFFFFF, 0)] == 0x7F7FFFFF
    assert y[(0x7F7FFFFF, 0x73800000, 0)] == 0x7F800000 and y[(0xFF7FFFFF, 0x73800000, 1)] == 0xFF800000
    assert y[(_f32(-0.0), _f32(-0.0), 0)] == 0x80000000 and y[(_f32(-0.0), _f32(0.0), 0)] == 0
    assert y[(_f32(0.0), _f32(0.0), 1)] == 0 and y[(_f32(-2.5), _f32(-2.5), 1)] == 0 and y[(1, 1, 1)] == 0
    assert y[(0x7F800000, 0x7F800000, 1)] == DEFAULT_NAN and y[(0x7F800000, 0xFF800000, 0)] == DEFAULT_NAN
    assert y[(0xFF800000, 0x7F800000, 1)] == 0xFF800000
    assert y[(0x7F800001, 0x7FC00002, 0)] == 0x7FC00001 and y[(0x7FC00002, 0x7F800001, 1)] == 0x7FC00002
    assert y[(0x3F800000, 0xFFA00001, 1)] == 0xFFE00001  # a - NaN: the NaN's own sign, quieted


def _add_coverage(a: np.ndarray, b: np.ndarray, sub: np.ndarray, ref: np.ndarray) -> dict[str, int]:
    """How many sums are exact half-way cases, subnormal, or cancel 8 or more leading bits (coverage)."""
    with np.errstate(all="ignore"):
        fb = np.where(sub != 0, -b.view(np.float32), b.view(np.float32))
        exact = a.view(np.float32).astype(np.float64) + fb.astype(np.float64)  # exact when the shift is <= 29
        r = ref.view(np.float32)
        toward = np.nextafter(r, np.where(exact > r, np.inf, -np.inf).astype(np.float32)).astype(np.float64)
        tie = np.isfinite(exact) & np.isfinite(r) & (exact != r) & (exact - r == toward - exact)
    exp = lambda x: ((x >> 23) & 0xFF).astype(np.int64)  # noqa: E731
    finite = (exp(a) < 255) & (exp(b) < 255) & (ref & 0x7FFFFFFF != 0)
    cancel = finite & (np.maximum(exp(a), exp(b)) - exp(ref) >= 8)
    subnormal = (exp(ref) == 0) & ((ref & 0x7FFFFF) != 0)
    return {"ties": int(tie.sum()), "subnormal": int(subnormal.sum()), "cancel": int(cancel.sum())}


def test_f32_add_bulk_matches_numpy():
    runner = StreamRunner(F32Add(), ("a", "b", "sub"), ("y",))
    a, b, sub = f32_add_pairs(BULK, seed=13)
    (got,) = runner.run(a, b, sub)
    assert got.shape == (len(a), 1)
    got = got[:, 0]
    want = f32_add_reference(a, b, sub)
    bad = np.nonzero(got != want)[0]
    assert bad.size == 0, [(hex(a[i]), hex(b[i]), int(sub[i]), hex(got[i]), hex(want[i])) for i in bad[:8]]
    cover = _add_coverage(a, b, sub, want)
    assert cover["ties"] > 100_000 and cover["subnormal"] > 50_000 and cover["cancel"] > 50_000, cover
    assert (want == DEFAULT_NAN).sum() > 100 and (want == 0).sum() > 5_000 and (want == 0x7F800000).sum() > 1_000


DIV_DIRECTED = [
    (_f32(1.0), _f32(3.0)), (_f32(2.0), _f32(3.0)), (_f32(-1.0), _f32(7.0)), (_f32(10.0), _f32(0.1)),
    (_f32(1.0), 0x3F800001), (0x3F800001, 0x3F800002), (0x3F7FFFFF, 0x3F800000), (_f32(5.0), _f32(5.0)),
    (0x00000001, 0x00000001), (0x00000003, 0x00000002), (0x007FFFFF, 0x00000001), (0x00000001, 0x007FFFFF),
    (0x00800000, _f32(2.0)), (0x00000003, _f32(2.0)), (0x00000001, _f32(2.0)), (0x00000005, _f32(4.0)),
    (0x00000001, _f32(0.5)), (0x00800000, 0x3F800001), (0x00FFFFFF, _f32(2.0)), (_f32(1.0), 0x7F7FFFFF),
    (0x00000001, _f32(2.0**24)), (0x00000003, _f32(4.0)), (0x00000001, _f32(1.5)), (0x00000001, _f32(3.0)),
    (0x7F7FFFFF, _f32(0.5)), (0x7F7FFFFF, 0x00000001), (0x7F000000, 0x3F7FFFFF), (0x7F7FFFFF, 0x3F800001),
    (0xFF7FFFFF, 0x3F7FFFFF), (0x7F7FFFFF, _f32(1.0)), (_f32(1.0), 0x00000001), (_f32(1.0), 0x00200000),
    (_f32(3.0), _f32(0.0)), (_f32(3.0), _f32(-0.0)), (_f32(-3.0), _f32(0.0)), (0x00000001, _f32(-0.0)),
    (_f32(0.0), _f32(0.0)), (_f32(-0.0), _f32(0.0)), (_f32(0.0), _f32(-5.0)), (_f32(-0.0), 0x00000001),
    (0x7F800000, 0x7F800000), (0xFF800000, 0x7F800000), (0x7F800000, _f32(0.0)), (0x7F800000, _f32(-2.0)),
    (_f32(2.0), 0xFF800000), (_f32(0.0), 0x7F800000), (0x7F800000, 0x00000001),
    (0x7F800001, 0x7FC00002), (0x7FC00002, 0x7F800001), (0xFFC00123, 0x3F800000), (0x3F800000, 0x7F800001),
    (0x7FC00000, _f32(0.0)), (_f32(0.0), 0xFFA00001), (0x7F800000, 0x7FC12345),
]


def test_f32_div_directed_corners():
    pairs = DIV_DIRECTED + [(int(a), int(b)) for a in F32_SPECIALS[::2] for b in F32_SPECIALS]
    got = stream_sim(F32Div(), [{"a": a, "b": b} for a, b in pairs], ("y",), F32Div.LATENCY)
    want = f32_div_reference(np.array([p[0] for p in pairs], dtype=np.uint32),
                             np.array([p[1] for p in pairs], dtype=np.uint32))
    bad = [(hex(p[0]), hex(p[1]), hex(g["y"]), hex(w)) for p, g, w in zip(pairs, got, want) if g["y"] != w]
    assert not bad, bad[:8]
    y = dict(zip(pairs, (g["y"] for g in got)))
    assert y[(_f32(1.0), _f32(3.0))] == 0x3EAAAAAB and y[(_f32(2.0), _f32(3.0))] == 0x3F2AAAAB
    assert y[(0x00000003, _f32(2.0))] == 0x00000002 and y[(0x00000001, _f32(2.0))] == 0  # subnormal ties to even
    assert y[(0x00000003, _f32(4.0))] == 0x00000001 and y[(0x00000001, _f32(1.5))] == 0x00000001
    assert y[(0x7F7FFFFF, _f32(0.5))] == 0x7F800000 and y[(0xFF7FFFFF, 0x3F7FFFFF)] == 0xFF800000
    assert y[(_f32(3.0), _f32(-0.0))] == 0xFF800000 and y[(_f32(-0.0), 0x00000001)] == 0x80000000
    assert y[(_f32(0.0), _f32(0.0))] == DEFAULT_NAN and y[(0x7F800000, 0x7F800000)] == DEFAULT_NAN
    assert y[(0x7F800000, _f32(0.0))] == 0x7F800000 and y[(_f32(2.0), 0xFF800000)] == 0x80000000
    assert y[(0x7F800001, 0x7FC00002)] == 0x7FC00001 and y[(_f32(0.0), 0xFFA00001)] == 0xFFE00001


def test_f32_div_bulk_matches_numpy():
    runner = StreamRunner(F32Div(), ("a", "b"), ("y",))
    a, b = f32_div_pairs(BULK, seed=14)
    (got,) = runner.run(a, b)
    assert got.shape == (len(a), 1)
    got = got[:, 0]
    want = f32_div_reference(a, b)
    bad = np.nonzero(got != want)[0]
    assert bad.size == 0, [(hex(a[i]), hex(b[i]), hex(got[i]), hex(want[i])) for i in bad[:8]]
    # Coverage: quotients within 2^-30 of a half-way point (where a wrong sticky bit shows), subnormal quotients.
    with np.errstate(all="ignore"):
        exact = a.view(np.float32).astype(np.float64) / b.view(np.float32).astype(np.float64)
        r = want.view(np.float32)
        toward = np.nextafter(r, np.where(exact > r, np.inf, -np.inf).astype(np.float32)).astype(np.float64)
        mid = (r.astype(np.float64) + toward) / 2
        near = np.isfinite(exact) & (r != 0) & (np.abs(exact - mid) <= np.abs(toward - r.astype(np.float64)) * 2.0**-30)
    subnormal = ((want & 0x7F800000) == 0) & ((want & 0x7FFFFF) != 0)
    assert near.sum() > 100_000 and subnormal.sum() > 100_000, (int(near.sum()), int(subnormal.sum()))
    assert (want == DEFAULT_NAN).sum() > 1_000 and ((want & 0x7FFFFFFF) == 0x7F800000).sum() > 10_000


SQRT_DIRECTED = [
    _f32(1.0), _f32(4.0), _f32(9.0), _f32(2.25), _f32(2.0), _f32(3.0), _f32(0.5), 0x3F800001, 0x3F7FFFFF,
    0x3FFFFFFF, 0x40000001, 0x7F7FFFFF, 0x7F000000, 0x00800000, 0x00FFFFFF, 0x01000000, 0x00000001, 0x00000002,
    0x00000003, 0x00000004, 0x007FFFFF, 0x00400000, 0x00200001, _f32(1e-40), _f32(2.0**-148), _f32(16777217.0),
    _f32(0.0), _f32(-0.0), 0x7F800000, 0xFF800000, _f32(-1.0), 0x80000001, 0xFF7FFFFF, 0x7F800001, 0xFFC00123,
    0x7FBFFFFF, 0xFFA00001,
]


def test_f32_sqrt_directed_corners():
    values = SQRT_DIRECTED + [int(v) for v in F32_SPECIALS]
    got = [g["y"] for g in stream_sim(F32Sqrt(), [{"a": v} for v in values], ("y",), F32Sqrt.LATENCY)]
    want = f32_sqrt_reference(np.array(values, dtype=np.uint32))
    bad = [(hex(v), hex(g), hex(w)) for v, g, w in zip(values, got, want) if g != w]
    assert not bad, bad[:8]
    y = dict(zip(values, got))
    assert y[_f32(2.25)] == _f32(1.5) and y[_f32(2.0)] == 0x3FB504F3 and y[0x00000002] == 0x1A800000  # 2^-74
    assert y[0x00000001] == 0x1A3504F3 and y[0x7F7FFFFF] == 0x5F7FFFFF  # the smallest and largest
    assert y[_f32(-0.0)] == 0x80000000 and y[0x7F800000] == 0x7F800000
    assert y[_f32(-1.0)] == DEFAULT_NAN and y[0xFF800000] == DEFAULT_NAN and y[0x80000001] == DEFAULT_NAN
    assert y[0x7F800001] == 0x7FC00001 and y[0xFFA00001] == 0xFFE00001


def test_f32_sqrt_bulk_matches_numpy():
    runner = StreamRunner(F32Sqrt(), ("a",), ("y",))
    a = f32_sqrt_values(BULK, seed=15)
    (got,) = runner.run(a)
    assert got.shape == (len(a), 1)
    got = got[:, 0]
    want = f32_sqrt_reference(a)
    bad = np.nonzero(got != want)[0]
    assert bad.size == 0, [(hex(a[i]), hex(got[i]), hex(want[i])) for i in bad[:8]]
    # Coverage: exact roots, operands one ulp off an exact square, subnormal operands, negative operands.
    def square(v: np.ndarray) -> np.ndarray:  # a binary32 whose root is a binary32 (squared exactly in float64)
        with np.errstate(all="ignore"):
            return np.isfinite(v) & (np.sqrt(v).astype(np.float64) ** 2 == v.astype(np.float64))

    x = a.view(np.float32)
    squares = square(x)
    with np.errstate(all="ignore"):
        up, down = np.nextafter(x, np.float32(np.inf)), np.nextafter(x, np.float32(0))
    beside = ~squares & (square(up) | square(down))
    subnormal = ((a & 0x7F800000) == 0) & ((a & 0x7FFFFF) != 0)
    assert min(squares.sum(), beside.sum(), subnormal.sum()) > 100_000, (squares.sum(), beside.sum(), subnormal.sum())
    assert (want == DEFAULT_NAN).sum() > 100_000
