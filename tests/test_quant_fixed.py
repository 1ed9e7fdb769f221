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
    # §6's worked examples, bit for bit: silu(-1), softplus(+-1), silu/softplus(-100), and a quieted NaN
    x = np.array([0xBF800000, 0x3F800000, 0xC2C80000, 0x7FA00001], np.uint32).view(np.float32)
    assert fixed.silu_f32(x).view(np.uint32).tolist() == [0xBE89B2B1, 0x3F3B26A8, 0x80000A8C, 0x7FE00001]
    assert fixed.softplus_f32(x).view(np.uint32).tolist() == [0x3EA063D6, 0x3FA818F6, 0x0000001B, 0x7FE00001]


def _silu_softplus_inputs() -> np.ndarray:
    """About 1.2M binary32 inputs: random bit patterns, random values where the functions bend, and structured
    ones: every exponent with edge mantissas, the neighbours of the x > 20 switch, of E's segment points
    (32 y = n, n + 1/2) and of L's (q = j/32), and the special values."""
    rng = np.random.default_rng(12)
    parts = [rng.integers(0, 1 << 32, 500_000, dtype=np.uint64).astype(np.uint32).view(np.float32),
             rng.uniform(-120, 30, 400_000).astype(np.float32),
             rng.standard_normal(100_000).astype(np.float32)]
    exps = np.arange(256, dtype=np.uint32) << np.uint32(23)
    mants = np.array([0, 1, 2, 0x400000, 0x7FFFFE, 0x7FFFFF], np.uint32)
    edge = (exps[:, None] | mants[None, :]).ravel()
    parts.append(np.concatenate([edge, edge | np.uint32(1 << 31)]).view(np.float32))
    # x with |x| * log2e near (n + {0, 1/2}) / 32, n up to 160 * 32; and x = -ln(1 + ...) hitting q near j/32
    grid = (np.arange(0, 160 * 64 + 1, dtype=np.float64) / 64) / np.log2(np.e)
    q = np.arange(1, 33, dtype=np.float64) / 32
    centres = np.concatenate([grid, -np.log(q)]).astype(np.float32)
    near = [centres]
    for _ in range(3):
        near.append(np.nextafter(near[-1], np.float32(np.inf)))
    near.append(np.nextafter(centres, np.float32(0)))
    around = np.concatenate(near)
    parts += [around, -around, np.array([20.0, 19.999998, 20.000002, -20.0, 0.0, -0.0, np.inf, -np.inf], np.float32)]
    nans = np.array([0x7FC00000, 0x7F800001, 0xFFBFFFFF, 0x7FA00001], np.uint32).view(np.float32)
    return np.concatenate(parts + [nans])


def test_silu_softplus_bit_exact_with_isa_numerics_on_a_million_inputs():
    x = _silu_softplus_inputs()
    assert x.size > 1_000_000
    for golden, sim in ((fixed.silu_f32, numerics.silu), (fixed.softplus_f32, numerics.softplus)):
        g, s = golden(x).view(np.uint32), sim(x).view(np.uint32)
        bad = np.flatnonzero(g != s)
        assert bad.size == 0, (golden.__name__, x[bad[:5]], g[bad[:5]], s[bad[:5]])


def test_silu_softplus_use_no_float64():
    """§6: binary32 steps only; the golden model's functions never form a float64 array."""
    for fn in (fixed.silu_f32, fixed.softplus_f32, fixed.exp_neg_f32, fixed.log1p_f32):
        assert "float64" not in inspect.getsource(fn) and "astype(np.float64" not in inspect.getsource(fn)


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
