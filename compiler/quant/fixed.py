"""The accelerator's arithmetic at tensor level, written from docs/NUMERICS.md alone.

Place in the flow: the integer semantics used by the golden quantized model
(compiler/quant/golden.py) and by the mamba_quant interpreter.  It imports
neither isa.numerics nor the simulator (docs/ARCHITECTURE.md §4: the golden model is an
independent reading of the contract); tests/test_quant_fixed.py checks it
against the doc's worked examples and against isa.numerics.

Integers are int64 numpy arrays (every intermediate of the doc stays below 2^62);
integer products of tensors are computed in float64 where every partial sum is an
integer below 2^53, which is exact.
"""

from __future__ import annotations

import math

import numpy as np

from fastmamba.compiler.quant.hadamard import sylvester

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
    """Round to nearest, ties to even, in x's own precision, then saturate (+-inf saturate, NaN gives 0)."""
    x = np.asarray(x)
    lo, hi = INT_RANGES[dtype]
    r = np.clip(np.rint(x), lo, hi)
    return np.where(np.isnan(r), 0, r).astype(np.int64)


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


# --- §2 LIN -----------------------------------------------------------------------------------------------------------

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
    """LIN with acc = 0, out = f32: Hadamard (exact), requantize to int8, int8 matmul, f32(total) * scale[n].

    The Hadamard sums (|a'| <= 2^15 * b <= 2^24 for b <= 512) and the int8 products (|total| < 2^14 * k) are
    integers that binary32 holds exactly while below 2^24, so they run as float32 matmuls (torch) when
    k <= 1024, and in float64 (exact below 2^53) otherwise.
    """
    import torch

    a = np.asarray(a, np.int64)
    m, k = a.shape
    b = 1 << hlog2
    exact32 = b <= 512 and k <= 1024
    ft = torch.float32 if exact32 else torch.float64
    if b > 1:
        h = torch.from_numpy(sylvester(b)).to(ft)
        a = (torch.from_numpy(a).to(ft).reshape(m, k // b, b) @ h).reshape(m, k).to(torch.int64).numpy()
    q = saturate(rshift_round(a * qmul, qshift), "i8")
    total = torch.from_numpy(q).to(ft) @ torch.from_numpy(np.asarray(wgt)).to(ft).T
    total = saturate(total.to(torch.int64).numpy(), "i32")
    return (total.astype(np.float32) * np.asarray(scale, np.float32)).astype(np.float32)


def requant_params_rows(ratio: np.ndarray, qmul_bits: int = 16, max_shift: int = 63) -> tuple[np.ndarray, np.ndarray]:
    """requant_params for each element of `ratio` (> 0), vectorized: the same (qmul, qshift) choices."""
    ratio = np.asarray(ratio, np.float64)
    limit = (1 << qmul_bits) - 1
    shift = np.clip(np.floor(np.log2(limit / ratio)), 0, max_shift).astype(np.int64) + 1
    qmul = np.rint(ratio * np.exp2(shift))
    for _ in range(3):  # step down while the rounded multiplier does not fit (at most twice past the estimate)
        over = (qmul > limit) & (shift > 0)
        shift = np.where(over, shift - 1, shift)
        qmul = np.rint(ratio * np.exp2(shift))
    return np.clip(qmul, 1, limit).astype(np.int64), shift


def lin_dynamic_f32(a: np.ndarray, wgt: np.ndarray, wscale: np.ndarray, *, hlog2: int, in_scale: float) -> np.ndarray:
    """LIN with a per-token (row) requantization chosen at run time: each row's largest |a'| maps to 127.

    Not one LIN operation of the ISA (its qmul and qshift are per operation): a program would issue one
    LIN per row.  q[m] = sat_i8(rshift_round(a'[m] * qmul[m], qshift[m])), out = f32(total) * f32(s_m * wscale)
    with s_m = in_scale * 2^qshift[m] / qmul[m] (in_scale: the real value of one step of a').
    """
    import torch

    a = np.asarray(a, np.int64)
    m, k = a.shape
    b = 1 << hlog2
    if b > 1:
        h = torch.from_numpy(sylvester(b)).to(torch.float64)
        a = (torch.from_numpy(a).to(torch.float64).reshape(m, k // b, b) @ h).reshape(m, k).to(torch.int64).numpy()
    amax = np.abs(a).max(axis=1)
    qmul, qshift = requant_params_rows(np.where(amax > 0, 127.0 / np.maximum(amax, 1), 1.0))
    q = saturate(rshift_round(a * qmul[:, None], qshift[:, None]), "i8")
    ft = torch.float32 if k <= 1024 else torch.float64
    total = saturate((torch.from_numpy(q).to(ft) @ torch.from_numpy(np.asarray(wgt)).to(ft).T).to(torch.int64).numpy(),
                     "i32")
    row_scale = in_scale * np.exp2(qshift) / qmul
    scale = (row_scale[:, None] * np.asarray(wscale, np.float64)[None, :]).astype(np.float32)
    return (total.astype(np.float32) * scale).astype(np.float32)


# --- §3 CONV ----------------------------------------------------------------------------------------------------------

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


# --- §5 SSM -----------------------------------------------------------------------------------------------------------

def ssm_scan_q(x, B, C, dt_raw, A, D, dt_bias, state, *, hpg: int, dt_frac: int, a_frac: int, dbx_shift: int,
               y_shift: int, d_shift: int, segments: int, bits: int, state_bits: int = 32, nonlinear: str = "table",
               block: int = 32):
    """The integer selective scan.  x [t, h, p], B/C [t, G, n], dt_raw [t, h], A/D/dt_bias [h], state [h, p, n].

    Returns (y [t, h, p] int64 within i32, state' [h, p, n] within `state_bits`).  The recurrence runs token by
    token; the products that do not depend on the state are formed per block of tokens.  `nonlinear` = "exact" replaces
    the NLA's table (softplus_q, exp_q) by float64 softplus and exp rounded to the same fixed-point formats
    (an ablation of the approximation; the accelerator implements "table").
    """
    x = np.asarray(x, np.int64)
    t_len, h, p = x.shape
    g_of = np.arange(h) // hpg
    Bh = np.asarray(B, np.int64)[:, g_of]  # [t, h, n]
    Ch = np.asarray(C, np.int64)[:, g_of]
    s = np.asarray(dt_raw, np.int64) + np.asarray(dt_bias, np.int64)
    if nonlinear == "table":
        dt = softplus_q(s, dt_frac, segments=segments, bits=bits)  # [t, h]
    else:
        dt = np.clip(np.rint(np.logaddexp(0.0, s / 2.0 ** dt_frac) * 2.0 ** dt_frac), 0,
                     (1 << bits) - 1).astype(np.int64)
    z = saturate(rshift_round(dt * np.asarray(A, np.int64), a_frac), "i32")
    if nonlinear == "table":
        dA = exp_q(z, dt_frac, segments=segments, bits=bits)  # [t, h]
    else:
        dA = np.rint(np.exp(np.minimum(z, 0) / 2.0 ** dt_frac) * 2.0 ** (bits - 1)).astype(np.int64)
    dx = rshift_round(np.asarray(D, np.int64)[:, None] * x, d_shift)  # [t, h, p]
    return _scan(x, Bh, Ch, dt, dA, dx, np.asarray(state, np.int64), dbx_shift=dbx_shift, y_shift=y_shift,
                 one_shift=bits - 1, state_bits=state_bits, block=block)


def _scan(x, Bh, Ch, dt, dA, dx, state, *, dbx_shift: int, y_shift: int, one_shift: int, state_bits: int, block: int):
    """The recurrence in float64 (torch): every value is an integer below 2^53, so each step is exact.

    |dA * state| <= 2^15 * 2^31, |dt * x * B| < 2^46, and sum_k |C * state| <= n * 2^46 (checked below 2^53;
    otherwise the C . state sums run in int64).  rshift_round(v, s) = floor((v + 2^(s-1)) * 2^-s), exact.
    """
    import torch

    t_len, h, p = x.shape
    n = state.shape[-1]
    lo, hi = -(1 << (state_bits - 1)), (1 << (state_bits - 1)) - 1  # the state saturates to the target's width
    inject_max = int(np.abs(dt).max(initial=0)) * int(np.abs(x).max(initial=0)) * int(np.abs(Bh).max(initial=0))
    if (1 << one_shift) * (hi + 1) >= 1 << 53 or inject_max >= 1 << 53:  # wide NLA words: int64, slower
        return _scan_int64(x, Bh, Ch, dt, dA, dx, state, dbx_shift=dbx_shift, y_shift=y_shift, one_shift=one_shift,
                           lo=lo, hi=hi)
    c_exact = n * (int(np.abs(Ch).max(initial=0)) << (state_bits - 1)) < (1 << 53)
    f64 = torch.float64

    def rsr(v: torch.Tensor, s: int) -> torch.Tensor:  # in place
        return v if s == 0 else v.add_(2.0 ** (s - 1)).mul_(2.0 ** -s).floor_()

    st = torch.from_numpy(state).to(f64).clone()
    xt, Bt, Ct = (torch.from_numpy(v).to(f64) for v in (x, Bh, Ch))
    dtt, dAt = torch.from_numpy(dt).to(f64), torch.from_numpy(dA).to(f64)
    y = np.empty((t_len, h, p), np.int64)
    half_t = torch.tensor(2.0 ** (one_shift - 1), dtype=f64)
    inv = 2.0 ** -one_shift
    tmp = torch.empty_like(st)
    for start in range(0, t_len, block):
        stop = min(t_len, start + block)
        buf = rsr((dtt[start:stop, :, None] * xt[start:stop])[..., None] * Bt[start:stop, :, None, :], dbx_shift)
        dab = dAt[start:stop, :, None, None]
        prev = st
        for i in range(stop - start):  # buf[i] (the injection) <- the state after token start + i
            torch.addcmul(half_t, prev, dab[i], out=tmp)  # dA * state + 2^14, exact
            tmp.mul_(inv).floor_()  # >> 15 (a power-of-two scaling: exact)
            prev = buf[i].add_(tmp).clamp_(lo, hi)
        st = prev.clone()
        if c_exact:
            acc = torch.einsum("thpn,thn->thp", buf, Ct[start:stop]).to(torch.int64).numpy()
        else:
            acc = np.einsum("thpn,thn->thp", buf.to(torch.int64).numpy(), Ch[start:stop])
        y[start:stop] = saturate(rshift_round(acc, y_shift) + dx[start:stop], "i32")
    return y, st.to(torch.int64).numpy()


def _scan_int64(x, Bh, Ch, dt, dA, dx, state, *, dbx_shift, y_shift, one_shift, lo, hi):
    """The recurrence in int64, token by token (every product below 2^62)."""
    y = np.empty(x.shape, np.int64)
    st = state.copy()
    for i in range(x.shape[0]):
        inject = rshift_round((dt[i][:, None] * x[i])[:, :, None] * Bh[i][:, None, :], dbx_shift)
        st = np.clip(rshift_round(dA[i][:, None, None] * st, one_shift) + inject, lo, hi)
        y[i] = saturate(rshift_round((Ch[i][:, None, :] * st).sum(axis=-1), y_shift) + dx[i], "i32")
    return y, st


# --- §6 VEC -----------------------------------------------------------------------------------------------------------

def dequant(a, exp: int) -> np.ndarray:
    """f32(a) * 2^exp (an f32 operand unchanged)."""
    a = np.asarray(a)
    if a.dtype == np.float32:
        return a
    return np.ldexp(a.astype(np.float32), np.int32(exp)).astype(np.float32)


def _f32_hex(words: str) -> np.ndarray:
    """Binary32 constants from their bit patterns (the hex words of docs/NUMERICS.md §6)."""
    return np.array([int(w, 16) for w in words.split()], np.uint32).view(np.float32)


# §6's tables, copied from the document: 2^(k/32), log1p(j/32), 1/(1 + j/32) for k, j = 0..31.
EXP2_32 = _f32_hex("""
    3F800000 3F82CD87 3F85AAC3 3F88980F 3F8B95C2 3F8EA43A 3F91C3D3 3F94F4F0 3F9837F0 3F9B8D3A 3F9EF532 3FA27043
    3FA5FED7 3FA9A15B 3FAD583F 3FB123F6 3FB504F3 3FB8FBAF 3FBD08A4 3FC12C4D 3FC5672A 3FC9B9BE 3FCE248C 3FD2A81E
    3FD744FD 3FDBFBB8 3FE0CCDF 3FE5B907 3FEAC0C7 3FEFE4BA 3FF5257D 3FFA83B3""")
LOG1P_32 = _f32_hex("""
    00000000 3CFC14D8 3D785186 3DB78694 3DF1383B 3E14AA98 3E2FF984 3E4A92D5 3E647FBE 3E7DC8C3 3E8B3AE5 3E974716
    3EA30C5E 3EAE8DEE 3EB9CEC0 3EC4D19C 3ECF991F 3EDA27BC 3EE47FBE 3EEEA350 3EF8947B 3F012A95 3F05F397 3F0AA61F
    3F0F42FB 3F13CAF1 3F183EBA 3F1C9F07 3F20EC7F 3F2527C3 3F295169 3F2D6A02""")
RECIP_32 = _f32_hex("""
    3F800000 3F783E10 3F70F0F1 3F6A0EA1 3F638E39 3F5D67C9 3F579436 3F520D21 3F4CCCCD 3F47CE0C 3F430C31 3F3E82FA
    3F3A2E8C 3F360B61 3F321643 3F2E4C41 3F2AAAAB 3F272F05 3F23D70A 3F20A0A1 3F1D89D9 3F1A90E8 3F17B426 3F14F209
    3F124925 3F0FB824 3F0D3DCB 3F0AD8F3 3F088889 3F064B8A 3F042108 3F020821""")
LOG2E_F32, EXP_C1, EXP_C2, THIRD_F32 = _f32_hex("3FB8AA3B 3CB17218 3975FDF0 3EAAAAAB")


def exp_neg_f32(a: np.ndarray) -> np.ndarray:
    """e^-a for binary32 a in [0, +inf]: y = max(-a * log2e, -160); 32y = n + r; n = 32u + k;
    2^u * (2^(k/32) * (1 + r (c1 + r c2)))."""
    f = np.float32
    y = np.maximum(np.negative(a, dtype=f) * LOG2E_F32, f(-160))
    y32 = y * f(32)
    n = np.rint(y32)
    r = y32 - n
    k = np.mod(n, f(32)).astype(np.int64)
    u = np.floor(n / f(32)).astype(np.int32)  # n / 32 is exact, so its floor is u
    poly = f(1) + r * (EXP_C1 + r * EXP_C2)
    return np.ldexp(EXP2_32[k] * poly, u).astype(f)


def log1p_f32(q: np.ndarray) -> np.ndarray:
    """log1p(q) for binary32 q in [0, 1]: j = min(floor(32q), 31), r = (q - j/32) * R[j],
    L[j] + r (1 + r (-1/2 + r (1/3 + r (-1/4))))."""
    f = np.float32
    jf = np.minimum(np.floor(q * f(32)), f(31))
    j = jf.astype(np.int64)
    r = (q - jf * f(1 / 32)) * RECIP_32[j]
    s = THIRD_F32 + r * f(-0.25)
    s = f(-0.5) + r * s
    s = f(1) + r * s
    return LOG1P_32[j] + r * s


def _nan_quieted(x32: np.ndarray, y: np.ndarray) -> np.ndarray:
    """y, with x's NaNs where x is NaN (quiet bit 22 set, sign and payload kept)."""
    quiet = (x32.view(np.uint32) | np.uint32(1 << 22)).view(np.float32)
    return np.where(x32 != x32, quiet, y)


def silu_f32(x: np.ndarray) -> np.ndarray:
    """q = e^-|x|; x / (1 + q) for x >= 0, (x q) / (1 + q) for x < 0; silu(-inf) = -0."""
    x32 = np.asarray(x, np.float32)
    with np.errstate(all="ignore"):
        q = exp_neg_f32(np.where(x32 != x32, np.float32(0), np.abs(x32)))
        neg = x32 < 0
        y = np.where(neg, x32 * q, x32) / (np.float32(1) + q)
        y = np.where(np.isneginf(x32), np.float32(-0.0), y)
    return _nan_quieted(x32, y)


def softplus_f32(x: np.ndarray) -> np.ndarray:
    """x for x > 20, else max(x, +0) + log1p(e^-|x|)."""
    x32 = np.asarray(x, np.float32)
    with np.errstate(all="ignore"):
        tail = log1p_f32(exp_neg_f32(np.where(x32 != x32, np.float32(0), np.abs(x32))))
        y = np.where(x32 > 20, x32, np.maximum(x32, np.float32(0)) + tail)
    return _nan_quieted(x32, y.astype(np.float32))


def rmsnorm_f32(x: np.ndarray, group: int, eps: float) -> np.ndarray:
    """Per row and group: ss by binary32 cumsum, mean = ss / group, r = 1/sqrt(mean + eps), x * r (all binary32)."""
    x = np.asarray(x, np.float32)
    rows, cols = x.shape
    g = x.reshape(rows, cols // group, group)
    ss = np.cumsum(g * g, axis=-1, dtype=np.float32)[..., -1:]
    mean = ss / np.float32(group)
    r = np.float32(1.0) / np.sqrt(mean + np.float32(eps))
    return (g * r).reshape(rows, cols)


def vec(a, b=None, ops=(), *, a_exp: int = 0, b_exp: int = 0, group: int = 1, eps: float = 0.0, out_type: str = "f32",
        out_scale: float = 1.0) -> np.ndarray:
    """One VEC pass: dequantize, the micro-ops in order (each rounded to binary32), then the output conversion."""
    x = dequant(a, a_exp)
    bb = None if b is None else dequant(b, b_exp)
    for op in ops:
        if op == "add":
            x = (x + bb).astype(np.float32)
        elif op == "mul":
            x = (x * bb).astype(np.float32)
        elif op == "silu":
            x = silu_f32(x)
        elif op == "gate":
            x = (x * silu_f32(bb)).astype(np.float32)
        elif op == "rmsnorm":
            x = rmsnorm_f32(x, group, eps)
        elif op == "softplus":
            x = softplus_f32(x)
        else:
            raise ValueError(f"unknown VEC micro-op {op!r}")
    if out_type == "f32":
        return x
    return quantize_float((x * np.float32(out_scale)).astype(np.float32), out_type)


def softplus_approx_f32(x, segments: int = 8) -> np.ndarray:
    """The NLA's softplus in real arithmetic: e^x for x <= 0, x + e^-x for x > 0, with e^x = 2^(1.4375 x) and 2^v
    (0 <= v < 1) by the chords of `segments` equal segments.  (The fixed-point unit rounds on top of this.)"""
    x64 = np.asarray(x, np.float64)
    y = -np.abs(x64) * 1.4375
    u = np.floor(y)
    v = (y - u) * segments
    seg = np.minimum(np.floor(v), segments - 1)
    lo = 2.0 ** (seg / segments)
    e = np.ldexp(lo + (2.0 ** ((seg + 1) / segments) - lo) * (v - seg), u.astype(np.int64))
    return np.where(x64 > 0, x64 + e, e).astype(np.float32)
