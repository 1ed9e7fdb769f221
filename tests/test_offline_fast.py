"""The offline weight transforms' fast paths give the bytes of their plain forms, bit for bit.

compiler/quant/hadamard.py's rotate_blocks: the reference is the float64 GEMM it ran before its factored path
(written out here), and for the blocks the exactness test accepts, the exact rational value of each output
(Python integers), rounded to float32.  compiler/quant/offline.py's quantize_weight, done a few rows at a time:
the reference is the whole-array form it had before.
"""

from fractions import Fraction

import numpy as np
import pytest

from fastmamba.compiler.quant.hadamard import exact_blocks, rotate_blocks, sylvester
from fastmamba.compiler.quant.offline import quantize_weight


def gemm_reference(x: np.ndarray, block: int) -> np.ndarray:
    """The float64 GEMM over all of x, as rotate_blocks computed it before."""
    h = sylvester(block).astype(np.float64) / np.sqrt(block)
    return (x.astype(np.float64).reshape(-1, block) @ h).reshape(x.shape).astype(x.dtype)


def awkward(rng, rows: int, cols: int) -> np.ndarray:
    """Normal weights with what the exactness test must catch: tiny entries beside large ones (inexact sums),
    zeros, negative zeros, all-zero rows, rows that cancel to zero, bf16-like values, subnormals."""
    x = (rng.standard_normal((rows, cols)) * 0.02).astype(np.float32)
    x[rng.random((rows, cols)) < 0.002] = 0.0
    x[rng.random((rows, cols)) < 0.002] = -0.0
    picks = rng.integers(0, rows * cols, rows // 3)
    x.flat[picks] *= np.float32(2.0 ** -30)  # a span beyond 2^28: these blocks take the GEMM
    x[1] = 0.0
    x[2] = -0.0
    x[3, :cols // 2], x[3, cols // 2:] = 1.5, -1.5
    x[4] = (x[4].view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)  # bfloat16 values
    x[5, ::7] = np.float32(1e-40)  # subnormal
    x[6, 0] = np.float32(3e38)
    return x


@pytest.mark.parametrize("block", [2, 4, 8, 16, 32, 64, 128, 256, 1024])
def test_rotate_blocks_equals_the_gemm_bit_for_bit(block):
    rng = np.random.default_rng(block)
    x = awkward(rng, 300, 2048)  # 300 rows: more than one chunk of blocks
    got = rotate_blocks(x, block)
    assert got.dtype == np.float32 and got.shape == x.shape
    assert np.array_equal(got.view(np.uint32), gemm_reference(x, block).view(np.uint32))


def test_other_dtypes_and_shapes_take_the_gemm():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 5, 512))
    assert np.array_equal(rotate_blocks(x, 256).view(np.uint64), gemm_reference(x, 256).view(np.uint64))
    y = awkward(rng, 40, 256)[:, ::2]  # not contiguous
    assert np.array_equal(rotate_blocks(y, 64).view(np.uint32), gemm_reference(y, 64).view(np.uint32))


def test_exact_blocks_accepts_only_sums_that_are_exact():
    rng = np.random.default_rng(3)
    x = awkward(rng, 64, 256).reshape(-1, 16)
    ok = exact_blocks(x)
    assert ok.sum() > len(ok) // 2 and not ok.all()
    h = sylvester(16)
    for row in np.flatnonzero(ok)[:200]:
        values = [Fraction(float(v)) for v in x[row]]
        exact = [sum(v * int(s) for v, s in zip(values, h[:, j])) / 4 for j in range(16)]
        want = np.array([float(e) for e in exact], np.float64).astype(np.float32)  # float(): correctly rounded
        assert np.array_equal(rotate_blocks(x[row][None], 16)[0].view(np.uint32), want.view(np.uint32))
    assert not exact_blocks(np.array([[1.0, 2.0 ** -40, 0, 0]], np.float32))[0]
    assert not exact_blocks(np.array([[np.inf, 1, 0, 0]], np.float32))[0]
    assert exact_blocks(np.zeros((1, 4), np.float32))[0]


def quantize_reference(w: np.ndarray, granularity: str) -> tuple[np.ndarray, np.ndarray]:
    """quantize_weight as it was, over the whole array at once."""
    w = np.asarray(w)
    if w.dtype != np.float32:
        w = w.astype(np.float64)
    a = np.abs(w)
    amax = a.max(axis=1).astype(np.float64) if granularity == "channel" else np.full(w.shape[0], np.float64(a.max()))
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    q = np.divide(w, scale.astype(np.float64)[:, None], dtype=np.float64)
    np.clip(np.rint(q, out=q), -127, 127, out=q)
    return q.astype(np.int8), scale


@pytest.mark.parametrize("granularity", ["channel", "tensor"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_quantize_weight_equals_the_whole_array_form(granularity, dtype):
    rng = np.random.default_rng(11)
    w = awkward(rng, 70, 1000).astype(dtype)  # 70 rows of 1000: several chunks, the last one short
    w[7] = -w[7]
    w[8, 3] = -np.abs(w[8]).max() * 1.5  # the largest |w| negative
    w[9, :] = np.float32(127.0) * np.arange(1000) / 2 - 3  # exact ties of x.5 after the division
    got_q, got_s = quantize_weight(w, granularity)
    want_q, want_s = quantize_reference(w, granularity)
    assert got_q.dtype == np.int8 and got_s.dtype == np.float32
    assert np.array_equal(got_q, want_q) and np.array_equal(got_s.view(np.uint32), want_s.view(np.uint32))
