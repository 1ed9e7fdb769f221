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
    return (np.asarray(w, np.float64) * np.asarray(s, np.float64)[None, :]).astype(np.float32)


def rotate_columns(w: np.ndarray, block: int) -> np.ndarray:
    """w @ blockdiag(H_b / sqrt(b)): the offline half of a Hadamard rotation (x R)(W R)^T = x W^T."""
    return rotate_blocks(np.asarray(w, np.float64), block).astype(np.float32)


def quantize_weight(w: np.ndarray, granularity: str = "channel") -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 round to nearest (ties to even): (wq int8 [M, K], scale f32 [M]), w ~ wq * scale[:, None].

    The scale is amax / 127 per row ('channel') or of the whole tensor ('tensor'); an all-zero row has scale 1.
    """
    w64 = np.asarray(w, np.float64)
    if granularity == "channel":
        amax = np.abs(w64).max(axis=1)
    elif granularity == "tensor":
        amax = np.full(w64.shape[0], np.abs(w64).max())
    else:
        raise ValueError(f"granularity must be 'channel' or 'tensor', got {granularity!r}")
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    wq = np.clip(np.rint(w64 / scale.astype(np.float64)[:, None]), -127, 127).astype(np.int8)
    return wq, scale
