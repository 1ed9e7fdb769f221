"""CONV's arithmetic datapath (docs/NUMERICS.md §3): depthwise taps, bias, rounding shift, saturation.

Place in the flow: `hardware/`'s CONV unit is a controller (it reads src,
state, taps and bias from the buffer, keeps the last kw - 1 rows, writes dst
and the new state) around this pure pipeline.  One token of `conv_channels`
channels per cycle while `valid` is high, no stall; an operand set presented
in cycle t is on `y` in cycle t + LATENCY.  C = `conv_channels`,
K = `conv_kernel_max`.

`ConvDatapath(target)`, LATENCY = 3.
    In:  `x` ArrayLayout(ArrayLayout(signed(16), C), K): x[j][c] = xx[t + j, c]
         (xx = concat(state, src); slot j holds the j-th oldest of the kw
         rows, so slot kw - 1 is the current token); `w`
         ArrayLayout(ArrayLayout(signed(16), C), K): w[j][c] = wgt[j, c];
         `bias` ArrayLayout(signed(32), C); `kw` unsigned(4) (2 .. K; slots
         j >= kw are ignored whatever they hold); `shift` unsigned(7)
         (0 .. 127); `out_type` unsigned(1) (the ISA's code: 0 = i16,
         1 = i32); `valid`.
    Out: `y` ArrayLayout(signed(32), C): y[c] = sat_out(rshift_round(
         sum_{j<kw} w[j][c] * x[j][c] + bias[c], shift)), an i16 result
         sign-extended; `y_valid`.
    Stage 1 registers the K products of every lane (zero beyond kw), stage 2
    their exact sum with the bias (`acc_bits` = 34 bits for K = 4: |acc| <
    K * 2^30 + 2^31), stage 3 the rounded, saturated result.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from fastmamba.hardware.fixed import adder_tree, rshift_round, saturate
from fastmamba.isa.instructions import OPS
from fastmamba.isa.target import Target

_CONV = OPS["conv"].field_map
X_BITS = 16  # src, state and taps are int16 (docs/NUMERICS.md §3)
BIAS_BITS = 32
OUT_TYPES = _CONV["out_type"].values  # the field's codes: index = code
OUT_BITS = tuple(int(name[1:]) for name in OUT_TYPES)
Y_BITS = max(OUT_BITS)


class ConvDatapath(wiring.Component):
    """conv_channels lanes of a kw-tap dot product plus bias, rounding shift and saturation to i16 / i32."""

    LATENCY = 3

    def __init__(self, target: Target):
        self.channels = target.conv_channels
        self.kernel = target.conv_kernel_max
        # |w * x| <= 2^30 per tap, |bias| <= 2^31.
        self.acc_bits = (self.kernel * (1 << (2 * X_BITS - 2)) + (1 << (BIAS_BITS - 1))).bit_length() + 1
        taps = data.ArrayLayout(data.ArrayLayout(signed(X_BITS), self.channels), self.kernel)
        super().__init__({
            "x": In(taps),
            "w": In(taps),
            "bias": In(data.ArrayLayout(signed(BIAS_BITS), self.channels)),
            "kw": In(unsigned(_CONV["kw"].bits)),
            "shift": In(unsigned(_CONV["shift"].bits)),
            "out_type": In(unsigned(_CONV["out_type"].bits)),
            "valid": In(1),
            "y": Out(data.ArrayLayout(signed(Y_BITS), self.channels)),
            "y_valid": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        # Controls travel beside the data: stage 1 -> 2 -> 3.
        shift1, out1, valid1 = Signal.like(self.shift), Signal.like(self.out_type), Signal()
        shift2, out2, valid2 = Signal.like(self.shift), Signal.like(self.out_type), Signal()
        m.d.sync += [shift1.eq(self.shift), out1.eq(self.out_type), valid1.eq(self.valid),
                     shift2.eq(shift1), out2.eq(out1), valid2.eq(valid1), self.y_valid.eq(valid2)]
        bias1 = Signal.like(self.bias)
        m.d.sync += bias1.eq(self.bias)
        for c in range(self.channels):
            prods = []
            for j in range(self.kernel):
                p = Signal(signed(2 * X_BITS), name=f"p{c}_{j}")
                m.d.sync += p.eq(Mux(self.kw > j, self.w[j][c] * self.x[j][c], 0))
                prods.append(p)
            total, _ = adder_tree(m, prods + [bias1[c]], f"acc{c}")
            acc = Signal(signed(self.acc_bits), name=f"acc{c}")
            m.d.sync += acc.eq(total)
            rounded = rshift_round(acc, shift2)
            result = saturate(rounded, OUT_BITS[0])
            for code in range(1, len(OUT_BITS)):
                result = Mux(out2 == code, saturate(rounded, OUT_BITS[code]), result)
            m.d.sync += self.y[c].eq(result)
        return m
