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

__all__ = ["sylvester", "rotate_blocks", "exact_blocks", "check_block", "default_block"]


def sylvester(b: int) -> np.ndarray:
    """The unnormalized b x b Sylvester Hadamard matrix (entries +-1), b a power of two."""
    if b < 1 or b & (b - 1):
        raise InputError(f"Hadamard block must be a power of two, got {b}")
    h = np.ones((1, 1), np.int64)
    while h.shape[0] < b:
        h = np.block([[h, h], [h, -h]])
    return h


def rotate_blocks(x: np.ndarray, block: int) -> np.ndarray:
    """x @ blockdiag(H_b / sqrt(b)) along the last axis, computed in float64, returned in x's dtype.

    The result is the float64 GEMM's, rounded to x's dtype.  For float32 x and b a power of four (1/sqrt(b) a
    power of two), the blocks whose sums are exact in float64 (exact_blocks) take the factored transform
    (_rotate_exact: 2 / sqrt(b) of the GEMM's multiply-adds), which gives the same float64 values; the others, and
    every other x, take the GEMM.  Rows are done CHUNK_ROWS blocks at a time: no float64 copy of the whole x."""
    k = x.shape[-1]
    if k % block:
        raise InputError(f"Hadamard block {block} does not divide {k}")
    if block == 1:
        return x.copy()
    h = sylvester(block).astype(np.float64) / np.sqrt(block)
    rows = np.ascontiguousarray(x).reshape(-1, block)
    out = np.empty(rows.shape, x.dtype)
    factored = x.dtype == np.float32 and _power_of_four(block)
    hf = sylvester(1 << ((block.bit_length() - 1) // 2)).astype(np.float64)  # H_f of b = f^2 (when factored)
    for start in range(0, rows.shape[0], CHUNK_ROWS):
        chunk = rows[start:start + CHUNK_ROWS]
        dst = out[start:start + CHUNK_ROWS]
        exact = exact_blocks(chunk) if factored else np.zeros(len(chunk), bool)
        if exact.all():
            dst[...] = _rotate_exact(chunk, hf)
            continue
        if exact.any():
            dst[exact] = _rotate_exact(chunk[exact], hf)
        rest = ~exact
        dst[rest] = chunk[rest].astype(np.float64) @ h  # the GEMM: one row of blocks at a time, as over all x
    return out.reshape(x.shape)


CHUNK_ROWS = 256  # blocks transformed at a time (their float64 intermediates stay in the cache)
EXACT_SPAN = 2.0 ** 28  # a block's sum of |x| below this many times its smallest nonzero |x|: its sums are exact


def exact_blocks(blocks: np.ndarray) -> np.ndarray:
    """Per row of float32 `blocks`, whether every signed sum of its entries is exact in float64, in any order.

    Each nonzero float32 entry is a multiple of its ulp, so of u = the ulp of the smallest nonzero |entry| (a
    power of two, at least that entry times 2^-24); a sum of entries is a multiple of u no larger in magnitude
    than the sum of |entry|, and is exact in float64 when that is below 2^53 u, which sum |x| < 2^28 min |x|
    guarantees with a factor 2 to spare (the float64 sum of |x| is itself rounded).  Non-finite rows: False."""
    a = np.abs(blocks)
    total = a.sum(axis=1, dtype=np.float64)
    smallest = a.min(axis=1)
    zero = np.flatnonzero(smallest == 0)
    if zero.size:  # rows with a zero: their smallest nonzero (an all-zero row: inf, exact)
        smallest[zero] = np.where(a[zero] > 0, a[zero], np.float32(np.inf)).min(axis=1)
    with np.errstate(invalid="ignore", over="ignore"):
        return total < EXACT_SPAN * smallest.astype(np.float64)


def _power_of_four(b: int) -> bool:
    return b >= 4 and b & (b - 1) == 0 and (b.bit_length() - 1) % 2 == 0


def _rotate_exact(blocks: np.ndarray, hf: np.ndarray) -> np.ndarray:
    """blocks @ H_b / sqrt(b) in float64 for b = f^2 (f a power of two; hf = H_f), as H_b = H_f (x) H_f (Sylvester's
    construction): each block as an f x f matrix X, H_f^T X H_f / f.  Every intermediate is a signed sum of a
    block's entries, exact for the blocks exact_blocks accepts, and the scaling by 1/f a power of two: the GEMM's
    values, whose products (entries times +-1/f) and sums are then exact too."""
    n = len(blocks)
    f = len(hf)
    half = (blocks.astype(np.float64).reshape(n * f, f) @ hf).reshape(n, f, f)  # X H_f
    full = np.matmul(hf, half)  # H_f^T (X H_f); H_f is symmetric
    full *= 1.0 / f
    return full.reshape(n, f * f)


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
