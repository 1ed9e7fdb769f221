"""Fixed-point expression builders: docs/NUMERICS.md §1's rounding shift and saturation as Amaranth values.

Place in the flow: the bottom of `hardware/`; the LIN and CONV datapaths
(`lin_datapath`, `conv_datapath`) and later units build their requantizers
from these.  Each function returns a combinational Amaranth `Value` (no
registers, no module): the caller decides where the pipeline registers go.

- `rshift_round(x, s)`: `(x + 2^(s-1)) >> s` for s > 0, `x` for s = 0 (ties
  toward +inf, for negative x too; 0 once s reaches x's width).  `x` signed
  (an unsigned value is taken as non-negative), `s` an unsigned `Value` or a
  non-negative int of any size (fields are up to 7 bits: 0..127).  Result:
  `signed(len(x))` for signed x (it always fits), `signed(len(x) + 1)` for
  unsigned x.  Built as `(((x << 1) >> s) + 1) >> 1`, which equals the
  contract for every s >= 0 (floor((floor(x / 2^(s-1)) + 1) / 2) =
  floor((x + 2^(s-1)) / 2^s)) and needs no adder of a shift-dependent
  constant.
- `saturate(x, bits)`: clip a signed (or unsigned) value to
  [-2^(bits-1), 2^(bits-1) - 1]; result `signed(bits)`.
- `saturate_unsigned(x, bits)`: clip to [0, 2^bits - 1]; result `unsigned(bits)`.
- `adder_tree(m, terms, name, levels_per_stage)`: the exception, it adds to a
  module: a pairwise sum of signed terms (exact: each level one bit wider),
  with a pipeline register after every `levels_per_stage` levels if asked;
  returns the sum and how many register stages it placed.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned


def _as_signed(x) -> Value:
    x = Value.cast(x)
    if x.shape().signed:
        return x
    return Cat(x, Const(0, 1)).as_signed()  # one more bit: the value as a non-negative signed number


def rshift_round(x, s) -> Value:
    """rshift_round(x, s) of docs/NUMERICS.md §1 (round half up) as a combinational value."""
    x = _as_signed(x)
    width = len(x)
    if isinstance(s, int):
        if s < 0:
            raise ValueError(f"rshift_round: negative shift {s}")
        if s == 0:
            return x
        if s >= width:  # (x + 2^(s-1)) lies in [0, 2^s) for every x of this width
            return Const(0, signed(width))
        return (((x << 1) >> s) + 1 >> 1)[:width].as_signed()
    s = Value.cast(s)
    if s.shape().signed:
        raise TypeError("rshift_round: the shift must be an unsigned value")
    doubled = x << 1  # signed(width + 1)
    # A variable shift beyond the value's width fills with the sign bit, which is what the floor wants.
    return ((doubled >> s) + 1 >> 1)[:width].as_signed()


def saturate(x, bits: int) -> Value:
    """Clip to the signed range of `bits` bits: a signed(bits) value."""
    x = _as_signed(x)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if len(x) <= bits:  # already in range: sign-extend
        return Cat(x, x[-1].replicate(bits - len(x))).as_signed()
    return Mux(x > hi, Const(hi, signed(bits)), Mux(x < lo, Const(lo, signed(bits)), x[:bits].as_signed()))


def saturate_unsigned(x, bits: int) -> Value:
    """Clip to [0, 2^bits - 1]: an unsigned(bits) value."""
    x = Value.cast(x)
    hi = (1 << bits) - 1
    low = Const(0, unsigned(bits))
    if x.shape().signed:
        return Mux(x < 0, low, Mux(x > hi, Const(hi, unsigned(bits)), x[:bits]))
    return Mux(x > hi, Const(hi, unsigned(bits)), x[:bits])


def adder_tree(m: Module, terms: list, name: str, levels_per_stage: int | None = None):
    """Sum `terms` (signed values) pairwise; a register after every `levels_per_stage` levels (None: no
    registers).  Returns (the sum, the number of register stages)."""
    level, stages = 0, 0
    terms = list(terms)
    while len(terms) > 1:
        pairs = [terms[i] + terms[i + 1] for i in range(0, len(terms) - 1, 2)]
        if len(terms) % 2:
            pairs.append(terms[-1])
        level += 1
        if levels_per_stage and level % levels_per_stage == 0 and len(pairs) > 1:
            regs = []
            for i, p in enumerate(pairs):
                r = Signal(p.shape(), name=f"{name}_s{stages}_{i}")
                m.d.sync += r.eq(p)
                regs.append(r)
            pairs = regs
            stages += 1
        terms = pairs
    return terms[0], stages
