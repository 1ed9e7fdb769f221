"""hardware.fp32: int32 -> binary32 and the binary32 multiply, bit for bit against numpy float32.

Directed corner cases run in Amaranth's simulator (which also measures each
LATENCY); millions of random and structured operands run through the same
components compiled with Verilator (tests/hw_datapath_bulk.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from fastmamba.hardware.fp32 import DEFAULT_NAN, F32Mul, I32ToF32
from hw_datapath_bulk import F32_SPECIALS, StreamRunner, f32_mul_reference, f32_pairs, i32_values, stream_sim

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
