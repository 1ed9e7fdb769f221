"""Offline weight transformations: what the weight store holds after the quantization passes.

Place in the flow: the semantics of mamba_quant's weight expressions (fill,
scale_columns, rotate_columns, quantize_weight), shared by the interpreter, the
golden model and the evaluation schemes.  Computed in float64, stored as float32
(int8 for quantized weights).
"""

from __future__ import annotations

import numpy as np

from fastmamba.compiler.quant.hadamard import rotate_blocks

__all__ = ["scale_columns", "rotate_columns", "quantize_weight"]


def scale_columns(w: np.ndarray, s: np.ndarray) -> np.ndarray:
    """w * s[None, :]: an RMSNorm weight folded into the following linear layer."""
    w, s = np.asarray(w), np.asarray(s)
    if w.dtype == s.dtype == np.float32:  # the same bits: the float64 product of two float32 is exact, so rounding
        return w * s[None, :]  # it to float32 is the float32 product's one correct rounding
    return (np.asarray(w, np.float64) * np.asarray(s, np.float64)[None, :]).astype(np.float32)


def rotate_columns(w: np.ndarray, block: int) -> np.ndarray:
    """w @ blockdiag(H_b / sqrt(b)): the offline half of a Hadamard rotation (x R)(W R)^T = x W^T."""
    w = np.asarray(w)
    if w.dtype != np.float32:  # (rotate_blocks takes float32 to float64 itself)
        w = w.astype(np.float64)
    return rotate_blocks(w, block).astype(np.float32, copy=False)


def quantize_weight(w: np.ndarray, granularity: str = "channel") -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 round to nearest (ties to even): (wq int8 [M, K], scale f32 [M]), w ~ wq * scale[:, None].

    The scale is amax / 127 per row ('channel') or of the whole tensor ('tensor'); an all-zero row has scale 1.
    Rows are rounded QUANT_CHUNK elements at a time: the float64 quotients of a few rows, not of the whole weight.
    """
    w = np.asarray(w)
    if w.dtype != np.float32:
        w = w.astype(np.float64)
    # |w| and its maxima are exact in w's own type, as max(max w, -min w): no |w| copy, no float64 copy
    if granularity == "channel":
        amax = np.maximum(w.max(axis=1), -w.min(axis=1)).astype(np.float64)
    elif granularity == "tensor":
        amax = np.full(w.shape[0], np.float64(max(w.max(), -w.min())))
    else:
        raise ValueError(f"granularity must be 'channel' or 'tensor', got {granularity!r}")
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    divisor = scale.astype(np.float64)[:, None]
    q = np.empty(w.shape, np.int8)
    step = max(1, QUANT_CHUNK // max(1, w.shape[1]))
    for r in range(0, w.shape[0], step):
        part = np.divide(w[r:r + step], divisor[r:r + step], dtype=np.float64)  # in float64, as w64 / scale
        np.clip(np.rint(part, out=part), -127, 127, out=part)
        q[r:r + step] = part
    return q, scale


QUANT_CHUNK = 1 << 15  # elements rounded at a time (their float64 quotients stay in the cache)
