"""compiler/quant/fixed.py: the worked examples of docs/NUMERICS.md, and agreement with isa.numerics.

fixed.py is the golden model's own reading of the doc; isa.numerics is the
simulator's.  Agreement on random operands (including saturating ones) is the
check that both read the same contract.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from fastmamba.compiler.quant import fixed
from fastmamba.isa import numerics

SEG, BITS = 8, 16


def test_rounding_and_saturation_examples():
    x = np.array([5, -5, 6, -6, 7, -7])
    assert fixed.rshift_round(x, np.array([1, 1, 2, 2, 2, 2])).tolist() == [3, -2, 2, -1, 2, -2]
    assert fixed.rshift_round(np.array([5, -5]), 1).tolist() == [3, -2]
    assert fixed.rshift_round(np.array([1 << 40]), 70).tolist() == [0]
    assert fixed.saturate(np.array([200]), "i8").tolist() == [127]
    assert fixed.quantize_float(np.float32([2.5, 3.5, -2.5, 300.7, np.inf, -np.inf, np.nan]), "i8").tolist() == [
        2, 4, -2, 127, 127, -128, 0]


def test_nla_examples():
    base, slope = fixed.exp2_table(SEG, BITS)
    assert base.tolist() == [32768, 35734, 38968, 42495, 46341, 50535, 55109, 60097, 65536]
    assert slope.tolist() == [2966, 3234, 3527, 3846, 4194, 4574, 4988, 5439]
    assert fixed.exp_q(np.array([-4096, 0, -1]), 12, segments=SEG, bits=BITS).tolist() == [12110, 32768, 32757]
    assert fixed.softplus_q(np.array([4096, -4096, 0]), 12, segments=SEG, bits=BITS).tolist() == [5610, 1514, 4096]


def test_lin_conv_ssm_examples():
    out = fixed.lin_f32(np.array([[100, -3, 50, 7]]), np.array([[1, 2, 3, 4], [-1, 0, 1, 0]]), np.array([0.5, 0.1]),
                        hlog2=1, qmul=3, qshift=2)
    assert out.tolist() == [[242.0, np.float32(-3.0)]]
    dst, state = fixed.conv_q(np.array([[10], [20]]), np.array([[1], [2], [3]]), np.array([[1], [2], [3], [4]]),
                              np.array([5]), 1, "i16")
    assert dst.ravel().tolist() == [30, 62] and state.ravel().tolist() == [3, 10, 20]
    y, st = fixed.ssm_scan_q(np.array([[[1024]]]), np.array([[[2048]]]), np.array([[[4096]]]), np.array([[0]]),
                             np.array([-4096]), np.array([1024]), np.array([0]), np.array([[[1 << 20]]]), hpg=1,
                             dt_frac=12, a_frac=12, dbx_shift=17, y_shift=18, d_shift=10, segments=SEG, bits=BITS)
    assert y.ravel().tolist() == [8103] and st.ravel().tolist() == [453056]


def test_vec_examples():
    assert fixed.rmsnorm_f32(np.array([[3.0, 4.0]]), 2, 0.0).tolist() == [[np.float32(0.84852815),
                                                                           np.float32(1.1313709)]]
    assert fixed.silu_f32(np.array([1.0])).tolist() == [np.float32(0.7310586)]
    assert fixed.softplus_f32(np.array([0.0, 25.0], np.float32)).tolist() == [np.float32(0.6931472), 25.0]


def test_agrees_with_isa_numerics_on_random_operands():
    rng = np.random.default_rng(0)
    z = rng.integers(-(1 << 20), 1 << 10, 5000)
    for frac in (3, 8, 12, 15):
        assert np.array_equal(fixed.exp_q(z, frac, segments=SEG, bits=BITS), numerics.exp_q(z, frac, segments=SEG,
                                                                                            bits=BITS))
        assert np.array_equal(fixed.softplus_q(z, frac, segments=SEG, bits=BITS),
                              numerics.softplus_q(z, frac, segments=SEG, bits=BITS))
    a = rng.integers(-(1 << 15), 1 << 15, (7, 512))
    w = rng.integers(-127, 128, (33, 512))
    scale = rng.uniform(1e-4, 1e-2, 33).astype(np.float32)
    for hlog2, qmul, qshift in ((0, 1, 0), (0, 300, 12), (8, 40000, 27), (4, 65535, 20)):
        want = numerics.lin(a, w, hlog2=hlog2, qmul=qmul, qshift=qshift, scale=scale)
        assert np.array_equal(fixed.lin_f32(a, w, scale, hlog2=hlog2, qmul=qmul, qshift=qshift), want)
    src = rng.integers(-(1 << 15), 1 << 15, (9, 40))
    st = rng.integers(-(1 << 15), 1 << 15, (3, 40))
    wc = rng.integers(-(1 << 15), 1 << 15, (4, 40))
    bias = rng.integers(-(1 << 31), 1 << 31, 40)
    for shift, out in ((0, "i32"), (14, "i16"), (20, "i16")):
        got, got_state = fixed.conv_q(src, st, wc, bias, shift, out)
        want, want_state = numerics.conv(src, st, wc, bias, shift, out)
        assert np.array_equal(got, want) and np.array_equal(got_state, want_state)


@pytest.mark.parametrize("state_bits,dbx_shift", [(32, 20), (32, 12), (24, 14)])
def test_ssm_agrees_with_isa_numerics(state_bits, dbx_shift):
    rng = np.random.default_rng(state_bits)
    t, h, p, n, g = 13, 4, 8, 16, 2
    kw = dict(hpg=h // g, dt_frac=11, a_frac=14, dbx_shift=dbx_shift, y_shift=19, d_shift=9, segments=SEG, bits=BITS)
    args = (rng.integers(-(1 << 15), 1 << 15, (t, h, p)), rng.integers(-(1 << 15), 1 << 15, (t, g, n)),
            rng.integers(-(1 << 15), 1 << 15, (t, g, n)), rng.integers(-(1 << 14), 1 << 14, (t, h)),
            -rng.integers(1, 1 << 17, h), rng.integers(-(1 << 20), 1 << 20, h), rng.integers(-(1 << 14), 1 << 12, h),
            rng.integers(-(1 << 30), 1 << 30, (h, p, n)))
    extra = {"state_bits": state_bits} if "state_bits" in inspect.signature(numerics.ssm_scan).parameters else {}
    if not extra and state_bits != 32:
        pytest.skip("fastmamba.isa.numerics has no state_bits yet")
    y, st = fixed.ssm_scan_q(*args, state_bits=state_bits, block=5, **kw)
    y_ref, st_ref = numerics.ssm_scan(*args, **kw, **extra)
    assert np.array_equal(y, y_ref) and np.array_equal(st, st_ref)
    saturated = np.abs(st).max() >= (1 << (state_bits - 1)) - 1
    assert saturated == (dbx_shift < 16)  # small shifts inject enough to saturate the state


def test_wide_nla_words_take_the_int64_path_with_the_same_bits():
    """nla_bits = 24: dA * state reaches 2^54, beyond float64's exact integers; isa.numerics agrees."""
    rng = np.random.default_rng(3)
    t, h, p, n = 5, 2, 4, 8
    kw = dict(hpg=1, dt_frac=20, a_frac=14, dbx_shift=30, y_shift=30, d_shift=9, segments=SEG, bits=24)
    args = (rng.integers(-(1 << 15), 1 << 15, (t, h, p)), rng.integers(-(1 << 15), 1 << 15, (t, h, n)),
            rng.integers(-(1 << 15), 1 << 15, (t, h, n)), rng.integers(-(1 << 15), 1 << 15, (t, h)),
            -rng.integers(1, 1 << 12, h), rng.integers(-(1 << 20), 1 << 20, h), rng.integers(-(1 << 14), 1 << 12, h),
            rng.integers(-(1 << 30), 1 << 30, (h, p, n)))
    extra = {"state_bits": 32} if "state_bits" in inspect.signature(numerics.ssm_scan).parameters else {}
    y, st = fixed.ssm_scan_q(*args, **kw)
    y_ref, st_ref = numerics.ssm_scan(*args, **kw, **extra)
    assert np.array_equal(y, y_ref) and np.array_equal(st, st_ref)
