"""VEC's arithmetic datapath (docs/NUMERICS.md §6): dequantize, the micro-op stages, quantize, and argmax.

Place in the flow: the VEC unit (`hardware.vec_unit`) reads a beat of up to
L = `vec_lanes` elements of `a` (and `b`) from the buffer and feeds them here;
`y` goes back to the buffer.  Every binary32 step is one of `hardware.fp32`'s
blocks (built combinationally, `domain="comb"`), every constant and table is
`fastmamba.isa.numerics`' (no second copy), so the results are the
simulator's bit for bit.

`VecDatapath(target)`, S = `vec_stages` micro-op stages (1 or 4), latency
`datapath_latency(target)` = 1 + S: a beat of a chain of k micro-ops passes
through the stages P = max(1, ceil(k / S)) times (isa/costs.py's
`vec_beat_cycles`); presented in cycle t (`valid` high), it is on `y` and
`index` in cycle t + 1 + S * P, and the next beat may come in cycle t + P
(`valid` low in between), no stall.
    In:  `a`, `b` ArrayLayout(unsigned(32), L): each lane's element bits as
         read (i8/i16 in the low bits; `b` ignored unless a micro-op reads it);
         `a_type`, `b_type` (the ISA's type codes), `a_exp`, `b_exp`
         (signed(8)); `ops` ArrayLayout(unsigned(3), 4) (the micro-op codes,
         op0 first); `group` (16 bits), `eps` (binary32 bits); `out_type`,
         `out_scale` (binary32 bits); `sum_pass` (the beat is in rmsnorm's
         first pass: it only adds its squares to the group's sum), `group_first`
         (the first beat of a group's first pass), `lanes` (how many lanes
         hold elements, 1..L); `argmax`, `row_first`, `col0` (an argmax beat:
         the first of its row, the column of lane 0); `valid`.
    Out: `y` ArrayLayout(unsigned(32), L): binary32 bits, or the quantized
         integer (two's complement, the low bytes hold i8/i16); `index`: the
         first maximum of the row so far (argmax beats); `y_valid`.

Structure: a dequantize stage (int -> binary32 and the power-of-two scaling as
an exponent add, one register; it also moves the chain's micro-ops other than
none to the front), then S micro-op stages, each computing any micro-op of §6
in one combinational step followed by one register, then the output
conversion (binary32 multiply by `out_scale`, round half to even, saturation;
combinational, into the unit's write).  With S = 1 (`small`) the stage's
register feeds the stage again until the beat has had its P passes, pass p
applying the chain's micro-op p; with S = 4 stage j applies micro-op j.  A
stage's lanes share one e^-|v| (`exp_neg`), one log1p, one divider (silu) and
one multiplier (mul, gate, rmsnorm and the squares), one adder (add,
softplus).

rmsnorm: each stage keeps the running sum of squares of the group in flight.
A beat of the first pass adds its lanes' squares, left to right, to the sum
(a chain of binary32 adds in the beat's cycle: the contract's order); the
second pass's beats (the same elements, recomputed) are multiplied by
r = 1 / sqrt(ss / group + eps), computed from the finished sum.  The unit
sends a group's first-pass beats, then its second-pass beats, so a stage sees
the group's last first-pass beat before its first second-pass beat.

argmax: the dequantize stage folds each beat into the row's running maximum
(the first index on ties; NaN above every number, the first NaN wins; -0 and
+0 equal), and `index` carries it to the output with the beat.

The micro-op stages are combinational between their registers: a cycle-exact
functional model with the target's vec_latency, not a timing-closed FPGA
design (docs/RTL.md).
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from fastmamba.hardware.fp32 import (BIAS, DEFAULT_NAN, EXP_BITS, EXP_MAX, FRAC_BITS, QUIET_BIT, F32Add, F32Div,
                                     F32Mul, F32Sqrt, convert_i32, round_pack)
from fastmamba.hardware.regions import wire
from fastmamba.isa import numerics
from fastmamba.isa.costs import VEC_MICRO_OP_FIELDS
from fastmamba.isa.instructions import OPS
from fastmamba.isa.target import Target

_VEC = OPS["vec"].field_map
MICRO_OPS = _VEC["op0"].values  # the field's codes: index = code
TYPES = _VEC["a_type"].values
INT_TYPES = numerics.INT_TYPES
N_STAGES = len(VEC_MICRO_OP_FIELDS)
SIGN = 1 << 31
ABS = SIGN - 1
WORD = 32
__all__ = ["VecDatapath", "DEFAULT_NAN"]


def f32_bits(value) -> int:
    """The binary32 bit pattern of a number (rounded to binary32)."""
    return int(np.asarray(value, dtype=np.float32).view(np.uint32))


ONE = f32_bits(1.0)
NEG_ZERO = SIGN
NEG_INF = SIGN | (EXP_MAX << FRAC_BITS)
THIRTY_TWO = f32_bits(numerics.VEC_EXP_SEGMENTS)
LOG_SEGMENTS = numerics.VEC_LOG_SEGMENTS
LOG2E = f32_bits(numerics.VEC_LOG2E)
Y_MIN = f32_bits(numerics.VEC_EXP_Y_MIN)
E1, E2 = f32_bits(numerics.VEC_EXP_E1), f32_bits(numerics.VEC_EXP_E2)
THIRD = f32_bits(numerics.VEC_LOG_C3)
MINUS_HALF, MINUS_QUARTER = f32_bits(-0.5), f32_bits(-0.25)
SOFTPLUS_THRESHOLD = f32_bits(numerics.SOFTPLUS_THRESHOLD)
EXP_TABLE = [f32_bits(v) for v in numerics.VEC_EXP_TABLE]
LOG_TABLE = [f32_bits(v) for v in numerics.VEC_LOG_TABLE]
RECIP_TABLE = [f32_bits(v) for v in numerics.VEC_RECIP_TABLE]
J_TABLE = [f32_bits(j / LOG_SEGMENTS) for j in range(LOG_SEGMENTS)]  # j / 32, exact
INT_RESULT_BITS = 33  # |rint(x)| below 2^33 is exact; larger ones are `huge` (they saturate every type)
# rint's ties go to even (§1, §6).  tests/test_hw_datapath_vec.py sets it False (ties away from zero) to show
# that random operands catch a wrong rounding.
TIES_TO_EVEN = True


class _Fp:
    """Combinational binary32 operations as submodules of `m` (hardware.fp32's blocks with domain="comb")."""

    def __init__(self, m: Module, prefix: str):
        self.m, self.prefix, self.count = m, prefix, 0

    def _block(self, block, **ports):
        self.count += 1
        self.m.submodules[f"{self.prefix}_{type(block).__name__.lower()}{self.count}"] = block
        self.m.d.comb += [getattr(block, k).eq(v) for k, v in ports.items()]
        return block.y

    def mul(self, a, b):
        return self._block(F32Mul("comb"), a=a, b=b)

    def add(self, a, b):
        return self._block(F32Add("comb"), a=a, b=b)

    def sub(self, a, b):
        return self._block(F32Add("comb"), a=a, b=b, sub=1)

    def div(self, a, b):
        return self._block(F32Div("comb"), a=a, b=b)

    def sqrt(self, a):
        return self._block(F32Sqrt("comb"), a=a)

    def signal(self, value, shape=None, name: str = "t") -> Signal:
        self.count += 1
        s = Signal(unsigned(WORD) if shape is None else shape, name=f"{self.prefix}_{name}{self.count}")
        self.m.d.comb += s.eq(value)
        return s


def is_nan(x):
    return (x[FRAC_BITS:FRAC_BITS + EXP_BITS] == EXP_MAX) & (x[:FRAC_BITS] != 0)


def ldexp(fp: _Fp, v, e):
    """v * 2^e rounded once, for binary32 v that is +-0 or normal of magnitude >= 1/2 (never inf or NaN here)
    and an integer e in [-160, 127]: an exponent add, then `round_pack` rounds a result below the normal range
    to a subnormal or +-0 and saturates one above it to +-inf (no multiplier)."""
    exp = v[FRAC_BITS:FRAC_BITS + EXP_BITS]
    biased = fp.signal(exp + e, signed(EXP_BITS + 3), "le")
    fp.count += 1
    mag = round_pack(fp.m, Cat(v[:FRAC_BITS], Const(1, 1)), biased, f"{fp.prefix}_ldexp{fp.count}")
    return fp.signal(Mux(exp == 0, v, Cat(mag, v[31])), name="ld")


def f32_to_int(fp: _Fp, x, trunc: bool = False):
    """(|n|, huge) for n = rint(x) (round half to even), or trunc(x) with `trunc`; `huge` when |n| >= 2^32
    (inf included).  NaN is the caller's."""
    m = fp.m
    e = x[FRAC_BITS:FRAC_BITS + EXP_BITS]
    sig = Cat(x[:FRAC_BITS], e != 0)
    point = BIAS + FRAC_BITS  # exponent field of a value whose last significand bit is 2^0
    mag = Signal(INT_RESULT_BITS, name=f"{fp.prefix}_int_mag{fp.count}")
    huge = Signal(name=f"{fp.prefix}_int_huge{fp.count}")
    fp.count += 1
    left_max = WORD - (FRAC_BITS + 1)  # sig << left_max < 2^32
    guard = FRAC_BITS + 3  # fraction bits kept: a shift up to guard + 1 leaves the round bit 0 or the value 0
    with m.If(e > point + left_max):
        m.d.comb += huge.eq(1)
    with m.Elif(e >= point):
        m.d.comb += mag.eq(sig << (e - point)[:4])
    with m.Else():
        right = fp.signal(point - e, unsigned(EXP_BITS + 1), "rs")
        shift = fp.signal(Mux(right > guard + 1, guard + 1, right), unsigned(6), "sh")
        fixed = fp.signal(Cat(Const(0, guard), sig) >> shift, unsigned(guard + FRAC_BITS + 1), "fx")
        q = fixed[guard:]
        if trunc:
            m.d.comb += mag.eq(q)
        else:
            rnd, sticky = fixed[guard - 1], fixed[:guard - 1].any()
            m.d.comb += mag.eq(q + (rnd & (sticky | q[0] | (not TIES_TO_EVEN))))
    return mag, huge


def exp_neg(fp: _Fp, a):
    """E(a) = e^-a, §6's steps, for binary32 a in [+0, +inf] (bits, sign clear)."""
    y0 = fp.mul(a | SIGN, LOG2E)  # (-a) * log2(e)
    y = fp.signal(Mux(y0[:31] > (Y_MIN & ABS), Y_MIN, y0), name="y")  # max(y0, -160): y0 <= 0
    w = fp.mul(y, THIRTY_TWO)  # exact
    mag, _ = f32_to_int(fp, w)  # |n| <= 5120
    n = fp.signal(Mux(w[31], -mag, mag), signed(WORD), "n")
    r = fp.sub(w, fp.signal(convert_i32(fp.m, n, f"{fp.prefix}_nf{fp.count}"), name="nf"))
    k = n[:5]
    u = n >> 5  # floor(n / 32)
    p = fp.add(ONE, fp.mul(r, fp.add(E1, fp.mul(r, E2))))
    table = Array(Const(t, WORD) for t in EXP_TABLE)
    return ldexp(fp, fp.mul(table[k], p), u)


def log1p(fp: _Fp, q):
    """L(q) = log1p(q), §6's steps, for binary32 q in [+0, 1]."""
    jm, _ = f32_to_int(fp, fp.mul(q, THIRTY_TWO), trunc=True)  # floor(32 q): q >= 0
    j = fp.signal(Mux(jm > LOG_SEGMENTS - 1, LOG_SEGMENTS - 1, jm), unsigned(5), "j")
    d = fp.sub(q, Array(Const(t, WORD) for t in J_TABLE)[j])
    r = fp.mul(d, Array(Const(t, WORD) for t in RECIP_TABLE)[j])
    s = fp.add(THIRD, fp.mul(r, MINUS_QUARTER))
    s = fp.add(MINUS_HALF, fp.mul(r, s))
    s = fp.add(ONE, fp.mul(r, s))
    return fp.add(Array(Const(t, WORD) for t in LOG_TABLE)[j], fp.mul(r, s))


def micro_op(fp: _Fp, op, x, b, r_norm, square):
    """One lane of a micro-op stage: y = op(x) (op a MICRO_OPS code); `r_norm` is rmsnorm's factor; with `square`
    (rmsnorm's first pass) the shared multiplier computes x * x, returned as the second value."""
    def is_(name):
        return op == MICRO_OPS.index(name)

    gate = fp.signal(is_("gate"), unsigned(1), "gate")
    v = fp.signal(Mux(gate, b, x), name="v")  # silu's operand: b for gate, else x
    v_nan = fp.signal(is_nan(v), unsigned(1), "v_nan")
    e = exp_neg(fp, Mux(v_nan, 0, v & ABS))
    nonzero = fp.signal((v[:31] != 0) & ~v_nan, unsigned(1), "nz")
    negative = v[31] & nonzero
    num = fp.signal(Mux(negative, fp.mul(v, e), v), name="num")
    quiet = fp.signal(v | QUIET_BIT, name="quiet")
    silu = fp.signal(Mux(v_nan, quiet, Mux(v == NEG_INF, NEG_ZERO, fp.div(num, fp.add(ONE, e)))), name="silu")
    positive = fp.signal(~v[31] & nonzero, unsigned(1), "pos")
    add_op = fp.signal(is_("add"), unsigned(1), "add_op")
    total = fp.add(Mux(add_op, x, Mux(positive, v, 0)), Mux(add_op, b, log1p(fp, e)))  # x + b, or m + L(E)
    softplus = Mux(v_nan, quiet, Mux(positive & (v[:31] > SOFTPLUS_THRESHOLD), v, total))
    factor = Mux(square, x, Mux(gate, silu, Mux(is_("rmsnorm"), r_norm, b)))
    prod = fp.mul(x, factor)
    y = fp.signal(x, name="y")
    for name, value in (("add", total), ("mul", prod), ("silu", silu), ("gate", prod), ("rmsnorm", prod),
                        ("softplus", softplus)):
        with fp.m.If(is_(name)):
            fp.m.d.comb += y.eq(value)
    return y, prod


def quantize(fp: _Fp, x, out_type):
    """§1's quant_T(x) for the integer type code `out_type`: round half to even, saturate, NaN -> 0."""
    mag, huge = f32_to_int(fp, x)
    lo = fp.signal(Array(Const(-numerics.INT_RANGE[t][0], WORD + 1) for t in INT_TYPES)[out_type],
                   unsigned(WORD + 1), "lo")  # |min|
    hi = fp.signal(Array(Const(numerics.INT_RANGE[t][1], WORD) for t in INT_TYPES)[out_type], name="hi")
    neg = x[31]
    value = Mux(neg, Mux(huge | (mag > lo), -lo, -mag), Mux(huge | (mag > hi), hi, mag))
    return fp.signal(Mux(is_nan(x), 0, value), signed(WORD), "q")


def argmax_key(x):
    """An integer ordering binary32 values as np.argmax does: -0 = +0, NaN above +inf (all NaNs equal)."""
    mag = x[:31]
    return Mux(is_nan(x), Const(1 << 31, signed(33)), Mux(x[31], -mag, mag))


def chain_length(ops):
    """k: how many of a chain's micro-op codes `ops` are not none (an Amaranth expression)."""
    return sum(((o != MICRO_OPS.index("none")).as_unsigned() for o in ops), Const(0, 3))


def beat_passes(ops, stages: int):
    """The passes of a beat through `stages` micro-op stages: ceil(k / stages), at least 1 (isa.costs'
    vec_beat_cycles)."""
    k = chain_length(ops)
    p = k if stages == 1 else (k + (stages - 1)) // stages
    return Mux(k == 0, 1, p)


def compacted(m: Module, ops, name: str) -> list[Signal]:
    """The chain's micro-op codes other than none, in order, then none: the op of each stage and pass."""
    out = [Signal(len(ops[0]), name=f"{name}{i}") for i in range(len(ops))]
    before = Const(0, 3)  # micro-ops before field j
    for o in ops:
        real = o != MICRO_OPS.index("none")
        for i, s in enumerate(out):
            with m.If(real & (before == i)):
                m.d.comb += s.eq(o)
        before = before + real.as_unsigned()
    return out


def datapath_latency(target) -> int:
    """A one-pass beat presented in cycle t is on `y` in cycle t + this: the dequantize register and one
    register per micro-op stage.  A beat of P passes: t + 1 + vec_stages * P."""
    return 1 + target.vec_stages


def check_stages(target) -> None:
    """The stage structures this datapath builds: one stage that a beat goes round once per micro-op, or one
    stage per micro-op field (with 2 or 3, beats going round again and new beats would have to share the first
    stage)."""
    if target.vec_stages not in (1, N_STAGES):
        raise ValueError(f"the RTL's VEC datapath has one micro-op stage that a beat passes through once per "
                         f"micro-op, or {N_STAGES} in a row: vec_stages must be 1 or {N_STAGES}, "
                         f"got {target.vec_stages}")


class VecDatapath(wiring.Component):
    """vec_lanes lanes of the fused binary32 chain (and argmax's running maximum); see the module docstring."""

    def __init__(self, target: Target):
        check_stages(target)
        self.n_lanes = target.vec_lanes
        self.n_stages = target.vec_stages
        self.latency = datapath_latency(target)
        L = self.n_lanes
        type_bits, op_bits = _VEC["a_type"].bits, _VEC["op0"].bits
        self.ctl_layout = data.StructLayout({
            "valid": 1, "ops": data.ArrayLayout(unsigned(op_bits), N_STAGES), "group": unsigned(_VEC["group"].bits),
            "eps": unsigned(WORD), "out_type": unsigned(type_bits), "out_scale": unsigned(WORD), "sum_pass": 1,
            "group_first": 1, "lanes": range(L + 1), "argmax": 1, "index": unsigned(WORD),
            "passes": range(1, N_STAGES + 1), "pass_": range(N_STAGES)})
        super().__init__({
            "a": In(data.ArrayLayout(unsigned(WORD), L)), "b": In(data.ArrayLayout(unsigned(WORD), L)),
            "a_type": In(unsigned(type_bits)), "b_type": In(unsigned(type_bits)),
            "a_exp": In(signed(_VEC["a_exp"].bits)), "b_exp": In(signed(_VEC["b_exp"].bits)),
            "ops": In(data.ArrayLayout(unsigned(op_bits), N_STAGES)), "group": In(unsigned(_VEC["group"].bits)),
            "eps": In(unsigned(WORD)), "out_type": In(unsigned(type_bits)), "out_scale": In(unsigned(WORD)),
            "sum_pass": In(1), "group_first": In(1), "lanes": In(range(L + 1)),
            "argmax": In(1), "row_first": In(1), "col0": In(unsigned(16)), "valid": In(1),
            "y": Out(data.ArrayLayout(unsigned(WORD), L)), "index": Out(unsigned(WORD)), "y_valid": Out(1),
        })

    def _dequant(self, fp: _Fp, raw, type_code, exp):
        """An operand lane as binary32: integers f32(v) * 2^exp, f32 as is."""
        ints = [raw[:8].as_signed(), raw[:16].as_signed(), raw.as_signed()]
        value = Mux(type_code == TYPES.index("i8"), ints[0], Mux(type_code == TYPES.index("i16"), ints[1], ints[2]))
        as_int = fp.signal(value, signed(WORD), "iv")
        scaled = ldexp(fp, fp.signal(convert_i32(fp.m, as_int, f"{fp.prefix}_cvt{fp.count}"), name="cv"), exp)
        return fp.signal(Mux(type_code == TYPES.index("f32"), raw, scaled), name="dq")

    def _stage(self, m: Module, j: int, ctl, x, bv):
        """Micro-op stage j on the beat (ctl, x, bv) in front of it: its lanes' results (combinational)."""
        L, S = self.n_lanes, self.n_stages
        fp = _Fp(m, f"s{j}")
        op = wire(m, ctl.ops[j] if S == N_STAGES else ctl.ops[(ctl.pass_ * S + j)[:2]], f"s{j}_op")
        rms = wire(m, ctl.valid & (op == MICRO_OPS.index("rmsnorm")), f"s{j}_rms")
        ss = Signal(WORD, name=f"s{j}_ss")  # the group's sum of squares so far
        mean = fp.div(ss, fp.signal(convert_i32(m, Cat(ctl.group, Const(0, 16)).as_signed(), f"s{j}_g"), name="gf"))
        r_norm = fp.div(ONE, fp.sqrt(fp.add(mean, ctl.eps)))
        out = Signal(data.ArrayLayout(unsigned(WORD), L), name=f"s{j}_out")
        acc = fp.signal(Mux(ctl.group_first, 0, ss), name="acc")
        for lane in range(L):
            y, prod = micro_op(fp, op, x[lane], bv[lane], r_norm, ctl.sum_pass & rms)
            m.d.comb += out[lane].eq(y)
            acc = fp.signal(Mux(lane < ctl.lanes, fp.add(acc, prod), acc), name="acc")
        with m.If(rms & ctl.sum_pass):
            m.d.sync += ss.eq(acc)
        return out

    def elaborate(self, platform):
        m = Module()
        L, S = self.n_lanes, self.n_stages
        lanes_layout = data.ArrayLayout(unsigned(WORD), L)

        # ---- dequantize (and argmax's running maximum), one register ----
        fp = _Fp(m, "dq")
        ctl = Signal(self.ctl_layout)
        x = Signal(lanes_layout)
        bv = Signal(lanes_layout)
        best_key = Signal(signed(34))
        best_idx = Signal(unsigned(WORD))
        key, idx = Mux(self.row_first, Const(-(1 << 33), signed(34)), best_key), best_idx
        for lane in range(L):
            k = wire(m, argmax_key(self.a[lane]), f"dq_argmax_key{lane}")
            take = wire(m, (lane < self.lanes) & (k > key), f"dq_take{lane}")
            key = fp.signal(Mux(take, k, key), signed(34), "key")
            idx = fp.signal(Mux(take, self.col0 + lane, idx), unsigned(WORD), "idx")
        with m.If(self.valid & self.argmax):
            m.d.sync += [best_key.eq(key), best_idx.eq(idx)]
        m.d.sync += [ctl.valid.eq(self.valid), ctl.group.eq(self.group), ctl.eps.eq(self.eps),
                     ctl.out_type.eq(self.out_type), ctl.out_scale.eq(self.out_scale), ctl.sum_pass.eq(self.sum_pass),
                     ctl.group_first.eq(self.group_first), ctl.lanes.eq(self.lanes), ctl.argmax.eq(self.argmax),
                     ctl.index.eq(idx), ctl.passes.eq(beat_passes(list(self.ops), S)), ctl.pass_.eq(0)]
        m.d.sync += [ctl.ops[i].eq(o) for i, o in enumerate(compacted(m, list(self.ops), "dq_op"))]
        for lane in range(L):
            m.d.sync += [x[lane].eq(self._dequant(fp, self.a[lane], self.a_type, self.a_exp)),
                         bv[lane].eq(self._dequant(fp, self.b[lane], self.b_type, self.b_exp))]

        # ---- the micro-op stages; with one stage a beat goes round it once per pass ----
        last = (Signal(self.ctl_layout, name="last_ctl"), Signal(lanes_layout, name="last_x"),
                Signal(lanes_layout, name="last_b"))
        if S < N_STAGES:
            again = last[0].valid & (last[0].pass_ + 1 < last[0].passes)
            loop = (Signal(self.ctl_layout, name="loop_ctl"), Signal(lanes_layout, name="loop_x"),
                    Signal(lanes_layout, name="loop_b"))
            m.d.comb += [loop[0].eq(Mux(again, last[0], ctl)), loop[1].eq(Mux(again, last[1], x)),
                         loop[2].eq(Mux(again, last[2], bv))]
            with m.If(again):
                m.d.comb += loop[0].pass_.eq(last[0].pass_ + 1)
            ctl, x, bv = loop
        for j in range(S):
            out = self._stage(m, j, ctl, x, bv)
            nxt = last if j == S - 1 else (Signal(self.ctl_layout, name=f"s{j}_ctl"),
                                           Signal(lanes_layout, name=f"s{j}_x"), Signal(lanes_layout, name=f"s{j}_b"))
            m.d.sync += [nxt[0].eq(ctl), nxt[1].eq(out), nxt[2].eq(bv)]
            ctl, x, bv = nxt

        # ---- output conversion (combinational, into the unit's write), after a beat's last pass ----
        fp = _Fp(m, "out")
        is_f32 = wire(m, ctl.out_type == TYPES.index("f32"), "out_is_f32")
        for lane in range(L):
            q = quantize(fp, fp.mul(x[lane], ctl.out_scale), ctl.out_type)
            m.d.comb += self.y[lane].eq(Mux(is_f32, x[lane], q))
        m.d.comb += [self.index.eq(ctl.index), self.y_valid.eq(ctl.valid & (ctl.pass_ + 1 >= ctl.passes))]
        return m
