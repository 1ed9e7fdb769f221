"""The accelerator's arithmetic, written once: rounding, saturation, and each unit's math.

Place in the flow: bottom of `isa/` (imports numpy and the element-type
table `isa.dtypes` only, plus `isa.target` for the `python -m
fastmamba.isa.numerics` report).  The simulator's unit semantics
(`simulator/units/*`) call these functions on views of the machine's memory;
docs/NUMERICS.md states the same rules in words and formulas so the compiler's
golden model can be written from the document alone (it does not import this
module).  Every function is vectorized numpy with int64 intermediates for
integer math and binary32 (numpy float32) for the floating-point group.

Domains: integer inputs are the machine's element types (i8/i16/i32), so every
intermediate below stays under 2^62 in magnitude (the bounds are in
docs/NUMERICS.md).  `rshift_round` relies on that.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from fastmamba.isa.dtypes import INT_MACHINE_TYPES, MACHINE_TYPES, int_range, numpy_dtype

# The machine's element types and ranges, from the one table (isa.dtypes).
INT_TYPES = INT_MACHINE_TYPES
NUMPY_DTYPES = {name: numpy_dtype(name) for name in MACHINE_TYPES}
INT_RANGE = {name: int_range(name) for name in INT_TYPES}

# log2(e) ~ 1.4375 = 23 / 16: the NLA's exp is 2^(z * 23 >> 4).
LOG2E_NUM = 23
LOG2E_SHIFT = 4
# The softplus of the floating-point group returns x itself above this (torch's threshold).
SOFTPLUS_THRESHOLD = 20.0
# A right shift of at least this many bits rounds every |x| < 2^62 to 0.
_SHIFT_ALL = 63
# Integers up to these magnitudes are exact in binary32 / binary64; the largest |int8 * int8|.
FLOAT32_EXACT = 1 << 24
FLOAT64_EXACT = 1 << 53
INT8_PRODUCT_MAX = 128 * 128


# ---------------------------------------------------------------------------
# Rounding and saturation.
# ---------------------------------------------------------------------------
def rshift_round(x, s):
    """floor((x + 2^(s-1)) / 2^s) for s > 0 (round half up, toward +inf), x for s = 0; int64.

    `s` is a non-negative int or an int array broadcasting with `x`; |x| < 2^62.
    Shifts of 63 or more give 0.
    """
    x = np.asarray(x, dtype=np.int64)
    if np.ndim(s) == 0:
        s = int(s)
        if s < 0:
            raise ValueError(f"rshift_round: negative shift {s}")
        if s == 0:
            return x
        if s >= _SHIFT_ALL:
            return np.zeros_like(x)
        return (x + np.int64(1 << (s - 1))) >> np.int64(s)
    s = np.asarray(s, dtype=np.int64)
    if np.any(s < 0):
        raise ValueError("rshift_round: negative shift")
    sc = np.clip(s, 1, _SHIFT_ALL - 1)
    shifted = (x + (np.int64(1) << (sc - 1))) >> sc
    return np.where(s == 0, x, np.where(s >= _SHIFT_ALL, np.int64(0), shifted))


def _max_abs(a: np.ndarray) -> int:
    """The largest |element| of an integer array (from its dtype's range when that is cheap and tight enough)."""
    if a.dtype.itemsize <= 2:
        info = np.iinfo(a.dtype)
        return max(-int(info.min), int(info.max))
    return int(np.abs(a.astype(np.int64)).max(initial=0))


def _rshift_round_inplace(x: np.ndarray, s: int) -> np.ndarray:
    """rshift_round(x, s) written into the int64 array x (scalar s >= 0)."""
    if s >= _SHIFT_ALL:
        x[...] = 0
    elif s > 0:
        x += np.int64(1 << (s - 1))
        x >>= np.int64(s)
    return x


def _clip(x: np.ndarray, lo, hi) -> np.ndarray:
    """np.clip(x, lo, hi) for integer or NaN-free float x, as two ufuncs (np.clip's Python wrapper
    costs several microseconds, which dominates on the small tiles a simulator run is made of)."""
    return np.minimum(np.maximum(x, lo), hi)


def saturate(x, dtype: str) -> np.ndarray:
    """Clip integers to the range of `dtype` ("i8", "i16", "i32") and convert to it."""
    lo, hi = INT_RANGE[dtype]
    return _clip(np.asarray(x, dtype=np.int64), lo, hi).astype(NUMPY_DTYPES[dtype])


def quantize(x, dtype: str) -> np.ndarray:
    """Float -> integer: round half to even in x's own precision (np.rint), then saturate.

    +-inf saturate; NaN gives 0 (every float maps to a defined integer).
    """
    lo, hi = INT_RANGE[dtype]
    r = np.rint(np.asarray(x)).astype(np.float64)
    r = np.where(np.isnan(r), 0.0, r)
    return _clip(r, lo, hi).astype(NUMPY_DTYPES[dtype])


# ---------------------------------------------------------------------------
# LIN: online block Hadamard, requantization, int8 matmul, accumulation, rescale.
# ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def hadamard(b: int) -> np.ndarray:
    """The unnormalized Sylvester Hadamard matrix H_b (b a power of two), int64, read-only."""
    if b < 1 or b & (b - 1):
        raise ValueError(f"hadamard: block {b} is not a power of two")
    h = np.ones((1, 1), dtype=np.int64)
    while h.shape[0] < b:
        h = np.block([[h, h], [h, -h]])
    h.setflags(write=False)
    return h


@functools.lru_cache(maxsize=None)
def _hadamard_float(b: int, dtype: type) -> np.ndarray:
    h = hadamard(b).astype(dtype)
    h.setflags(write=False)
    return h


def _exact_float(bound: int) -> type:
    """The cheaper float type that holds every integer up to `bound` exactly (float32 to 2^24, else float64)."""
    return np.float32 if bound <= FLOAT32_EXACT else np.float64


def hadamard_blocks(a, hlog2: int) -> np.ndarray:
    """a'[m, blk*b:(blk+1)*b] = a[m, blk*b:(blk+1)*b] @ H_b with b = 2^hlog2 (exact, int64).

    Computed as a float matmul with H_b: every partial sum is an integer of
    magnitude at most max|a| * b, held exactly by float32 up to 2^24 and by
    float64 beyond (a is i8/i16, b <= 2^15: below 2^30).
    """
    a = np.asarray(a)
    b = 1 << hlog2
    m, k = a.shape
    if k % b:
        raise ValueError(f"hadamard_blocks: k = {k} is not a multiple of the block {b}")
    bound = _max_abs(a) * b
    if bound >= FLOAT64_EXACT:
        raise ValueError(f"hadamard_blocks: |a| * {b} reaches 2^53")
    ftype = _exact_float(bound)
    y = a.astype(ftype).reshape(m * (k // b), b) @ _hadamard_float(b, ftype)
    return y.reshape(m, k).astype(np.int64)


def lin_requant(a, hlog2: int, qmul: int, qshift: int) -> np.ndarray:
    """q = sat_i8(rshift_round(H(a) * qmul, qshift)), int8 [m, k]."""
    rotated = hadamard_blocks(a, hlog2) if hlog2 else np.asarray(a, dtype=np.int64)
    return saturate(rshift_round(rotated * np.int64(qmul), qshift), "i8")


def int8_matmul(q, wgt) -> np.ndarray:
    """q @ wgt^T exactly, int64 [m, n], for int8 q [m, k] and int8 wgt [n, k].

    Every partial sum is an integer of magnitude at most 2^14 * (terms summed),
    so a float32 product over at most 1024 = 2^24 / 2^14 terms is exact whatever
    the summation order: the product is taken in float32 over chunks of k of
    that length and the chunks' exact results are added in int64.
    """
    qf = np.asarray(q, dtype=np.float32)
    wf = np.asarray(wgt, dtype=np.float32)
    k = qf.shape[1]
    chunk = FLOAT32_EXACT // INT8_PRODUCT_MAX
    prod = (qf[:, :chunk] @ wf[:, :chunk].T).astype(np.int64)
    for lo in range(chunk, k, chunk):
        prod += (qf[:, lo:lo + chunk] @ wf[:, lo:lo + chunk].T).astype(np.int64)
    return prod


def lin_accumulate(prod, prev=None) -> np.ndarray:
    """total = sat_i32(prev + prod) when accumulating onto int32 `prev`, else sat_i32(prod)."""
    total = np.asarray(prod, dtype=np.int64)
    if prev is not None:
        total = total + np.asarray(prev, dtype=np.int64)
    return saturate(total, "i32")


def lin_rescale(total, scale) -> np.ndarray:
    """float32(total) * scale[n]: int32 -> binary32 (round to nearest even), one binary32 multiply (IEEE)."""
    with np.errstate(all="ignore"):  # overflow to +-inf, and NaN from a NaN/inf scale, as IEEE says
        return np.asarray(total, dtype=np.int32).astype(np.float32) * np.asarray(scale, dtype=np.float32)


def lin(a, wgt, *, hlog2: int, qmul: int, qshift: int, prev=None, scale=None) -> np.ndarray:
    """The whole LIN op: int32 [m, n] accumulators, or float32 when `scale` is given."""
    total = lin_accumulate(int8_matmul(lin_requant(a, hlog2, qmul, qshift), wgt), prev)
    return total if scale is None else lin_rescale(total, scale)


# ---------------------------------------------------------------------------
# CONV: causal depthwise conv1d with a state of the last kw-1 inputs.
# ---------------------------------------------------------------------------
def conv(src, state, wgt, bias, shift: int, out_dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """(dst [t, c] of out_dtype, new state [kw-1, c] int16) for src [t, c], state [kw-1, c], wgt [kw, c], bias [c]."""
    src = np.asarray(src, dtype=np.int64)
    wgt = np.asarray(wgt, dtype=np.int64)
    kw = wgt.shape[0]
    t = src.shape[0]
    xx = np.concatenate((np.asarray(state, dtype=np.int64), src), axis=0)
    acc = np.broadcast_to(np.asarray(bias, dtype=np.int64), src.shape).copy()
    for j in range(kw):  # kw <= the target's conv_kernel_max: a loop over taps, vectorized over t and c
        acc += wgt[j] * xx[j:j + t]
    return saturate(rshift_round(acc, shift), out_dtype), xx[t:].astype(np.int16)


# ---------------------------------------------------------------------------
# NLA: exp and softplus in fixed point from a first-order table of 2^v.
# ---------------------------------------------------------------------------
def exp2_table(segments: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(base [segments + 1], slope [segments]) int64: chords of 2^v on [0, 1] in Q1.(bits-1).

    base[i] = round_half_even(2^(i/S) * 2^(bits-1)) for i < S, base[S] = 2^bits,
    slope[i] = base[i+1] - base[i].
    """
    if segments < 1 or segments & (segments - 1):
        raise ValueError(f"exp2_table: segments = {segments} is not a power of two")
    i = np.arange(segments, dtype=np.float64)
    base = np.empty(segments + 1, dtype=np.int64)
    base[:segments] = np.rint(np.exp2(i / segments) * float(1 << (bits - 1))).astype(np.int64)
    base[segments] = 1 << bits
    return base, np.diff(base)


def exp_q(z, frac: int, *, segments: int, bits: int) -> np.ndarray:
    """e^z for fixed-point z (frac fraction bits, z > 0 taken as 0): int64 in Q1.(bits-1), in [0, 2^(bits-1)]."""
    log2s = segments.bit_length() - 1
    if frac < log2s:
        raise ValueError(f"exp_q: {frac} fraction bits, fewer than log2({segments}) segments")
    base, slope = exp2_table(segments, bits)
    z = np.minimum(np.asarray(z, dtype=np.int64), 0)
    y = (z * LOG2E_NUM) >> LOG2E_SHIFT
    u = y >> frac
    v = y - (u << frac)
    seg_shift = frac - log2s
    seg = v >> seg_shift
    dv = v - (seg << seg_shift)
    p = base[seg] + ((slope[seg] * dv) >> seg_shift)
    return rshift_round(p, -u)


def softplus_q(s, frac: int, *, segments: int, bits: int) -> np.ndarray:
    """ln(1 + e^s) for fixed-point s (frac fraction bits): e^s for s <= 0, s + e^-s for s > 0.

    Result with frac fraction bits, saturated to [0, 2^bits - 1]; needs frac <= bits - 1.
    """
    if frac > bits - 1:
        raise ValueError(f"softplus_q: {frac} fraction bits, more than {bits - 1}")
    s = np.asarray(s, dtype=np.int64)
    e = rshift_round(exp_q(-np.abs(s), frac, segments=segments, bits=bits), bits - 1 - frac)
    return np.clip(np.where(s > 0, s + e, e), 0, (1 << bits) - 1)


# ---------------------------------------------------------------------------
# SSM: the selective scan in power-of-two fixed point.
# ---------------------------------------------------------------------------
def ssm_scan(x, B, C, dt_raw, A, D, dt_bias, state, *, hpg: int, dt_frac: int, a_frac: int, dbx_shift: int,
             y_shift: int, d_shift: int, segments: int, bits: int, state_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(y [t, h, p] int32, final state [h, p, n] int32).

    x [t, h, p], B and C [t, groups, n], dt_raw [t, h] (int16); A, D, dt_bias [h]
    (int32); state [h, p, n] int32, saturated to `state_bits` (the target's
    ssm_state_bits) at every update.  Head i uses B/C group i // hpg.
    """
    x = np.asarray(x, dtype=np.int64)
    t, h, p = x.shape
    group = np.arange(h) // hpg
    Bh = np.asarray(B, dtype=np.int64)[:, group, :]  # [t, h, n]
    Ch = np.asarray(C, dtype=np.int64)[:, group, :]
    A = np.asarray(A, dtype=np.int64)
    s = np.asarray(dt_raw, dtype=np.int64) + np.asarray(dt_bias, dtype=np.int64)
    dt = softplus_q(s, dt_frac, segments=segments, bits=bits)  # [t, h], dt_frac fraction bits
    z = saturate(rshift_round(dt * A, a_frac), "i32")
    dA = exp_q(z, dt_frac, segments=segments, bits=bits)  # [t, h], Q1.(bits-1)
    dtx = dt[:, :, None] * x  # [t, h, p]
    dx = rshift_round(np.asarray(D, dtype=np.int64)[:, None] * x, d_shift)
    st = np.array(state, dtype=np.int64)  # a copy, updated in place
    inject = np.empty_like(st)
    lo, hi = -(1 << (state_bits - 1)), (1 << (state_bits - 1)) - 1
    y = np.empty((t, h, p), dtype=np.int32)
    for i in range(t):  # the recurrence: a loop over tokens, vectorized over heads, headdim and state
        np.multiply(st, dA[i][:, None, None], out=st)
        _rshift_round_inplace(st, bits - 1)  # decayed state
        np.multiply(dtx[i][:, :, None], Bh[i][:, None, :], out=inject)
        _rshift_round_inplace(inject, dbx_shift)
        st += inject
        np.minimum(st, hi, out=st)
        np.maximum(st, lo, out=st)
        cs = np.matmul(st, Ch[i][:, :, None])[..., 0]  # sum over k, exact: |sum| < 2^46 * n < 2^62
        y[i] = saturate(rshift_round(cs, y_shift) + dx[i], "i32")
    return y, st.astype(np.int32)


# ---------------------------------------------------------------------------
# VEC's exp and log1p: binary32 operations and fixed tables only (docs/NUMERICS.md §6).
# ---------------------------------------------------------------------------
# e^-a (a >= 0) = 2^y, y = -a * log2(e): y * 32 = n + r (n = rint, |r| <= 1/2), 2^y = 2^u * 2^(k/32) * 2^(r/32)
# with n = 32u + k, 2^(r/32) by the second-order Taylor polynomial 1 + r (E1 + r E2).
VEC_EXP_SEGMENTS = 32
VEC_LOG2E = np.uint32(0x3FB8AA3B).view(np.float32)  # binary32(log2 e) = 1.44269502
VEC_EXP_Y_MIN = np.float32(-160.0)  # y is clamped here: 2^-160 underflows to 0 whatever the table gives
VEC_EXP_E1 = np.float32(np.log(2.0) / 32)  # 0x3CB17218
VEC_EXP_E2 = np.float32((np.log(2.0) / 32) ** 2 / 2)  # 0x3975FDF0
# log1p(q), 0 <= q <= 1: j = min(floor(32 q), 31), r = (q - j/32) * R[j],
# log1p(q) = L[j] + r (1 + r (-1/2 + r (1/3 - r/4))).
VEC_LOG_SEGMENTS = 32
VEC_LOG_C3 = np.float32(1.0 / 3.0)  # 0x3EAAAAAB
# silu and softplus of a NaN: the NaN with its quiet bit set (§6 NaN bits)
_QUIET_BIT = np.uint32(0x00400000)


def _binary32_table(values: np.ndarray) -> np.ndarray:
    t = values.astype(np.float32)
    t.setflags(write=False)
    return t


VEC_EXP_TABLE = _binary32_table(np.exp2(np.arange(VEC_EXP_SEGMENTS) / VEC_EXP_SEGMENTS))  # 2^(k/32)
VEC_LOG_TABLE = _binary32_table(np.log1p(np.arange(VEC_LOG_SEGMENTS) / VEC_LOG_SEGMENTS))  # log1p(j/32)
VEC_RECIP_TABLE = _binary32_table(1.0 / (1.0 + np.arange(VEC_LOG_SEGMENTS) / VEC_LOG_SEGMENTS))  # 1/(1 + j/32)


def vec_exp_neg(a) -> np.ndarray:
    """e^-a for binary32 a >= 0 (+inf included; not NaN), in binary32 steps (docs/NUMERICS.md §6)."""
    a = np.asarray(a, dtype=np.float32)
    with np.errstate(all="ignore"):
        y = np.maximum(-a * VEC_LOG2E, VEC_EXP_Y_MIN)  # one rounding; -inf -> -160
        w = y * np.float32(VEC_EXP_SEGMENTS)  # exact
        n = np.rint(w)  # nearest integer, ties to even (exact)
        r = w - n  # exact, |r| <= 1/2
        ni = n.astype(np.int32)
        u = ni >> np.int32(5)  # floor(n / 32)
        k = ni & np.int32(VEC_EXP_SEGMENTS - 1)
        p = np.float32(1.0) + r * (VEC_EXP_E1 + r * VEC_EXP_E2)
        return np.ldexp(VEC_EXP_TABLE[k] * p, u).astype(np.float32)


def vec_log1p(q) -> np.ndarray:
    """log1p(q) for binary32 0 <= q <= 1, in binary32 steps (docs/NUMERICS.md §6)."""
    q = np.asarray(q, dtype=np.float32)
    j = np.minimum(np.floor(q * np.float32(VEC_LOG_SEGMENTS)), np.float32(VEC_LOG_SEGMENTS - 1)).astype(np.int32)
    r = (q - j.astype(np.float32) / np.float32(VEC_LOG_SEGMENTS)) * VEC_RECIP_TABLE[j]
    p = r * (np.float32(1.0) + r * (np.float32(-0.5) + r * (VEC_LOG_C3 + r * np.float32(-0.25))))
    return VEC_LOG_TABLE[j] + p


def _quiet_nan_where(x: np.ndarray, result: np.ndarray) -> np.ndarray:
    nan = np.isnan(x)
    if not nan.any():
        return result
    return np.where(nan, (x.view(np.uint32) | _QUIET_BIT).view(np.float32), result)


def silu(x) -> np.ndarray:
    """x / (1 + e^-x) for x >= 0, x e^x / (1 + e^x) for x < 0, e^-|x| by vec_exp_neg (binary32 steps, §6)."""
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(all="ignore"):
        e = vec_exp_neg(np.where(np.isnan(x), np.float32(0), np.abs(x)))
        num = np.where(x < 0, x * e, x)
        y = num / (np.float32(1.0) + e)
        y = np.where(x == -np.inf, np.float32(-0.0), y)
    return _quiet_nan_where(x, y.astype(np.float32))


def softplus(x) -> np.ndarray:
    """x for x > 20, else max(x, 0) + log1p(e^-|x|) (binary32 steps, §6)."""
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(all="ignore"):
        g = vec_log1p(vec_exp_neg(np.where(np.isnan(x), np.float32(0), np.abs(x))))
        y = np.where(x > SOFTPLUS_THRESHOLD, x, np.where(x > 0, x, np.float32(0)) + g)
    return _quiet_nan_where(x, y.astype(np.float32))


# ---------------------------------------------------------------------------
# VEC: the floating-point group (IEEE binary32, every step rounded to binary32).
# ---------------------------------------------------------------------------
def dequant(a, exp: int) -> np.ndarray:
    """An operand as binary32: integers as float32(a) * 2^exp (np.ldexp), float32 as is."""
    a = np.asarray(a)
    if a.dtype.kind == "f" or exp == 0:  # (ldexp by 0 is the identity: skip it and its errstate)
        return a.astype(np.float32)
    with np.errstate(all="ignore"):  # IEEE: overflow gives +-inf, tiny values round
        return np.ldexp(a.astype(np.float32), np.int32(exp)).astype(np.float32)


def rmsnorm(x, group: int, eps: float) -> np.ndarray:
    """Per row and group of `group` columns: x * (1 / sqrt(mean(x^2) + eps)), all in binary32.

    The sum of squares is accumulated left to right in binary32 (np.cumsum order).
    """
    x = np.asarray(x, dtype=np.float32)
    rows, cols = x.shape
    g = x.reshape(rows, cols // group, group)
    ss = np.cumsum(g * g, axis=-1, dtype=np.float32)[..., -1]
    mean = ss / np.float32(group)
    r = np.float32(1.0) / np.sqrt(mean + np.float32(eps))
    return (g * r[..., None]).reshape(rows, cols)


# The VEC micro-ops that read b (docs/NUMERICS.md §6), listed once: the simulator's operand checks and
# the mamba_quant dialect's verifier read it (tests/test_isa_dtypes.py holds the instruction table's text to it).
MICRO_OPS_WITH_B = ("add", "mul", "gate")


def vec_chain(x, ops: Sequence[str], b=None, *, group: int = 1, eps: float = 0.0) -> np.ndarray:
    """Apply the micro-ops in order ("none" skips) to binary32 x; b broadcasts against x.

    IEEE binary32 without traps or warnings: overflow gives +-inf, an invalid
    operation (inf - inf, 0 * inf) NaN, and NaN propagates.
    """
    x = np.asarray(x, dtype=np.float32)
    if all(op == "none" for op in ops):  # nothing to compute (and no errstate to enter)
        return x
    with np.errstate(all="ignore"):
        return _apply_micro_ops(x, ops, b, group, eps)


def _apply_micro_ops(x: np.ndarray, ops: Sequence[str], b, group: int, eps: float) -> np.ndarray:
    for op in ops:
        if op == "none":
            continue
        if op == "add":
            x = x + b
        elif op == "mul":
            x = x * b
        elif op == "silu":
            x = silu(x)
        elif op == "gate":
            x = x * silu(b)
        elif op == "rmsnorm":
            x = rmsnorm(x, group, eps)
        elif op == "softplus":
            x = softplus(x)
        else:
            raise ValueError(f"vec_chain: unknown micro-op {op!r}")
        x = np.asarray(x, dtype=np.float32)
    return x


def vec_output(x, out_dtype: str, out_scale: float) -> np.ndarray:
    """float32 as is; an integer type: sat(rint(float32(x * out_scale)))."""
    x = np.asarray(x, dtype=np.float32)
    if out_dtype == "f32":
        return x
    if out_scale == 1.0:  # x * 1 is x exactly: no multiply, no overflow (quantize itself raises no FP warnings)
        return quantize(x, out_dtype)
    with np.errstate(all="ignore"):  # an overflow to +-inf saturates, NaN quantizes to 0
        return quantize(x * np.float32(out_scale), out_dtype)


def argmax(a) -> np.ndarray:
    """Per row, the index of the first maximum (np.argmax: a NaN counts as the maximum), int32."""
    return np.argmax(np.asarray(a), axis=1).astype(np.int32)


# ---------------------------------------------------------------------------
# The approximation report: python -m fastmamba.isa.numerics
# ---------------------------------------------------------------------------
def approximation_errors(frac: int = 12, segments: int = 8, bits: int = 16, points: int = 200_001) -> dict:
    """Max abs / rel errors of exp_q and softplus_q against the real functions (float64), on a grid."""
    one = float(1 << (bits - 1))
    report = {}
    for lo, hi in ((-16.0, 0.0), (-4.0, 0.0), (-1.0, 0.0)):
        xs = np.linspace(lo, hi, points)
        z = np.rint(xs * (1 << frac)).astype(np.int64)
        xq = z / float(1 << frac)
        got = exp_q(z, frac, segments=segments, bits=bits) / one
        ref = np.exp(xq)
        report[f"exp_q [{lo:g}, {hi:g}]"] = (float(np.max(np.abs(got - ref))), float(np.max(np.abs(got - ref) / ref)))
    xs = np.linspace(-8.0, 8.0, points)
    s = np.rint(xs * (1 << frac)).astype(np.int64)
    sq = s / float(1 << frac)
    got = softplus_q(s, frac, segments=segments, bits=bits) / float(1 << frac)
    ref = np.log1p(np.exp(sq))
    report["softplus_q [-8, 8]"] = (float(np.max(np.abs(got - ref))), float(np.max(np.abs(got - ref) / ref)))
    return report


VEC_ERROR_RANGES = {"silu": ((-20.0, 20.0), (-87.0, 0.0), (0.0, 88.0)),
                    "softplus": ((-20.0, 20.0), (-87.0, 0.0), (0.0, 30.0))}


def vec_approximation_errors(points: int = 400_001) -> dict:
    """Max abs / rel errors of VEC's silu and softplus against float64 np.exp / np.log1p, on binary32 grids."""
    report = {}
    for name, fn in (("silu", silu), ("softplus", softplus)):
        for lo, hi in VEC_ERROR_RANGES[name]:
            x = np.linspace(lo, hi, points).astype(np.float32)
            x = x[x != 0]
            x64 = x.astype(np.float64)
            ref = x64 / (1.0 + np.exp(-x64)) if name == "silu" else np.where(x64 > 20, x64, np.log1p(np.exp(x64)))
            err = np.abs(fn(x).astype(np.float64) - ref)
            report[f"{name} [{lo:g}, {hi:g}]"] = (float(err.max()), float((err / np.abs(ref)).max()))
    return report


def _main() -> None:
    from fastmamba.isa.target import load_target

    target = load_target("vc709")
    segments, bits = target.nla_segments, target.nla_bits
    base, slope = exp2_table(segments, bits)
    print(f"exp2 table (vc709: {segments} segments, Q1.{bits - 1}): base = {base.tolist()}, slope = {slope.tolist()}")
    for frac in (8, 12):
        print(f"fraction bits {frac}:")
        for name, (abs_err, rel_err) in approximation_errors(frac, segments, bits).items():
            print(f"  {name:22s} max abs {abs_err:.3e}  max rel {rel_err:.3e}")
    print(f"VEC (binary32 steps, {VEC_EXP_SEGMENTS}-entry 2^(k/32) and {VEC_LOG_SEGMENTS}-entry log1p tables)"
          " against float64 np.exp / np.log1p:")
    for name, (abs_err, rel_err) in vec_approximation_errors().items():
        print(f"  {name:22s} max abs {abs_err:.3e}  max rel {rel_err:.3e}")


if __name__ == "__main__":
    _main()
