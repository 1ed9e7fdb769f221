"""IEEE binary32 building blocks: int32 -> binary32; multiply, add, divide, square root; round to nearest even.

Place in the flow: `hardware/`'s floating-point primitives, used by LIN's f32
rescale (`lin_datapath.LinRescale`, docs/NUMERICS.md §2) and meant for the VEC
unit.  All components are free-running pipelines (a new operand every cycle,
no stall); `valid` travels beside the data.  Values are raw binary32 bit
patterns (`unsigned(32)`).

`I32ToF32()`: LATENCY = 1.
    In:  `a` signed(32), `valid` 1.
    Out: `y` unsigned(32) (binary32 bits of float32(a), round to nearest even;
         0 gives +0.0), `y_valid` 1.

`F32Mul()`: LATENCY = 2.
    In:  `a`, `b` unsigned(32) (binary32 bits), `valid` 1.
    Out: `y` unsigned(32) = bits of a * b, `y_valid` 1.
    IEEE 754 binary32 multiply, round to nearest even, subnormal inputs and
    outputs (no flush to zero), overflow to +-inf, signed zeros.  NaN results
    follow docs/NUMERICS.md §6 ("NaN bits"): a NaN operand is returned with
    its quiet bit set (`a`'s when both are NaN); an invalid product
    (inf * 0) gives the default NaN 0xFFC00000.  These are the bits numpy
    float32 produces on x86-64.

`F32Add()`: LATENCY = 2.
    In:  `a`, `b` unsigned(32) (binary32 bits), `sub` 1, `valid` 1.
    Out: `y` unsigned(32) = bits of a + b, or of a - b when `sub` is high,
         `y_valid` 1.
    IEEE 754 binary32 add, round to nearest even, subnormal inputs and
    outputs, overflow to +-inf.  An exact zero sum is +0 (x - x, x + (-x))
    except (-0) + (-0) and (-0) - (+0), which are -0.  `sub` negates b inside
    (rather than the caller flipping b's sign bit) so that a NaN b keeps its
    own sign, as x86-64's subss returns it.  NaN results as F32Mul's: a NaN
    operand quieted (`a`'s when both are NaN); inf - inf gives 0xFFC00000.

`F32Div()`: LATENCY = 9.
    In:  `a`, `b` unsigned(32) (binary32 bits), `valid` 1.
    Out: `y` unsigned(32) = bits of a / b, `y_valid` 1.
    IEEE 754 binary32 divide, round to nearest even, subnormal inputs and
    outputs, overflow to +-inf, signed zeros; x / 0 = +-inf for x != 0,
    0 / 0 and inf / inf give 0xFFC00000, NaN operands as F32Mul's.  A
    restoring divider unrolled into stages of BITS_PER_STAGE = 4 quotient
    bits (26 in all: 24 significand bits, one for a quotient below 1, a
    round bit; the remainder gives the sticky bit), between a stage that
    normalizes subnormal operands and one that rounds and packs.

`F32Sqrt()`: LATENCY = 9.
    In:  `a` unsigned(32) (binary32 bits), `valid` 1.
    Out: `y` unsigned(32) = bits of sqrt(a), `y_valid` 1.
    IEEE 754 binary32 square root, round to nearest even, subnormal inputs;
    sqrt(-0) = -0, sqrt(+inf) = +inf, a negative operand (-inf included)
    gives 0xFFC00000, a NaN is returned quieted.  A digit-by-digit restoring
    square root unrolled into stages of BITS_PER_STAGE = 4 root bits (25 in
    all: 24 significand bits and a round bit; the remainder gives the sticky
    bit), between a stage that normalizes the operand and halves its exponent
    and one that rounds and packs.

The output registers of each stage are the pipeline registers counted by
LATENCY: an operand presented in cycle t is visible on `y` in cycle t + LATENCY.
`F32Mul`, `F32Add`, `F32Div` and `F32Sqrt` take `domain` ("sync" by default);
with `domain="comb"` the same logic is built without its registers (`y` in the
same cycle): the VEC unit's micro-op stages (hardware/vec_datapath.py).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fastmamba.hardware.regions import wire

EXP_BITS = 8
FRAC_BITS = 23
EXP_MAX = (1 << EXP_BITS) - 1  # all ones: inf / NaN
BIAS = (1 << (EXP_BITS - 1)) - 1
QUIET_BIT = 1 << (FRAC_BITS - 1)
INF_BITS = EXP_MAX << FRAC_BITS  # +inf without its sign
DEFAULT_NAN = 0xFFC00000  # x86-64's "real indefinite": what an invalid operation produces


def _leading_zeros(m: Module, value, name: str) -> Signal:
    """A signal holding the number of leading zeros of an unsigned value (len(value) when it is 0)."""
    width = len(value)
    lz = Signal(range(width + 1), name=name)
    m.d.comb += lz.eq(width)
    for i in range(width):  # the highest set bit wins (last assignment)
        with m.If(value[i]):
            m.d.comb += lz.eq(width - 1 - i)
    return lz


def round_pack(m: Module, mant, exp, name: str):
    """Round and pack a positive value `mant * 2^(exp - BIAS - (len(mant) - 1))` into binary32 bits (no sign).

    `mant` is unsigned with its leading one at its top bit (or zero), `exp` a
    signed biased exponent of the value's leading bit (may be <= 0: the result
    is subnormal or zero).  Returns a 31-bit value: the magnitude's bits,
    saturated to +inf on overflow.  Round to nearest, ties to even.
    """
    width = len(mant)
    exp = wire(m, exp, f"{name}_exp_in")
    # The 24-bit significand is mant >> (width - 24) for normal results; a result below the
    # normal range shifts right by 1 - exp more (exponent field 0, value m * 2^-149).
    # From exp = -width down the value is below half the smallest subnormal: a shift of width + 1 leaves the round
    # bit 0 and the value in the sticky bit, so it rounds to zero for every width (a cap of `width` would put the
    # leading bit in the round bit, and a narrow mant with lower bits set would round up to 2^-149).
    extra = Signal(range(width + 2), name=f"{name}_extra")
    with m.If(exp >= 1):
        m.d.comb += extra.eq(0)
    with m.Elif(exp > -width):
        m.d.comb += extra.eq(1 - exp)
    with m.Else():
        m.d.comb += extra.eq(width + 1)
    # Append a guard position so that shifts of up to `width` + 1 keep a round bit and a sticky OR.
    wide = wire(m, Cat(Const(0, FRAC_BITS + 2), mant), f"{name}_wide")  # value scaled by 2^(FRAC_BITS + 2)
    shifted = Signal(len(wide), name=f"{name}_shifted")
    m.d.comb += shifted.eq(wide >> extra)
    lost = Signal(name=f"{name}_lost")  # a one shifted out of the extended window entirely
    m.d.comb += lost.eq((wide & ((Const(1, len(wide) + 1) << extra) - 1)[:len(wide)]).any())
    low = width + FRAC_BITS + 2 - (FRAC_BITS + 1)  # position of the significand's lowest bit in `shifted`
    sig = shifted[low:]  # FRAC_BITS + 1 bits
    guard = shifted[low - 1]
    sticky = shifted[:low - 1].any() | lost
    up = guard & (sticky | sig[0])
    rounded = Signal(FRAC_BITS + 2, name=f"{name}_rounded")
    m.d.comb += rounded.eq(sig + up)
    # Exponent field: exp - 1 for a normal result (the hidden bit adds the 1), 0 below the normal range;
    # a carry out of the significand moves into the exponent by the same addition.
    efield = Signal(EXP_BITS + 2, name=f"{name}_efield")
    m.d.comb += efield.eq(Mux(exp >= 1, exp - 1, 0))
    packed = Signal(EXP_BITS + FRAC_BITS + 3, name=f"{name}_packed")
    m.d.comb += packed.eq((efield << FRAC_BITS) + rounded)
    magnitude = Signal(31, name=f"{name}_magnitude")
    m.d.comb += magnitude.eq(Mux((exp >= EXP_MAX) | (packed >= INF_BITS), INF_BITS, packed))
    return magnitude


def _classify(m: Module, v, name: str) -> dict:
    """Fields of binary32 bits `v`, each a named signal: NaN/inf/zero flags, the 24-bit significand `sig` (the
    hidden bit set for normal numbers) and `eff`, the exponent field with subnormals' 0 read as 1."""
    e, f = v[FRAC_BITS:FRAC_BITS + EXP_BITS], v[:FRAC_BITS]
    top, frac_set, low = (wire(m, e == EXP_MAX, f"{name}_top"), wire(m, f != 0, f"{name}_frac_set"),
                          wire(m, e == 0, f"{name}_low"))
    return dict(nan=wire(m, top & frac_set, f"{name}_nan"), inf=wire(m, top & ~frac_set, f"{name}_inf"),
                zero=wire(m, low & ~frac_set, f"{name}_zero"), sig=wire(m, Cat(f, ~low), f"{name}_sig"),
                eff=wire(m, Mux(low, 1, e), f"{name}_eff"))


class I32ToF32(wiring.Component):
    """int32 -> binary32, round to nearest even (LATENCY 1)."""

    LATENCY = 1

    def __init__(self):
        super().__init__({"a": In(signed(32)), "valid": In(1), "y": Out(unsigned(32)), "y_valid": Out(1)})

    def elaborate(self, platform):
        m = Module()
        y = convert_i32(m, self.a, "cvt")
        m.d.sync += [self.y.eq(y), self.y_valid.eq(self.valid)]
        return m


def convert_i32(m: Module, a, name: str):
    """The combinational int32 -> binary32 conversion (RNE) of `a` into `m`; returns the 32 result bits."""
    width = len(a)
    sign = a[-1]
    mag = Signal(width, name=f"{name}_mag")  # |a| < 2^31 + 1 fits in 32 unsigned bits
    m.d.comb += mag.eq(Mux(sign, -a, a))
    lz = _leading_zeros(m, mag, f"{name}_lz")
    norm = Signal(width, name=f"{name}_norm")
    m.d.comb += norm.eq(mag << lz)
    exp = Signal(signed(EXP_BITS + 2), name=f"{name}_exp")
    m.d.comb += exp.eq(BIAS + width - 1 - lz)
    magnitude = round_pack(m, norm, exp, name)
    return Mux(mag == 0, 0, Cat(magnitude, sign))


class F32Op(wiring.Component):
    """The ports every binary32 operator has: its operands (`OPERANDS`, unsigned(32) each, and `EXTRA`),
    `valid`, `y` and `y_valid`; built in `domain` ("sync": the pipeline of LATENCY registers; "comb": the same
    logic without them)."""

    OPERANDS: tuple[str, ...] = ("a", "b")
    EXTRA: dict = {}

    def __init__(self, domain: str = "sync"):
        self.domain = domain
        super().__init__({**{name: In(unsigned(32)) for name in self.OPERANDS}, **self.EXTRA, "valid": In(1),
                          "y": Out(unsigned(32)), "y_valid": Out(1)})


class F32Mul(F32Op):
    """binary32 x binary32 -> binary32, IEEE 754 round to nearest even (LATENCY 2)."""

    LATENCY = 2

    def elaborate(self, platform):
        m = Module()
        sig_bits = FRAC_BITS + 1
        # Stage 1: classify, multiply the significands, the exponent sum.
        fields = {}
        for op, v in (("a", self.a), ("b", self.b)):
            fields[op] = _classify(m, v, f"mul_{op}")
        fa, fb = fields["a"], fields["b"]
        sign_now = wire(m, self.a[31] ^ self.b[31], "mul_sign_now")
        prod = Signal(2 * sig_bits)
        # biased exponent of the product's bit 2*sig_bits - 1, before normalizing
        exp_sum = Signal(signed(EXP_BITS + 3))
        special = Signal()
        special_bits = Signal(32)
        sign = Signal()
        valid1 = Signal()
        m.d[self.domain] += [
            prod.eq(fa["sig"] * fb["sig"]),
            exp_sum.eq(fa["eff"] + fb["eff"] - BIAS + 1),
            sign.eq(sign_now),
            special.eq(fa["nan"] | fb["nan"] | fa["inf"] | fb["inf"] | fa["zero"] | fb["zero"]),
            valid1.eq(self.valid),
        ]
        with m.If(fa["nan"]):
            m.d[self.domain] += special_bits.eq(self.a | QUIET_BIT)
        with m.Elif(fb["nan"]):
            m.d[self.domain] += special_bits.eq(self.b | QUIET_BIT)
        with m.Elif((fa["inf"] & fb["zero"]) | (fa["zero"] & fb["inf"])):
            m.d[self.domain] += special_bits.eq(DEFAULT_NAN)
        with m.Elif(fa["inf"] | fb["inf"]):
            m.d[self.domain] += special_bits.eq(Cat(Const(INF_BITS, 31), sign_now))
        with m.Else():  # a zero operand: a signed zero
            m.d[self.domain] += special_bits.eq(Cat(Const(0, 31), sign_now))
        # Stage 2: normalize (subnormal operands leave leading zeros), round, pack.
        lz = _leading_zeros(m, prod, "mul_lz")
        norm = Signal(2 * sig_bits)
        m.d.comb += norm.eq(prod << lz)
        exp = Signal(signed(EXP_BITS + 3))
        m.d.comb += exp.eq(exp_sum - lz)
        magnitude = round_pack(m, norm, exp, "mul")
        m.d[self.domain] += [
            self.y.eq(Mux(special, special_bits, Cat(magnitude, sign))),
            self.y_valid.eq(valid1),
        ]
        return m


class F32Add(F32Op):
    """binary32 a + b (or a - b with `sub` high), IEEE 754 round to nearest even (LATENCY 2)."""

    LATENCY = 2
    # Bits kept below the larger operand's significand while aligning, above the sticky bit: bits are lost only
    # for shifts >= 2, where a subtraction cancels at most one leading bit, so a guard and a round bit stay.
    GUARD = 2
    EXTRA = {"sub": In(1)}

    def elaborate(self, platform):
        m = Module()
        sig_bits, guard = FRAC_BITS + 1, self.GUARD
        # Stage 1: classify, order by magnitude, align the smaller significand, add or subtract.
        fields = {}
        for op, v in (("a", self.a), ("b", self.b)):
            fields[op] = _classify(m, v, f"add_{op}")
        fa, fb = fields["a"], fields["b"]
        sign_a = self.a[31]
        # b's sign as it enters the sum (a NaN keeps its own bits below)
        sign_b = wire(m, self.b[31] ^ self.sub, "add_sign_b")
        swap = wire(m, self.b[:31] > self.a[:31], "add_swap")  # bit patterns order finite magnitudes
        big_sig, small_sig = Mux(swap, fb["sig"], fa["sig"]), Mux(swap, fa["sig"], fb["sig"])
        big_eff = wire(m, Mux(swap, fb["eff"], fa["eff"]), "add_big_eff")
        small_eff = Mux(swap, fa["eff"], fb["eff"])
        dist = Signal(EXP_BITS, name="add_dist")
        m.d.comb += dist.eq(big_eff - small_eff)
        # The smaller significand over sig_bits + guard positions; what falls below them becomes one sticky bit
        # under everything, so the sum lies strictly between the same rounding boundaries as the exact one.
        frame = sig_bits + guard
        span = Signal(range(frame + 1), name="add_span")
        m.d.comb += span.eq(Mux(dist > frame, frame, dist))
        small_wide = wire(m, Cat(Const(0, guard), small_sig), "add_small_wide")
        aligned = Signal(frame, name="add_aligned")
        m.d.comb += aligned.eq(small_wide >> span)
        sticky = Signal(name="add_sticky")
        m.d.comb += sticky.eq((small_wide & ((Const(1, frame + 1) << span) - 1)[:frame]).any())
        big_ext = Cat(Const(0, 1), Const(0, guard), big_sig)
        small_ext = Cat(sticky, aligned)
        total = Signal(frame + 2)  # a carry bit above: biased exponent of its top bit is big_eff + 1
        exp_top = Signal(signed(EXP_BITS + 3))
        sign = Signal()
        zero_sign = Signal()
        special = Signal()
        special_bits = Signal(32)
        valid1 = Signal()
        m.d[self.domain] += [
            total.eq(Mux(sign_a ^ sign_b, big_ext - small_ext, big_ext + small_ext)),
            exp_top.eq(big_eff + 1),
            sign.eq(Mux(swap, sign_b, sign_a)),
            zero_sign.eq(sign_a & sign_b),  # an exact zero sum is +0 unless both operands are -0 (RNE)
            special.eq(fa["nan"] | fb["nan"] | fa["inf"] | fb["inf"]),
            valid1.eq(self.valid),
        ]
        with m.If(fa["nan"]):
            m.d[self.domain] += special_bits.eq(self.a | QUIET_BIT)
        with m.Elif(fb["nan"]):
            m.d[self.domain] += special_bits.eq(self.b | QUIET_BIT)
        with m.Elif(fa["inf"] & fb["inf"] & (sign_a != sign_b)):
            m.d[self.domain] += special_bits.eq(DEFAULT_NAN)
        with m.Elif(fa["inf"]):
            m.d[self.domain] += special_bits.eq(Cat(Const(INF_BITS, 31), sign_a))
        with m.Else():
            m.d[self.domain] += special_bits.eq(Cat(Const(INF_BITS, 31), sign_b))
        # Stage 2: normalize (a cancellation leaves leading zeros; only when no bit was lost), round, pack.
        lz = _leading_zeros(m, total, "add_lz")
        norm = Signal(len(total))
        m.d.comb += norm.eq(total << lz)
        exp = Signal(signed(EXP_BITS + 3))
        m.d.comb += exp.eq(exp_top - lz)
        magnitude = round_pack(m, norm, exp, "add")
        with m.If(special):
            m.d[self.domain] += self.y.eq(special_bits)
        with m.Elif(total == 0):
            m.d[self.domain] += self.y.eq(Cat(Const(0, 31), zero_sign))
        with m.Else():
            m.d[self.domain] += self.y.eq(Cat(magnitude, sign))
        m.d[self.domain] += self.y_valid.eq(valid1)
        return m


def _unpack_normalized(m: Module, v, name: str):
    """Fields of binary32 bits `v` for the divider and square root: NaN/inf/zero flags, the 24-bit significand
    shifted so that its top bit is set (subnormals normalized), and the matching exponent (biased, signed)."""
    fields = _classify(m, v, name)
    lz = _leading_zeros(m, fields["sig"], f"{name}_lz")
    norm = Signal(FRAC_BITS + 1, name=f"{name}_norm")
    m.d.comb += norm.eq(fields["sig"] << lz)
    exp = Signal(signed(EXP_BITS + 3), name=f"{name}_exp")
    m.d.comb += exp.eq(fields["eff"] - lz)
    return dict(fields, sig=norm, exp=exp)


class F32Div(F32Op):
    """binary32 / binary32 -> binary32, IEEE 754 round to nearest even (LATENCY 9: a restoring divider,
    QUOTIENT_BITS quotient bits in stages of BITS_PER_STAGE)."""

    QUOTIENT_BITS = FRAC_BITS + 3  # the 24 significand bits, a bit for a quotient below 1, a round bit
    BITS_PER_STAGE = 4
    LATENCY = 2 + -(-QUOTIENT_BITS // BITS_PER_STAGE)  # operands in, the quotient stages, round and pack

    def elaborate(self, platform):
        m = Module()
        sig_bits, qbits = FRAC_BITS + 1, self.QUOTIENT_BITS
        # Stage 1: classify, normalize subnormal operands, the quotient's exponent, the special results.
        fa, fb = _unpack_normalized(m, self.a, "div_a"), _unpack_normalized(m, self.b, "div_b")
        sign_now = self.a[31] ^ self.b[31]
        rem = Signal(sig_bits + 1, name="div_rem0")  # partial remainder, < 2 * divisor
        div = Signal(sig_bits, name="div_div0")
        quo = Signal(qbits, name="div_quo0")
        # biased exponent of quotient bit qbits - 1 (the ratio of the significands is in (1/2, 2))
        exp = Signal(signed(EXP_BITS + 3), name="div_exp0")
        sign, special, special_bits, valid = Signal(name="div_sign0"), Signal(name="div_special0"), \
            Signal(32, name="div_special_bits0"), Signal(name="div_valid0")
        m.d[self.domain] += [
            rem.eq(fa["sig"]), div.eq(fb["sig"]), quo.eq(0), exp.eq(fa["exp"] - fb["exp"] + BIAS),
            sign.eq(sign_now), valid.eq(self.valid),
            special.eq(fa["nan"] | fb["nan"] | fa["inf"] | fb["inf"] | fa["zero"] | fb["zero"]),
        ]
        with m.If(fa["nan"]):
            m.d[self.domain] += special_bits.eq(self.a | QUIET_BIT)
        with m.Elif(fb["nan"]):
            m.d[self.domain] += special_bits.eq(self.b | QUIET_BIT)
        with m.Elif((fa["inf"] & fb["inf"]) | (fa["zero"] & fb["zero"])):
            m.d[self.domain] += special_bits.eq(DEFAULT_NAN)
        with m.Elif(fa["inf"] | fb["zero"]):  # inf / x, x / 0: a signed infinity
            m.d[self.domain] += special_bits.eq(Cat(Const(INF_BITS, 31), sign_now))
        with m.Else():  # 0 / x, x / inf: a signed zero
            m.d[self.domain] += special_bits.eq(Cat(Const(0, 31), sign_now))
        # The quotient stages: one restoring step per bit, quo = floor(sig_a * 2^(qbits - 1) / sig_b).
        step = 0
        for stage in range(1, -(-qbits // self.BITS_PER_STAGE) + 1):
            r, q = rem, quo
            for _ in range(min(self.BITS_PER_STAGE, qbits - step)):
                bit = r >= div
                r_next = Signal(sig_bits + 1, name=f"div_r{step}")
                m.d.comb += r_next.eq(Mux(bit, r - div, r) << 1)
                q_next = Signal(qbits, name=f"div_q{step}")
                m.d.comb += q_next.eq(Cat(bit, q[:-1]))
                r, q, step = r_next, q_next, step + 1
            carried = {}
            for key, sig in (("rem", r), ("quo", q), ("div", div), ("exp", exp), ("sign", sign),
                             ("special", special), ("special_bits", special_bits), ("valid", valid)):
                nxt = Signal.like(sig, name=f"div_{key}{stage}")
                m.d[self.domain] += nxt.eq(sig)
                carried[key] = nxt
            rem, quo, div, exp, sign = carried["rem"], carried["quo"], carried["div"], carried["exp"], carried["sign"]
            special, special_bits, valid = carried["special"], carried["special_bits"], carried["valid"]
        # Last stage: the remainder becomes a sticky bit under the quotient; normalize (at most one place), round.
        mant = Cat(rem != 0, quo)
        lz = Signal(name="div_norm_shift")
        m.d.comb += lz.eq(~quo[-1])
        norm = Signal(len(mant), name="div_norm")
        m.d.comb += norm.eq(mant << lz)
        magnitude = round_pack(m, norm, exp - lz, "div")
        m.d[self.domain] += [
            self.y.eq(Mux(special, special_bits, Cat(magnitude, sign))),
            self.y_valid.eq(valid),
        ]
        return m


class F32Sqrt(F32Op):
    """binary32 square root, IEEE 754 round to nearest even (LATENCY 9: a digit-by-digit restoring square root,
    ROOT_BITS root bits in stages of BITS_PER_STAGE)."""

    ROOT_BITS = FRAC_BITS + 2  # the 24 significand bits (the root of [1, 4) is in [1, 2)) and a round bit
    BITS_PER_STAGE = 4
    LATENCY = 2 + -(-ROOT_BITS // BITS_PER_STAGE)  # operand in, the root stages, round and pack
    OPERANDS = ("a",)

    def elaborate(self, platform):
        m = Module()
        sig_bits, rbits = FRAC_BITS + 1, self.ROOT_BITS
        # Stage 1: classify, normalize a subnormal operand, make the exponent even (the significand takes the
        # odd factor 2: radicand in [1, 4)), halve it.
        fa = _unpack_normalized(m, self.a, "sqrt_a")
        odd = Signal(name="sqrt_odd")  # unbiased exponent exp - BIAS is odd: BIAS is odd, so exp is even
        m.d.comb += odd.eq(~fa["exp"][0])
        unbiased = Signal(signed(EXP_BITS + 3), name="sqrt_unbiased")
        m.d.comb += unbiased.eq(fa["exp"] - BIAS - odd)
        # The radicand, two bits per step from the top: sig * 2^(odd + 2 * rbits - 2 - FRAC_BITS), so that
        # root = floor(sqrt(radicand)) has its top bit (2^0 of the root) at rbits - 1.
        rad_bits = 2 * rbits
        rad = Signal(rad_bits, name="sqrt_rad0")
        rem = Signal(rbits + 2, name="sqrt_rem0")  # partial remainder <= 2 * root
        root = Signal(rbits, name="sqrt_root0")
        exp = Signal(signed(EXP_BITS + 3), name="sqrt_exp0")  # biased exponent of the root's top bit
        special, special_bits, valid = Signal(name="sqrt_special0"), Signal(32, name="sqrt_special_bits0"), \
            Signal(name="sqrt_valid0")
        negative = self.a[31] & ~fa["zero"]
        m.d[self.domain] += [
            rad.eq(Mux(odd, Cat(Const(0, rad_bits - sig_bits), fa["sig"]),
                       Cat(Const(0, rad_bits - sig_bits - 1), fa["sig"]))),
            rem.eq(0), root.eq(0), exp.eq((unbiased >> 1) + BIAS),
            special.eq(fa["nan"] | fa["inf"] | fa["zero"] | negative), valid.eq(self.valid),
        ]
        with m.If(fa["nan"]):
            m.d[self.domain] += special_bits.eq(self.a | QUIET_BIT)
        with m.Elif(negative):  # sqrt of a negative number (-inf included): invalid
            m.d[self.domain] += special_bits.eq(DEFAULT_NAN)
        with m.Else():  # +inf, +0, -0: themselves
            m.d[self.domain] += special_bits.eq(self.a)
        # The root stages: one restoring step per root bit.
        step = 0
        for stage in range(1, -(-rbits // self.BITS_PER_STAGE) + 1):
            x, r, q = rad, rem, root
            for _ in range(min(self.BITS_PER_STAGE, rbits - step)):
                r_in = Signal(rbits + 2, name=f"sqrt_rin{step}")
                m.d.comb += r_in.eq(Cat(x[-2:], r))
                trial = Cat(Const(1, 2), q)
                bit = r_in >= trial
                r_next = Signal(rbits + 2, name=f"sqrt_r{step}")
                m.d.comb += r_next.eq(Mux(bit, r_in - trial, r_in))
                q_next = Signal(rbits, name=f"sqrt_q{step}")
                m.d.comb += q_next.eq(Cat(bit, q[:-1]))
                x_next = Signal(rad_bits, name=f"sqrt_x{step}")
                m.d.comb += x_next.eq(x << 2)
                x, r, q, step = x_next, r_next, q_next, step + 1
            carried = {}
            for key, sig in (("rad", x), ("rem", r), ("root", q), ("exp", exp), ("special", special),
                             ("special_bits", special_bits), ("valid", valid)):
                nxt = Signal.like(sig, name=f"sqrt_{key}{stage}")
                m.d[self.domain] += nxt.eq(sig)
                carried[key] = nxt
            rad, rem, root, exp = carried["rad"], carried["rem"], carried["root"], carried["exp"]
            special, special_bits, valid = carried["special"], carried["special_bits"], carried["valid"]
        # Last stage: the remainder becomes a sticky bit under the root (whose top bit is set), round, pack.
        magnitude = round_pack(m, Cat(rem != 0, root), exp, "sqrt")
        m.d[self.domain] += [
            self.y.eq(Mux(special, special_bits, Cat(magnitude, Const(0, 1)))),
            self.y_valid.eq(valid),
        ]
        return m
