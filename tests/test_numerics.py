"""fastmamba.isa.numerics against plain-Python references of docs/NUMERICS.md: rounding, tables, exp/softplus,
Hadamard."""

from __future__ import annotations

import decimal
import math
from fractions import Fraction

import numpy as np
import pytest

from fastmamba.isa import numerics as nm
from fastmamba.isa.target import load_target

import vec_reference as vr

TARGET = load_target("vc709")
S, BITS = TARGET.nla_segments, TARGET.nla_bits
ONE = 1 << (BITS - 1)


def ref_rshift_round(x: int, s: int) -> int:
    return x if s == 0 else math.floor(Fraction(x, 2**s) + Fraction(1, 2))


def ref_exp_q(z: int, f: int) -> int:
    """docs/NUMERICS.md §4 step by step, on Python ints."""
    log2s = S.bit_length() - 1
    base = [round(2 ** (i / S) * ONE) for i in range(S)] + [2 * ONE]
    z = min(z, 0)
    y = math.floor(Fraction(z * 23, 16))
    u = math.floor(Fraction(y, 2**f))
    v = y - u * 2**f
    seg = v // 2 ** (f - log2s)
    dv = v - seg * 2 ** (f - log2s)
    p = base[seg] + math.floor(Fraction((base[seg + 1] - base[seg]) * dv, 2 ** (f - log2s)))
    if -u > 2 * BITS:  # p < 2^BITS: the rounded quotient is 0 (skips giant Fractions)
        return 0
    return ref_rshift_round(p, -u)


def ref_softplus_q(s: int, f: int) -> int:
    e = ref_rshift_round(ref_exp_q(-abs(s), f), BITS - 1 - f)
    return min(max(s + e if s > 0 else e, 0), 2**BITS - 1)


def test_rshift_round_ties_and_signs():
    rng = np.random.default_rng(0)
    xs = [5, -5, 6, -6, 7, -7, 0, 1, -1, 2, -2, 3, -3] + rng.integers(-(2**40), 2**40, 200).tolist()
    for s in (0, 1, 2, 3, 17, 40, 61, 62, 63, 100):
        got = nm.rshift_round(np.array(xs), s)
        assert got.tolist() == [ref_rshift_round(x, s) for x in xs], s
    # ties go toward +inf, for both signs
    assert nm.rshift_round(np.array([5, -5, 6, -6, 3, -3]), np.array([1, 1, 2, 2, 1, 1])).tolist() == [3, -2, 2, -1, 2,
                                                                                                       -1]
    # per-element shifts agree with scalar shifts
    shifts = rng.integers(0, 70, len(xs))
    assert nm.rshift_round(np.array(xs), shifts).tolist() == [ref_rshift_round(x, int(s)) for x, s in zip(xs, shifts)]
    with pytest.raises(ValueError):
        nm.rshift_round(np.array([1]), -1)


def test_saturate_and_quantize():
    for name, (lo, hi) in (("i8", (-128, 127)), ("i16", (-32768, 32767)), ("i32", (-(2**31), 2**31 - 1))):
        vals = [lo - 1, lo, 0, hi, hi + 1, 3 * lo, 3 * hi]
        got = nm.saturate(np.array(vals), name)
        assert got.dtype == nm.NUMPY_DTYPES[name]
        assert got.tolist() == [min(max(v, lo), hi) for v in vals]
    xs = np.array([2.5, 3.5, -2.5, -3.5, 0.5, 1.4999999, 300.7, -300.7, np.inf, -np.inf, 1e30], dtype=np.float32)
    got = nm.quantize(xs, "i8")
    assert got.tolist() == [min(max(round(float(x)) if math.isfinite(x) else (127 if x > 0 else -128), -128), 127)
                            for x in xs]
    big = np.array([2.0**31, -(2.0**31) - 1e6, 2147483520.0], dtype=np.float32)
    assert nm.quantize(big, "i32").tolist() == [2**31 - 1, -(2**31), 2147483520]


def test_hadamard_is_sylvester_and_orthogonal():
    for hlog2 in range(0, 9):
        b = 1 << hlog2
        h = nm.hadamard(b)
        ref = np.array([[(-1) ** bin(i & j).count("1") for j in range(b)] for i in range(b)])
        assert np.array_equal(h, ref)
        assert np.array_equal(h @ h, b * np.eye(b, dtype=np.int64))
    with pytest.raises(ValueError):
        nm.hadamard(6)


def test_hadamard_blocks_matches_block_matmul():
    rng = np.random.default_rng(1)
    for hlog2 in (0, 1, 3, 8):
        b = 1 << hlog2
        a = rng.integers(-32768, 32768, (3, 2 * b * 2))
        h = [[(-1) ** bin(i & j).count("1") for j in range(b)] for i in range(b)]
        ref = [[sum(int(a[r, blk * b + i]) * h[i][j] for i in range(b))
                for blk in range(a.shape[1] // b) for j in range(b)]
               for r in range(a.shape[0])]
        assert nm.hadamard_blocks(a, hlog2).tolist() == ref
    with pytest.raises(ValueError):
        nm.hadamard_blocks(np.zeros((1, 6), np.int64), 2)


def sylvester_python(b):
    return np.array([[(-1) ** bin(i & j).count("1") for j in range(b)] for i in range(b)], dtype=np.int64)


@pytest.mark.parametrize("hlog2", [9, 10, 11])
def test_hadamard_blocks_exact_at_the_int16_extremes(hlog2):
    """Sums up to 2^15 * b: float32 holds them up to b = 512, float64 beyond; both must be exact."""
    b = 1 << hlog2
    h = sylvester_python(b)
    rng = np.random.default_rng(hlog2)
    a = np.full((3, 2 * b), -32768, dtype=np.int16)
    a[1] = np.tile(np.where(h[5] > 0, 32767, -32768), 2)  # matches row 5's signs: sums near 2^15 * b
    a[2] = rng.integers(-32768, 32768, 2 * b)
    ref = np.concatenate([a[:, :b].astype(np.int64) @ h, a[:, b:].astype(np.int64) @ h], axis=1)
    got = nm.hadamard_blocks(a, hlog2)
    assert got.dtype == np.int64 and np.array_equal(got, ref)
    assert abs(int(got[0, 0])) == 32768 * b


@pytest.mark.parametrize("k", [1, 1023, 1024, 1025, 3000])
def test_int8_matmul_exact_past_float32_range(k):
    """All -128: every dot product is k * 2^14, past 2^24 for k > 1024; random rows alongside."""
    rng = np.random.default_rng(k)
    q = np.concatenate([np.full((1, k), -128), rng.integers(-128, 128, (3, k))]).astype(np.int8)
    w = np.concatenate([np.full((1, k), -128), np.full((1, k), 127), rng.integers(-128, 128, (2, k))]).astype(np.int8)
    got = nm.int8_matmul(q, w)
    ref = [[sum(int(x) * int(y) for x, y in zip(qr, wr)) for wr in w] for qr in q]
    assert got.dtype == np.int64 and got.tolist() == ref
    assert got[0, 0] == k * 2**14


def test_exp2_table_endpoints_monotone():
    for segments, bits in ((S, BITS), (4, 8), (16, 16), (8, 24), (1, 16)):
        base, slope = nm.exp2_table(segments, bits)
        one = 1 << (bits - 1)
        assert base[0] == one and base[-1] == 2 * one
        assert np.all(slope > 0) and np.array_equal(np.cumsum(slope), base[1:] - base[0])
        for i in range(segments):
            assert abs(base[i] - 2 ** (i / segments) * one) <= 0.5
    assert nm.exp2_table(S, BITS)[0].tolist() == [32768, 35734, 38968, 42495, 46341, 50535, 55109, 60097, 65536]


@pytest.mark.parametrize("frac", [3, 8, 12, 15])
def test_exp_q_bit_exact_against_the_documented_steps(frac):
    rng = np.random.default_rng(frac)
    z = np.concatenate([rng.integers(-(40 << frac), 1, 400), np.arange(-70, 5), [-(2**31), 2**31 - 1]])
    got = nm.exp_q(z, frac, segments=S, bits=BITS)
    assert got.tolist() == [ref_exp_q(int(v), frac) for v in z]
    assert got.max() <= ONE and got.min() >= 0
    assert nm.exp_q(np.array([0, 5]), frac, segments=S, bits=BITS).tolist() == [ONE, ONE]


def test_exp_q_monotone_and_error_bounds():
    frac = 12
    z = np.arange(-(16 << frac), 1)
    e = nm.exp_q(z, frac, segments=S, bits=BITS)
    assert np.all(np.diff(e) >= 0)
    x = z / 2.0**frac
    ref = np.array([math.exp(v) for v in x[:: 97]])
    err = np.abs(e[:: 97] / ONE - ref)
    assert err.max() < 2e-3
    near = x[:: 97] >= -4
    assert (err[near] / ref[near]).max() < 2e-2
    with pytest.raises(ValueError):
        nm.exp_q(np.array([0]), 2, segments=8, bits=16)


@pytest.mark.parametrize("frac", [3, 8, 12, 15])
def test_softplus_q_bit_exact_and_bounded(frac):
    rng = np.random.default_rng(100 + frac)
    s = np.concatenate([rng.integers(-(10 << frac), 10 << frac, 300), [0, 1, -1, 2**31 - 1, -(2**31)]])
    got = nm.softplus_q(s, frac, segments=S, bits=BITS)
    assert got.tolist() == [ref_softplus_q(int(v), frac) for v in s]
    assert got.min() >= 0 and got.max() <= 2**BITS - 1
    with pytest.raises(ValueError):
        nm.softplus_q(np.array([0]), BITS, segments=S, bits=BITS)


def test_softplus_q_error_against_ln1p_exp():
    frac = 12
    s = np.arange(-(8 << frac), (8 << frac) + 1, 13)
    got = nm.softplus_q(s, frac, segments=S, bits=BITS) / 2.0**frac
    x = s / 2.0**frac
    ref = np.array([math.log1p(math.exp(v)) for v in x])
    err = np.abs(got - ref)
    assert err.max() < 0.31  # the approximation's worst case is s = 0: e^0 = 1 against ln 2
    assert err[np.abs(x) >= 4].max() < 0.02


def test_dequant_and_output_quantization():
    a = np.array([3, -5, 2**24 + 1, 7], dtype=np.int32)
    got = nm.dequant(a, -3)
    assert got.dtype == np.float32
    assert got.tolist() == [0.375, -0.625, float(np.float32(2**24)) / 8, 0.875]
    f = np.array([1.5, -2.25], dtype=np.float32)
    assert nm.dequant(f, 10).tolist() == [1.5, -2.25]
    x = np.array([0.25, 0.75, -0.25, 100.0], dtype=np.float32)
    assert nm.vec_output(x, "i8", 2.0).tolist() == [0, 2, 0, 127]  # 0.5 -> 0, 1.5 -> 2 (ties to even)


def test_rmsnorm_sequential_binary32_sum():
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((3, 48)) * 10).astype(np.float32)
    got = nm.rmsnorm(x, 16, 1e-5)
    eps = np.float32(1e-5)
    for r in range(3):
        for g in range(3):
            ss = np.float32(0)
            for v in x[r, g * 16:(g + 1) * 16]:
                ss = np.float32(ss + np.float32(v * v))
            inv = np.float32(np.float32(1) / np.sqrt(np.float32(ss / np.float32(16)) + eps))
            for c in range(16):
                assert got[r, g * 16 + c] == np.float32(x[r, g * 16 + c] * inv)


def _nearest_binary32(value: Fraction, got: np.float32) -> bool:
    """Whether `got` is a binary32 nearest to the real `value` (no neighbour is strictly closer)."""
    err = abs(Fraction(float(got)) - value)
    return all(abs(Fraction(float(n)) - value) >= err
               for n in (np.nextafter(got, np.float32(np.inf)), np.nextafter(got, np.float32(-np.inf))))


def test_vec_tables_and_constants_are_correctly_rounded():
    """§6's tables and constants against 60-digit decimal values: each is the binary32 nearest its real value."""
    with decimal.localcontext() as ctx:
        ctx.prec = 60
        ln2 = decimal.Decimal(2).ln()
        for k in range(32):
            assert _nearest_binary32(Fraction((ln2 * k / 32).exp()), nm.VEC_EXP_TABLE[k]), k
            assert _nearest_binary32(Fraction((1 + decimal.Decimal(k) / 32).ln()), nm.VEC_LOG_TABLE[k]), k
            assert _nearest_binary32(Fraction(32, 32 + k), nm.VEC_RECIP_TABLE[k]), k
        assert _nearest_binary32(Fraction(1 / ln2), nm.VEC_LOG2E)
        assert _nearest_binary32(Fraction(ln2 / 32), nm.VEC_EXP_E1)
        assert _nearest_binary32(Fraction((ln2 / 32) ** 2 / 2), nm.VEC_EXP_E2)
        assert _nearest_binary32(Fraction(1, 3), nm.VEC_LOG_C3)


def _bits(v) -> list[int]:
    return np.asarray(v, np.float32).view(np.uint32).ravel().tolist()


# (x, silu(x), softplus(x)) as binary32 bit patterns, worked by hand from §6 (its worked examples) and IEEE rules.
DIRECTED = [
    (0x00000000, 0x00000000, 0x3F317218),  # +0: 0 / 2; L(E(0)) = L(1) = Lt[31] + ... = ln 2
    (0x80000000, 0x80000000, 0x3F317218),  # -0: -0 / 2; max(-0, +0) taken as +0
    (0x3F800000, 0x3F3B26A8, 0x3FA818F6),  # 1
    (0xBF800000, 0xBE89B2B1, 0x3EA063D6),  # -1
    (0x00000001, 0x00000000, 0x3F317218),  # the smallest subnormal: x / 2 rounds to even (0)
    (0x80000001, 0x80000000, 0x3F317218),
    (0x00000002, 0x00000001, 0x3F317218),  # 2^-148 / 2 = 2^-149 exactly
    (0x41A00000, 0x41A00000, 0x41A00000),  # 20: still the formula, 20 + 2.06e-9 rounds to 20
    (0x41A00001, 0x41A00001, 0x41A00001),  # just above 20: x itself
    (0xC1A00000, 0xB3310D40, 0x310DA433),  # -20
    (0xC2C80000, 0x80000A8C, 0x0000001B),  # -100: subnormal results
    (0xC47A0000, 0x80000000, 0x00000000),  # -1000: E = +0
    (0x7F800000, 0x7F800000, 0x7F800000),  # +inf
    (0xFF800000, 0x80000000, 0x00000000),  # -inf: silu -0 by definition, softplus +0 + L(0)
    (0x7F7FFFFF, 0x7F7FFFFF, 0x7F7FFFFF),  # the largest binary32: x / 1, and x > 20
    (0xFF7FFFFF, 0x80000000, 0x00000000),  # its negative: E(+max) = +0
    (0x7FA00001, 0x7FE00001, 0x7FE00001),  # a signaling NaN with a payload: quieted, payload kept
    (0xFFC00005, 0xFFC00005, 0xFFC00005),  # a negative quiet NaN: itself
]


def test_silu_softplus_directed_values_worked_by_hand():
    x = np.array([d[0] for d in DIRECTED], np.uint32).view(np.float32)
    got_silu, got_sp = _bits(nm.silu(x)), _bits(nm.softplus(x))
    for (xb, silu_b, sp_b), gs, gp in zip(DIRECTED, got_silu, got_sp):
        assert (gs, gp) == (silu_b, sp_b), (hex(xb), hex(gs), hex(gp))


def test_vec_exp_and_log1p_steps():
    """E and L of §6 at their segment and range boundaries, with values that follow from the steps alone."""
    assert _bits(nm.vec_exp_neg(np.array([0.0, np.inf, 200.0, 1e30], np.float32))) == [0x3F800000, 0, 0, 0]
    # the table points: L(j/32) = Lt[j] (d = 0, r = 0); L(1) uses segment 31: d = 1/32
    j = np.arange(32, dtype=np.float32)
    assert _bits(nm.vec_log1p(j / np.float32(32))) == _bits(nm.VEC_LOG_TABLE)
    assert _bits(nm.vec_log1p(np.float32(1.0))) == [0x3F317218]
    # y = -149 exactly (a = 149 / LOG2E rounded so that a * LOG2E rounds to 149 is found by search): E = 2^-149
    a = np.float32(149.0) / nm.VEC_LOG2E
    while np.float32(a * nm.VEC_LOG2E) != np.float32(149.0):
        a = np.nextafter(a, np.float32(np.inf) if np.float32(a * nm.VEC_LOG2E) < 149 else np.float32(0))
    assert _bits(nm.vec_exp_neg(a)) == [0x00000001]
    # E(1) step by step (§6's worked example)
    assert _bits(nm.vec_exp_neg(np.float32(1.0))) == [0x3EBC5AB2]


def test_silu_softplus_equal_a_scalar_reading_of_the_doc():
    """20,000 random bit patterns and values against tests/vec_reference.py (Python floats rounded by struct)."""
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.integers(0, 1 << 32, 10_000, dtype=np.uint64).astype(np.uint32).view(np.float32),
                        rng.uniform(-110, 30, 10_000).astype(np.float32)])
    x = x[~np.isnan(x)]
    for v, s, p in zip(x.tolist(), nm.silu(x).tolist(), nm.softplus(x).tolist()):
        assert vr.bits(vr.silu(v)) == vr.bits(s) and vr.bits(vr.softplus(v)) == vr.bits(p), v


@pytest.mark.parametrize("name,lo,hi,max_rel", [("silu", -20, 20, 2e-6), ("silu", -87, 0, 6e-6),
                                                ("softplus", -20, 20, 2e-6), ("softplus", -87, 0, 6e-6)])
def test_silu_softplus_close_to_float64(name, lo, hi, max_rel):
    x = np.linspace(lo, hi, 100_001).astype(np.float32)
    x = x[x != 0]
    x64 = x.astype(np.float64)
    ref = x64 / (1 + np.exp(-x64)) if name == "silu" else np.log1p(np.exp(x64))
    got = getattr(nm, name)(x).astype(np.float64)
    assert np.max(np.abs(got - ref) / np.abs(ref)) < max_rel


def test_argmax_first_of_ties():
    a = np.array([[1, 3, 3, 2], [5, 5, 5, 5], [-1, -2, -1, -3]], dtype=np.float32)
    assert nm.argmax(a).tolist() == [1, 0, 0]


def test_the_worked_examples_of_numerics_md():
    """The numbers docs/NUMERICS.md quotes, so the document and the code cannot drift apart."""
    assert nm.hadamard_blocks(np.array([[1, 2, 3, 4]]), 2).tolist() == [[10, -2, -4, 0]]
    a = np.array([[100, -3, 50, 7]], np.int8)
    w = np.array([[1, 2, 3, 4], [-1, 0, 1, 0]], np.int8)
    assert nm.hadamard_blocks(a, 1).tolist() == [[97, 103, 57, 43]]
    assert nm.lin_requant(a, 1, 3, 2).tolist() == [[73, 77, 43, 32]]
    assert nm.lin(a, w, hlog2=1, qmul=3, qshift=2, prev=np.array([[10, 7]])).tolist() == [[494, -23]]
    assert nm.lin(a, w, hlog2=1, qmul=3, qshift=2, scale=np.array([0.5, 0.1], np.float32)).tolist() == \
        [[242.0, float(np.float32(-30) * np.float32(0.1))]]
    dst, new = nm.conv(np.array([[10], [20]]), np.array([[1], [2], [3]]), np.array([[1], [2], [3], [4]]), np.array([5]),
                       1, "i16")
    assert dst.ravel().tolist() == [30, 62] and new.ravel().tolist() == [3, 10, 20]
    assert nm.exp_q(np.array([-4096, 0, -1]), 12, segments=8, bits=16).tolist() == [12110, 32768, 32757]
    assert nm.softplus_q(np.array([4096, -4096, 0]), 12, segments=8, bits=16).tolist() == [5610, 1514, 4096]
    y, st = nm.ssm_scan(np.array([[[1024]]]), np.array([[[2048]]]), np.array([[[4096]]]), np.array([[0]]),
                        np.array([-4096]), np.array([1024]), np.array([0]), np.array([[[2**20]]]), hpg=1, dt_frac=12,
                        a_frac=12, dbx_shift=17, y_shift=18, d_shift=10, segments=8, bits=16, state_bits=32)
    assert y.ravel().tolist() == [8103] and st.ravel().tolist() == [453056]
    assert nm.rmsnorm(np.array([[3, 4]], np.float32), 2, 0.0).tolist() == \
        [[float(np.float32(0.84852815)), float(np.float32(1.1313709))]]
    assert nm.silu(np.float32(1.0)) == np.float32(0.7310586)
    assert nm.softplus(np.array([0, 25], np.float32)).tolist() == [float(np.float32(0.6931472)), 25.0]
