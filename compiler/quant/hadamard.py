"""Block Hadamard rotations: the matrices, their block application, the block-size rule.

Place in the flow: used by passes/insert_hadamard.py (which rotates weights offline
and inserts online activation rotations), by the mamba_quant interpreter and by the
golden model.  In floating point the rotation is orthonormal, H_b / sqrt(b), so
x @ W^T = (x R)(W R)^T exactly in real arithmetic; the LIN unit applies the
unnormalized Sylvester matrix H_b (docs/NUMERICS.md §2) and the 1/sqrt(b) moves
into the requantization scale.
"""

from __future__ import annotations

import numpy as np

from fastmamba.isa.errors import InputError

__all__ = ["sylvester", "rotate_blocks", "check_block", "default_block"]


def sylvester(b: int) -> np.ndarray:
    """The unnormalized b x b Sylvester Hadamard matrix (entries +-1), b a power of two."""
    if b < 1 or b & (b - 1):
        raise InputError(f"Hadamard block must be a power of two, got {b}")
    h = np.ones((1, 1), np.int64)
    while h.shape[0] < b:
        h = np.block([[h, h], [h, -h]])
    return h


def rotate_blocks(x: np.ndarray, block: int) -> np.ndarray:
    """x @ blockdiag(H_b / sqrt(b)) along the last axis, computed in float64, returned in x's dtype."""
    k = x.shape[-1]
    if k % block:
        raise InputError(f"Hadamard block {block} does not divide {k}")
    if block == 1:
        return x.copy()
    h = sylvester(block).astype(np.float64) / np.sqrt(block)
    y = (x.astype(np.float64, copy=False).reshape(-1, block) @ h).reshape(x.shape)  # one GEMM over all blocks
    return y.astype(x.dtype, copy=False)


def check_block(block: int, k: int, max_block: int) -> None:
    """`block` must be a power of two dividing `k`, at most the target's hadamard_max_block."""
    if block < 1 or block & (block - 1):
        raise InputError(f"Hadamard block must be a power of two, got {block}")
    if k % block:
        raise InputError(f"Hadamard block {block} does not divide the dimension {k}")
    if block > max_block:
        raise InputError(f"Hadamard block {block} exceeds the target's hadamard_max_block {max_block}")


def default_block(k: int, max_block: int) -> int:
    """The largest power of two dividing `k` and at most `max_block` (768 -> 256, 1536 -> 256 on vc709)."""
    b = 1
    while b * 2 <= max_block and k % (b * 2) == 0:
        b *= 2
    return b
