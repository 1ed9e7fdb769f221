"""The accelerator's arithmetic at tensor level, written from docs/NUMERICS.md alone.

Place in the flow: the integer semantics used by the golden quantized model
(compiler/quant/golden.py) and by the mamba_quant interpreter.  It imports
neither isa.numerics nor the simulator (DESIGN §4: the golden model is an
independent reading of the contract); tests/test_quant_fixed.py checks it
against the doc's worked examples and against isa.numerics.

Integers are int64 numpy arrays (every intermediate of the doc stays below 2^62);
integer products of tensors are computed in float64 where every partial sum is an
integer below 2^53, which is exact.
"""

from __future__ import annotations

import math

import numpy as np

from compiler.quant.hadamard import sylvester

__all__ = [
    "INT_RANGES", "rshift_round", "saturate", "quantize_float", "exp2_table", "exp_q", "softplus_q",
    "lin_f32", "requant_params", "conv_q", "ssm_scan_q", "dequant", "silu_f32", "softplus_f32", "rmsnorm_f32",
]

INT_RANGES = {"i8": (-(1 << 7), (1 << 7) - 1), "i16": (-(1 << 15), (1 << 15) - 1), "i32": (-(1 << 31), (1 << 31) - 1)}


# --- §1 rounding, saturation, quantization ----------------------------------------------------------------------------

def rshift_round(x, s) -> np.ndarray:
    """Divide by 2^s rounding to nearest, ties toward +inf; s >= 0 (scalar or array); s >= 63 gives 0."""
    x = np.asarray(x, np.int64)
    s = np.asarray(s, np.int64)
    if s.ndim == 0:
        s_ = int(s)
        if s_ == 0:
            return x.copy()
        if s_ >= 63:
            return np.zeros_like(x)
        return (x + (np.int64(1) << np.int64(s_ - 1))) >> np.int64(s_)
    s_c = np.minimum(s, 62)
    half = np.where(s_c > 0, np.int64(1) << np.maximum(s_c - 1, 0), 0)
    out = (x + half) >> s_c
    return np.where(s >= 63, 0, out)


def saturate(x, dtype: str) -> np.ndarray:
    lo, hi = INT_RANGES[dtype]
    return np.clip(np.asarray(x, np.int64), lo, hi)


def quantize_float(x, dtype: str) -> np.ndarray:
    """Round to nearest, ties to even, in x's own precision, then saturate (+-inf saturate)."""
    x = np.asarray(x)
    lo, hi = INT_RANGES[dtype]
    return np.clip(np.rint(x), lo, hi).astype(np.int64)


# --- §4 NLA: exp and softplus ---------------------------------------------------------------------------------------

def exp2_table(segments: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(base [S+1], slope [S]) of the first-order 2^v table in Q1.(bits-1)."""
    one = 1 << (bits - 1)
    base = [int(np.rint(2.0 ** (i / segments) * one)) for i in range(segments)] + [1 << bits]
    base_a = np.array(base, np.int64)
    return base_a, np.diff(base_a)


def exp_q(z, frac: int, *, segments: int, bits: int) -> np.ndarray:
    """e^z for integer z with `frac` fraction bits (z > 0 taken as 0), in Q1.(bits-1)."""
    lg = segments.bit_length() - 1
    base, slope = exp2_table(segments, bits)
    z = np.minimum(np.asarray(z, np.int64), 0)
    y = (z * 23) >> 4
    u = y >> frac
    v = y - (u << frac)
    seg = v >> (frac - lg)
    dv = v - (seg << (frac - lg))
    p = base[seg] + ((slope[seg] * dv) >> (frac - lg))
    return rshift_round(p, -u)


def softplus_q(s, frac: int, *, segments: int, bits: int) -> np.ndarray:
    """ln(1 + e^s) for integer s with `frac` fraction bits, result with `frac` fraction bits."""
    s = np.asarray(s, np.int64)
    e = rshift_round(exp_q(-np.abs(s), frac, segments=segments, bits=bits), bits - 1 - frac)
    return np.clip(np.where(s > 0, s + e, e), 0, (1 << bits) - 1)


# --- §2 LIN ------------------------------------------------------------------------------------------------------------

def requant_params(ratio: float, qmul_bits: int = 16, max_shift: int = 63) -> tuple[int, int]:
    """(qmul, qshift) with qmul / 2^qshift closest to `ratio` > 0, qmul < 2^qmul_bits, qshift as large as fits."""
    if not ratio > 0 or not math.isfinite(ratio):
        raise ValueError(f"requantization ratio must be positive and finite, got {ratio}")
    limit = (1 << qmul_bits) - 1
    shift = max_shift
    while shift > 0 and round(ratio * 2.0 ** shift) > limit:
        shift -= 1
    return max(1, min(limit, round(ratio * 2.0 ** shift))), shift


def lin_f32(a: np.ndarray, wgt: np.ndarray, scale: np.ndarray, *, hlog2: int, qmul: int, qshift: int) -> np.ndarray:
    """LIN with acc = 0, out = f32: Hadamard (exact), requantize to int8, int8 matmul, f32(total) * scale[n]."""
    a = np.asarray(a, np.int64)
    b = 1 << hlog2
    if b > 1:
        m, k = a.shape
        h = sylvester(b).astype(np.float64)
        a = np.rint((a.astype(np.float64).reshape(m, k // b, b) @ h).reshape(m, k)).astype(np.int64)  # |a'| < 2^24: exact
    q = saturate(rshift_round(a * qmul, qshift), "i8")
    total = saturate(np.rint(q.astype(np.float64) @ np.asarray(wgt, np.float64).T).astype(np.int64), "i32")
    return (total.astype(np.float32) * np.asarray(scale, np.float32)).astype(np.float32)


# --- §3 CONV -----------------------------------------------------------------------------------------------------------

def conv_q(src: np.ndarray, state: np.ndarray, wgt: np.ndarray, bias: np.ndarray, shift: int, out_dtype: str):
    """Causal depthwise conv: src [t, c] i16, state [kw-1, c], wgt [kw, c], bias [c] -> (dst [t, c], new state)."""
    src = np.asarray(src, np.int64)
    xx = np.concatenate([np.asarray(state, np.int64), src], axis=0)
    kw = wgt.shape[0]
    t = src.shape[0]
    acc = np.zeros_like(src) + np.asarray(bias, np.int64)
    for j in range(kw):
        acc = acc + np.asarray(wgt[j], np.int64) * xx[j:j + t]
    return saturate(rshift_round(acc, shift), out_dtype), xx[t:t + kw - 1].copy()


# --- §5 SSM ------------------------------------------------------------------------------------------------------------

def ssm_scan_q(x, B, C, dt_raw, A, D, dt_bias, state, *, hpg: int, dt_frac: int, a_frac: int, dbx_shift: int,
               y_shift: int, d_shift: int, segments: int, bits: int, state_bits: int = 32, block: int = 32):
    """The integer selective scan.  x [t, h, p], B/C [t, G, n], dt_raw [t, h], A/D/dt_bias [h], state [h, p, n].

    Returns (y [t, h, p] int64 within i32, state' [h, p, n] within `state_bits`).  The recurrence runs token by token; the
    products that do not depend on the state are formed per block of tokens.
    """
    x = np.asarray(x, np.int64)
    t_len, h, p = x.shape
    g_of = np.arange(h) // hpg
    Bh = np.asarray(B, np.int64)[:, g_of]  # [t, h, n]
    Ch = np.asarray(C, np.int64)[:, g_of]
    s = np.asarray(dt_raw, np.int64) + np.asarray(dt_bias, np.int64)
    dt = softplus_q(s, dt_frac, segments=segments, bits=bits)  # [t, h]
    z = saturate(rshift_round(dt * np.asarray(A, np.int64), a_frac), "i32")
    dA = exp_q(z, dt_frac, segments=segments, bits=bits)  # [t, h]
    dx = rshift_round(np.asarray(D, np.int64)[:, None] * x, d_shift)  # [t, h, p]
    state = np.asarray(state, np.int64).copy()
    y = np.empty((t_len, h, p), np.int64)
    lo, hi = -(1 << (state_bits - 1)), (1 << (state_bits - 1)) - 1  # the state saturates to the target's width
    one_shift = np.int64(bits - 1)
    half = np.int64(1) << np.int64(bits - 2)
    for start in range(0, t_len, block):
        stop = min(t_len, start + block)
        inc = rshift_round((dt[start:stop, :, None] * x[start:stop])[..., None] * Bh[start:stop, :, None, :], dbx_shift)
        states = np.empty((stop - start, h, p, state.shape[-1]), np.int64)
        dab = dA[start:stop, :, None, None]
        for i in range(stop - start):
            state = ((dab[i] * state + half) >> one_shift) + inc[i]
            np.clip(state, lo, hi, out=state)
            states[i] = state
        acc = np.einsum("thpn,thn->thp", states, Ch[start:stop])
        y[start:stop] = saturate(rshift_round(acc, y_shift) + dx[start:stop], "i32")
    return y, state


# --- §6 VEC --------------------------------------------------------------------------------------------------------------

def dequant(a, exp: int) -> np.ndarray:
    """f32(a) * 2^exp (an f32 operand unchanged)."""
    a = np.asarray(a)
    if a.dtype == np.float32:
        return a
    return np.ldexp(a.astype(np.float32), np.int32(exp)).astype(np.float32)


def silu_f32(x: np.ndarray) -> np.ndarray:
    x64 = np.asarray(x, np.float32).astype(np.float64)
    return (x64 / (1.0 + np.exp(-x64))).astype(np.float32)


def softplus_f32(x: np.ndarray) -> np.ndarray:
    x32 = np.asarray(x, np.float32)
    x64 = x32.astype(np.float64)
    with np.errstate(over="ignore"):
        sp = np.log1p(np.exp(x64)).astype(np.float32)
    return np.where(x32 > 20, x32, sp)


def rmsnorm_f32(x: np.ndarray, group: int, eps: float) -> np.ndarray:
    """Per row and group: ss by binary32 cumsum, mean = ss / group, r = 1/sqrt(mean + eps), x * r (all binary32)."""
    x = np.asarray(x, np.float32)
    rows, cols = x.shape
    g = x.reshape(rows, cols // group, group)
    ss = np.cumsum(g * g, axis=-1, dtype=np.float32)[..., -1:]
    mean = ss / np.float32(group)
    r = np.float32(1.0) / np.sqrt(mean + np.float32(eps))
    return (g * r).reshape(rows, cols)
