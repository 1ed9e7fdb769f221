"""LIN's arithmetic datapaths (docs/NUMERICS.md §2): Hadamard adder trees + requantizer, the int8 MAC array, rescale.

Place in the flow: `hardware/`'s LIN unit is a controller (it walks the
buffer: activations, weights, accumulators, scales) around these three pure
pipelines; the controller owns every address and every stall.  Each pipeline
takes one operand set per cycle while `valid` is high and never stalls; an
operand set presented in cycle t is visible on the outputs in cycle
t + LATENCY (LATENCY counts pipeline registers; `*_valid` marks the cycles).
Widths come from the target and from the ISA's field table
(`isa.instructions.OPS`), never from literals.  W = `lin_mac_tree_width`,
B = `hadamard_max_block`, R = max(B, W) (the block register's length),
N = `lin_groups * lin_mac_trees`.

`HadamardRequant(target)`, LATENCY = `hadamard_stages + 3` (vc709: 4; also
`HadamardRequant.latency(target)`, without building one).
    In:  `a` ArrayLayout(signed(16), R): the block register (i8 activations
         sign-extended; element c is k position c of the current R-aligned
         window); `hlog2` unsigned(4) (0 .. log2 B; the decoder rejects
         more); `qmul` unsigned(16); `qshift` unsigned(6); `j` unsigned
         range(R // W) (which group of W outputs of the window; one ignored
         bit when R = W); `valid`.
    Out: `q` ArrayLayout(signed(8), W): q[i] = sat_i8(rshift_round(a'[j*W + i]
         * qmul, qshift)), where a' = the window rotated in blocks of
         b = 2^hlog2 (a' = a @ H_b per block; for b < W several blocks lie in
         one group of W); `q_valid`.
    One adder tree per output (the paper's W Hadamard adder trees): output r
    adds every element c of r's block with the Sylvester sign
    (-1)^popcount(c & r & (b - 1)), exactly (signed(16 + log2 R + 1)).  A
    pipeline register follows every `ADDER_LEVELS_PER_STAGE` adder levels
    (`hadamard_stages` of them), then one after the multiply by qmul, one
    after rounding and saturation.

`MacArray(target)`, LATENCY = 2.
    In:  `q` ArrayLayout(signed(8), W) (broadcast to every tree); `w`
         ArrayLayout(ArrayLayout(signed(8), W), N) (tree n's W weights);
         `init` ArrayLayout(signed(32), N) (the accumulators' start: 0, or
         the int32 dst values when acc = 1); `first` (this cycle starts new
         outputs: acc := init + dot), `last` (this cycle ends them); `valid`.
    Out: `total` ArrayLayout(signed(32), N) = sat_i32(acc) after a `last`
         cycle (held until the next); `total_valid` (one cycle per `last`).
    acc_n += sum_i q[i] * w[n][i] each valid cycle, exact: `ACC_BITS` (33)
    bits hold 2^14 * (2^16 - 1) + 2^31, the largest |init + q @ w^T| of one
    op (k < 2^16 by the ISA), so int32 saturation happens once, at the end.
    Stage 1 registers the W products of every tree; stage 2 adds them into
    the accumulator and registers the saturated total.  `first` and `last`
    may be the same cycle (k = W).

`LinRescale(target, lanes=N)`, LATENCY = I32ToF32.LATENCY + F32Mul.LATENCY (3).
    In:  `total` ArrayLayout(signed(32), lanes); `scale` ArrayLayout(unsigned(32),
         lanes) (binary32 bits); `valid`.
    Out: `y` ArrayLayout(unsigned(32), lanes) = bits of f32(total) * scale
         (each lane an `fp32.I32ToF32` then an `fp32.F32Mul`, the scale
         delayed to meet the converted total); `y_valid`.
    `lanes` is the controller's choice: N lanes rescale a whole MacArray
    output in one cycle; fewer lanes take the N totals in several cycles.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from fastmamba.hardware.fixed import adder_tree, rshift_round, saturate
from fastmamba.hardware.fp32 import F32Mul, I32ToF32
from fastmamba.isa.instructions import OPS
from fastmamba.isa.target import Target

_LIN = OPS["lin"].field_map
# The widest activation element (src_type "i8" / "i16"), the requantized and weight elements (int8, §2).
ACT_BITS = max(int(name[1:]) for name in _LIN["src_type"].values)
Q_BITS = 8
ACC_OUT_BITS = 32  # the int32 accumulators at dst
# |q * w| <= 2^14 and k < 2^(k field bits): one op's |init + q @ w^T| < 2^14 * 2^16 + 2^31.
ACC_BITS = (((1 << (2 * Q_BITS - 2)) * ((1 << _LIN["k"].bits) - 1) + (1 << (ACC_OUT_BITS - 1))).bit_length() + 1)
F32_BITS = 32
# A pipeline register after this many levels of an adder tree.
ADDER_LEVELS_PER_STAGE = 4


def _log2(v: int) -> int:
    return v.bit_length() - 1


class HadamardRequant(wiring.Component):
    """W outputs of the block-Hadamard rotation of an activation window, requantized to int8."""

    @staticmethod
    def tree_stages(target: Target) -> int:
        """Register stages inside each adder tree: one per ADDER_LEVELS_PER_STAGE of its log2(R) levels
        (none after the last level, which the sum register follows)."""
        window_bits = _log2(max(target.hadamard_max_block, target.lin_mac_tree_width))
        return max(window_bits - 1, 0) // ADDER_LEVELS_PER_STAGE

    @staticmethod
    def latency(target: Target) -> int:
        """LATENCY of the instance built for `target`, without building one: the tree's stages, then the
        sum, the product by qmul and the rounded, saturated q."""
        return HadamardRequant.tree_stages(target) + 3

    def __init__(self, target: Target):
        self.width = target.lin_mac_tree_width
        self.max_block = target.hadamard_max_block
        self.window = max(self.max_block, self.width)
        self.groups = self.window // self.width
        window_bits = _log2(self.window)
        self.sum_shape = signed(ACT_BITS + window_bits + 1)
        self.hadamard_stages = self.tree_stages(target)
        self.LATENCY = self.latency(target)
        super().__init__({
            "a": In(data.ArrayLayout(signed(ACT_BITS), self.window)),
            "hlog2": In(unsigned(_LIN["hlog2"].bits)),
            "qmul": In(unsigned(_LIN["qmul"].bits)),
            "qshift": In(unsigned(_LIN["qshift"].bits)),
            "j": In(range(max(self.groups, 2))),
            "valid": In(1),
            "q": Out(data.ArrayLayout(signed(Q_BITS), self.width)),
            "q_valid": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        window_bits = _log2(self.window)
        width_bits = _log2(self.width)
        # mask = b - 1 with b = 2^min(hlog2, log2 B): the within-block bits of a position.
        mask = Signal(window_bits + 1)
        for h in range(_log2(self.max_block) + 1):
            with m.If(self.hlog2 >= h):
                m.d.comb += mask.eq((1 << h) - 1)
        j = self.j[:max(window_bits - width_bits, 0)] if self.groups > 1 else Const(0, 0)
        # Controls travel beside the tree's register stages.
        qmul, qshift, valid = self.qmul, self.qshift, self.valid
        sums = []
        for i in range(self.width):
            r = Cat(Const(i, width_bits), j) if width_bits else j
            terms = []
            for c in range(self.window):
                cc = Const(c, window_bits + 1)
                same_block = ((cc ^ r) & ~mask)[:window_bits] == 0
                negate = (cc & r & mask).xor()
                value = self.a[c]
                terms.append(Mux(same_block, Mux(negate, -value, value), 0))
            total, stages = adder_tree(m, terms, f"h{i}", ADDER_LEVELS_PER_STAGE)
            assert stages == self.hadamard_stages, (stages, self.hadamard_stages)
            s = Signal(self.sum_shape, name=f"hsum{i}")
            m.d.sync += s.eq(total)  # the tree's last register
            sums.append(s)
        for stage in range(self.hadamard_stages + 1):
            delayed = [Signal.like(v, name=f"{n}_d{stage}") for v, n in ((qmul, "qmul"), (qshift, "qshift"),
                                                                         (valid, "valid"))]
            m.d.sync += [d.eq(v) for d, v in zip(delayed, (qmul, qshift, valid))]
            qmul, qshift, valid = delayed
        # Multiply by qmul (exact), register; round, saturate, register.
        prods = []
        for i, s in enumerate(sums):
            p = Signal(signed(len(s) + len(qmul)), name=f"scaled{i}")
            m.d.sync += p.eq(s * qmul)
            prods.append(p)
        shift2 = Signal.like(qshift, name="qshift_m")
        valid2 = Signal(name="valid_m")
        m.d.sync += [shift2.eq(qshift), valid2.eq(valid)]
        for i, p in enumerate(prods):
            m.d.sync += self.q[i].eq(saturate(rshift_round(p, shift2), Q_BITS))
        m.d.sync += self.q_valid.eq(valid2)
        return m


class MacArray(wiring.Component):
    """N multiply-add trees of width W over a broadcast int8 vector, exact accumulators, one int32 saturation."""

    LATENCY = 2

    def __init__(self, target: Target):
        self.width = target.lin_mac_tree_width
        self.trees = target.lin_groups * target.lin_mac_trees
        super().__init__({
            "q": In(data.ArrayLayout(signed(Q_BITS), self.width)),
            "w": In(data.ArrayLayout(data.ArrayLayout(signed(Q_BITS), self.width), self.trees)),
            "init": In(data.ArrayLayout(signed(ACC_OUT_BITS), self.trees)),
            "first": In(1),
            "last": In(1),
            "valid": In(1),
            "total": Out(data.ArrayLayout(signed(ACC_OUT_BITS), self.trees)),
            "total_valid": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        first, last, valid = Signal(), Signal(), Signal()
        m.d.sync += [first.eq(self.first), last.eq(self.last), valid.eq(self.valid)]
        init = Signal.like(self.init)
        m.d.sync += init.eq(self.init)
        for n in range(self.trees):
            prods = []
            for i in range(self.width):
                p = Signal(signed(2 * Q_BITS), name=f"p{n}_{i}")
                m.d.sync += p.eq(self.q[i] * self.w[n][i])
                prods.append(p)
            dot, _ = adder_tree(m, prods, f"dot{n}")
            acc = Signal(signed(ACC_BITS), name=f"acc{n}")
            acc_next = Signal(signed(ACC_BITS), name=f"acc_next{n}")
            m.d.comb += acc_next.eq(Mux(first, init[n], acc) + dot)
            with m.If(valid):
                m.d.sync += acc.eq(acc_next)
                with m.If(last):
                    m.d.sync += self.total[n].eq(saturate(acc_next, ACC_OUT_BITS))
        m.d.sync += self.total_valid.eq(valid & last)
        return m


class LinRescale(wiring.Component):
    """`lanes` lanes of f32(total) * scale: an I32ToF32 then an F32Mul per lane."""

    LATENCY = I32ToF32.LATENCY + F32Mul.LATENCY

    def __init__(self, target: Target, lanes: int | None = None):
        self.lanes = target.lin_groups * target.lin_mac_trees if lanes is None else lanes
        if self.lanes < 1:
            raise ValueError(f"LinRescale: lanes must be positive, got {self.lanes}")
        super().__init__({
            "total": In(data.ArrayLayout(signed(ACC_OUT_BITS), self.lanes)),
            "scale": In(data.ArrayLayout(unsigned(F32_BITS), self.lanes)),
            "valid": In(1),
            "y": Out(data.ArrayLayout(unsigned(F32_BITS), self.lanes)),
            "y_valid": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        for lane in range(self.lanes):
            cvt, mul = I32ToF32(), F32Mul()
            m.submodules[f"cvt{lane}"] = cvt
            m.submodules[f"mul{lane}"] = mul
            scale = self.scale[lane]
            for stage in range(I32ToF32.LATENCY):
                delayed = Signal(F32_BITS, name=f"scale{lane}_d{stage}")
                m.d.sync += delayed.eq(scale)
                scale = delayed
            m.d.comb += [
                cvt.a.eq(self.total[lane]), cvt.valid.eq(self.valid),
                mul.a.eq(cvt.y), mul.b.eq(scale), mul.valid.eq(cvt.y_valid),
                self.y[lane].eq(mul.y),
            ]
            if lane == 0:
                m.d.comb += self.y_valid.eq(mul.y_valid)
        return m
