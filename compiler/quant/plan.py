"""The quantization plan: every scale, format and shift of a quantized Mamba2, chosen from calibration ranges.

Place in the flow: computed by passes/assign_scales.py from the ranges the
calibrate pass records (and by the evaluation from tensor-level calibration), read by
the golden model (compiler/quant/golden.py).  One function per unit turns ranges into
parameters, so the IR and the golden model cannot disagree on a scale.

Ranges are per site (compiler.quant.sites) and quantity:
    <layer>.mixer.in_proj / out_proj: "x" (input), "xr" (input after the Hadamard rotation)
    <layer>.mixer.conv1d:             "x" (input), "y" (output, before SiLU)
    <layer>.mixer (the SSM):          "x", "B", "C", "dt_raw", "dt", "state" (over time), "y"
    lm_head (HEAD_SITE, tied or not):  "x", "xr" as a linear layer (its input: rmsnorm of the residual stream)
Linear layers: int8 weights (per channel or per tensor), int8 activations with one static
scale per tensor; the input reaches the LIN unit as i8 (no rotation) or i16 (rotated
online, then requantized by qmul / 2^qshift).  Conv and SSM: power-of-two fixed point with
16-bit inputs and the target's state width.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from fastmamba.compiler.quant.fixed import INT_RANGES, requant_params

__all__ = ["HEAD_SITE", "is_linear_site", "LinearQuant", "ConvQuant", "SSMQuant", "linear_quant", "conv_quant",
           "ssm_quant", "pow2_frac"]

HEAD_SITE = "lm_head"  # the vocabulary head's site, whatever its weight (tied to the embeddings or not)

I16_MAX = INT_RANGES["i16"][1]
I32_MAX = INT_RANGES["i32"][1]


@dataclass(frozen=True)
class LinearQuant:
    block: int  # Hadamard block (1: none)
    in_type: str  # the VEC output feeding LIN: "i8" (block 1) or "i16"
    out_scale: float  # that output's scale (binary32): a = quant(f32(x * out_scale))
    hlog2: int
    qmul: int
    qshift: int
    act_scale: float  # real value of one step of the requantized int8 activation
    granularity: str  # weights: "channel" or "tensor"
    dynamic: bool = False  # activations: per-token scales chosen at run time (then act_scale is unused)

    @property
    def in_scale(self) -> float:
        """The real value of one step of the rotated integer input a' = a @ H_b: (1/out_scale) / sqrt(b)."""
        return 1.0 / self.out_scale / math.sqrt(self.block)


@dataclass(frozen=True)
class ConvQuant:
    fx: int  # input (and state) fraction bits, i16
    fw: int  # weight fraction bits, i16
    shift: int  # accumulator (fx + fw) -> output
    fo: int  # output fraction bits, i16


@dataclass(frozen=True)
class SSMQuant:
    fx: int
    fb: int
    fc: int
    dt_frac: int
    a_frac: int
    fd: int
    fh: int
    fy: int

    @property
    def dbx_shift(self) -> int:
        return self.dt_frac + self.fx + self.fb - self.fh

    @property
    def y_shift(self) -> int:
        return self.fc + self.fh - self.fy

    @property
    def d_shift(self) -> int:
        return self.fd + self.fx - self.fy


def is_linear_site(site: str) -> bool:
    """Sites whose input a W8A8 linear layer quantizes (they get "xr" and the linear calibration method)."""
    return site.endswith(("in_proj", "out_proj")) or site == HEAD_SITE


def pow2_frac(amax: float, limit: int, lo: int = -30, hi: int = 30) -> int:
    """The most fraction bits f with amax * 2^f <= limit (clamped to [lo, hi])."""
    if not amax > 0 or not math.isfinite(amax):
        return hi
    return max(lo, min(hi, math.floor(math.log2(limit / amax))))


def linear_quant(ranges: Mapping[str, float], block: int, granularity: str = "channel",
                 dynamic: bool = False) -> LinearQuant:
    """Scales of one W8A8 linear layer from its input's range (and its rotated input's range).

    dynamic: the input reaches LIN as i16 and each token's row is requantized by its own largest value."""
    hlog2 = block.bit_length() - 1
    if dynamic:
        out_scale = float(np.float32(I16_MAX / max(ranges["x"], 1e-30)))
        return LinearQuant(block, "i16", out_scale, hlog2, 1, 0, 1.0, granularity, True)
    if block == 1:
        out_scale = float(np.float32(127.0 / max(ranges["x"], 1e-30)))
        return LinearQuant(1, "i8", out_scale, 0, 1, 0, 1.0 / out_scale, granularity)
    out_scale = float(np.float32(I16_MAX / max(ranges["x"], 1e-30)))
    s_in = 1.0 / out_scale
    s_q = max(ranges["xr"], 1e-30) / 127.0
    qmul, qshift = requant_params(s_in / (math.sqrt(block) * s_q), qmul_bits=16, max_shift=63)
    act_scale = s_in * 2.0 ** qshift / (math.sqrt(block) * qmul)
    return LinearQuant(block, "i16", out_scale, hlog2, qmul, qshift, act_scale, granularity)


def conv_quant(ranges: Mapping[str, float], weight_amax: float) -> ConvQuant:
    fx = pow2_frac(ranges["x"], I16_MAX)
    fw = pow2_frac(weight_amax, I16_MAX)
    fo = min(pow2_frac(ranges["y"], I16_MAX), fx + fw)
    return ConvQuant(fx, fw, fx + fw - fo, fo)


def ssm_quant(ranges: Mapping[str, float], a_amax: float, d_amax: float, *, nla_bits: int, nla_segments: int,
              state_bits: int) -> SSMQuant:
    """Fixed-point formats of the SSM (docs/NUMERICS.md §5), every shift >= 0, with a factor-2 headroom on state
    and y."""
    fx, fb, fc = (pow2_frac(ranges[k], I16_MAX) for k in ("x", "B", "C"))
    lg = nla_segments.bit_length() - 1
    dt_frac = min(pow2_frac(ranges["dt_raw"], I16_MAX), pow2_frac(ranges["dt"], (1 << nla_bits) - 1), nla_bits - 1)
    dt_frac = max(lg, dt_frac)
    a_frac = max(0, min(24, pow2_frac(a_amax, I32_MAX)))
    state_max = (1 << (state_bits - 1)) - 1
    fh = min(pow2_frac(2.0 * ranges["state"], state_max), dt_frac + fx + fb)
    fd = min(24, pow2_frac(d_amax, I32_MAX))
    fy = min(pow2_frac(2.0 * ranges["y"], I32_MAX), fc + fh, fd + fx)
    return SSMQuant(fx, fb, fc, dt_frac, a_frac, fd, fh, fy)
