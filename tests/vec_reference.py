"""A scalar, pure-Python reading of docs/NUMERICS.md §6's silu and softplus, for the tests.

Each binary32 operation is computed on Python floats (binary64) and rounded to binary32 with `struct`: for +, -, *, /
of binary32 operands that double rounding gives the correctly rounded binary32 result (53 >= 2 * 24 + 2), and
ldexp is exact in binary64 before its one rounding.  Independent of numpy and of both implementations under test
(fastmamba.isa.numerics, fastmamba.compiler.quant.fixed); the tables are parsed from the document's text.
"""

from __future__ import annotations

import math
import re
import struct
from pathlib import Path

_DOC = (Path(__file__).resolve().parent.parent / "docs" / "NUMERICS.md").read_text()


def f32(v: float) -> float:
    """v rounded to binary32 (nearest even; overflow to +-inf), as a Python float."""
    if math.isnan(v) or math.isinf(v):
        return v
    try:
        return struct.unpack("<f", struct.pack("<f", v))[0]
    except OverflowError:  # struct refuses to round beyond the largest binary32: IEEE gives +-inf
        return math.copysign(math.inf, v)


def from_bits(word: int) -> float:
    return struct.unpack("<f", struct.pack("<I", word))[0]


def bits(v: float) -> int:
    return struct.unpack("<I", struct.pack("<f", v))[0]


def _doc_table(label: str) -> list[float]:
    """The 32 hex words after `label` in §6 (T[k] after its heading line's code block, Lt and R by their prefix)."""
    start = _DOC.index(label)
    words = re.findall(r"\b[0-9A-F]{8}\b", _DOC[start:start + 1200])
    return [from_bits(int(w, 16)) for w in words[:32]]


T = _doc_table("`T[k]` = binary32 of 2^(k/32)")
LT = _doc_table("Lt: ")
R = _doc_table("R:  ")
LOG2E, C1, C2, THIRD = (from_bits(w) for w in (0x3FB8AA3B, 0x3CB17218, 0x3975FDF0, 0x3EAAAAAB))


def exp_neg(a: float) -> float:
    """E(a) = e^-a for binary32 a in [+0, +inf], step by step as §6 writes it."""
    y = max(f32(-a * LOG2E), -160.0)
    w = y * 32.0
    n = round(w)  # Python's round: ties to even, like rint
    r = w - n
    u, k = n >> 5, n & 31
    p = f32(1.0 + f32(r * f32(C1 + f32(r * C2))))
    return f32(math.ldexp(f32(T[k] * p), u))


def log1p_(q: float) -> float:
    """L(q) = log1p(q) for binary32 q in [+0, 1]."""
    j = min(math.floor(q * 32.0), 31)
    r = f32(f32(q - j / 32.0) * R[j])
    s = f32(THIRD + f32(r * -0.25))
    s = f32(-0.5 + f32(r * s))
    s = f32(1.0 + f32(r * s))
    return f32(LT[j] + f32(r * s))


def silu(x: float) -> float:
    if math.isnan(x):
        return x  # (the tests compare NaN bits separately)
    if x == -math.inf:
        return -0.0
    q = exp_neg(abs(x))
    num = f32(x * q) if x < 0 else x
    return f32(num / f32(1.0 + q))


def softplus(x: float) -> float:
    if math.isnan(x) or x > 20:
        return x
    return f32((x if x > 0 else 0.0) + log1p_(exp_neg(abs(x))))
