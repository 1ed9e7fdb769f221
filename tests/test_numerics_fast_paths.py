"""fastmamba.isa.numerics' shortcuts for the common cases (no np.clip wrapper, exp = 0, scale = 1, an empty chain)
give the bits of the general formulas of docs/NUMERICS.md §1 and §6, extreme values included."""

from __future__ import annotations

import numpy as np
import pytest

from fastmamba.isa import numerics

EXTREMES = np.array([np.inf, -np.inf, np.nan, 3.4e38, -3.4e38, 1e-45, -0.0, 0.0, 2.5, -2.5, 3.5, 127.5, -128.5],
                    np.float32)


@pytest.mark.parametrize("dtype", ["i8", "i16", "i32"])
def test_saturate_and_quantize_match_np_clip(dtype):
    lo, hi = numerics.INT_RANGE[dtype]
    ints = np.array([-(1 << 62), lo - 1, lo, -1, 0, 1, hi, hi + 1, 1 << 62], np.int64)
    assert np.array_equal(numerics.saturate(ints, dtype), np.clip(ints, lo, hi).astype(numerics.NUMPY_DTYPES[dtype]))
    r = np.rint(EXTREMES.astype(np.float64))
    want = np.clip(np.where(np.isnan(r), 0.0, r), lo, hi).astype(numerics.NUMPY_DTYPES[dtype])
    got = numerics.quantize(EXTREMES, dtype)
    assert got.dtype == want.dtype and np.array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32])
def test_dequant_with_exp_zero_is_the_ldexp_formula(dtype):
    info = np.iinfo(dtype)
    a = np.array([[info.min, -1, 0, 1, info.max]], dtype)
    got = numerics.dequant(a, 0)
    want = np.ldexp(a.astype(np.float32), np.int32(0)).astype(np.float32)
    assert got.dtype == np.float32 and np.array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("dtype", ["i8", "i16", "i32"])
def test_vec_output_with_scale_one_is_the_general_formula(dtype):
    got = numerics.vec_output(EXTREMES, dtype, 1.0)  # -W error: no warning may escape either
    with np.errstate(all="ignore"):
        want = numerics.quantize(EXTREMES * np.float32(1.0), dtype)
    assert np.array_equal(got, want)
    finite = np.array([2.5, -2.5, 3.25, 100.0], np.float32)  # and another scale still multiplies
    assert numerics.vec_output(finite, dtype, 2.0).tolist() == [5, -5, 6, 127 if dtype == "i8" else 200]


def test_an_empty_chain_returns_its_input_as_binary32():
    x = EXTREMES.reshape(1, -1)
    got = numerics.vec_chain(x, ("none",) * 4)
    assert got.dtype == np.float32 and np.array_equal(got.view(np.uint32), x.view(np.uint32))
    got = numerics.vec_chain(np.array([[1, -2]], np.float64), ("none",) * 4)
    assert got.dtype == np.float32 and got.tolist() == [[1.0, -2.0]]
