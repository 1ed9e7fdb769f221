"""SSM's arithmetic datapath (docs/NUMERICS.md §4-5): the NLA's softplus and exp, the state update, C·state, D·x.

Place in the flow: `hardware.ssm_unit` is a controller (it walks tokens,
heads and lane blocks, reads the operands from the buffer and writes y and
the state back) around this pipeline.  P = `ssm_headdim_lanes` channels by
N = `ssm_dstate_lanes` state indices per beat, one beat per cycle while
`valid` is high, no stall.  Cycle 0 is the cycle an operand set is on the
inputs.

`SsmDatapath(target)`, LATENCY = 11, STATE_STAGE = 8.
    In (cycle 0): `dt_raw` signed(16), `a`, `d`, `dt_bias` signed(32) (the
        head's parameters), `x` ArrayLayout(signed(16), P) (channels j0 ..
        j0 + P - 1 of the head), `b`, `c` ArrayLayout(signed(16), N) (state
        indices k0 .. k0 + N - 1 of the head's group), `n_valid` (lanes k >=
        n_valid of `c` count as 0 in the reduction), the op's `dt_frac`,
        `a_frac`, `dbx_shift`, `y_shift`, `d_shift`, and per beat `first`
        (the first lane block of k: the reduction starts from 0), `last` (the
        last one: y is produced), `fwd` (take the state from the previous
        beat's result instead of `state`: the controller sets it when the
        same lanes' state was updated one cycle earlier and is not yet
        readable from the buffer), `valid`.
    In (cycle STATE_STAGE): `state` ArrayLayout(ArrayLayout(signed(32), N), P)
        (state[i, j0 + j, k0 + k]).
    Out (cycle STATE_STAGE, combinational): `new_state`, same layout: the
        updated state (saturated to ssm_state_bits, sign-extended to 32).
    Out (cycle LATENCY): `y` ArrayLayout(signed(32), P), `y_valid` (a beat
        with `last`): y = sat_i32(rshift_round(sum over the op's lane
        blocks of C·state, y_shift) + rshift_round(D·x, d_shift)).
    Stages (a register after each): 0 s = dt_raw + dt_bias and the split of
    e^(-|s|)'s exponent (segment, offset, integer part); 1 the table point
    p; 2 e = rshift_round(p, -u); 3 dt = softplus (saturated to nla_bits);
    4 z = sat_i32(rshift_round(dt·A, a_frac)) and dt·x; 5 the split of
    exp(z), and dt·x·B rounded (the state's increment); 6 the table point;
    7 dA; 8 the state update (the unit writes it this cycle); 9 the products
    C·state; 10 their sum, the accumulation over lane blocks, y.
"""

from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from fastmamba.hardware.fixed import adder_tree, rshift_round, saturate
from fastmamba.isa import numerics
from fastmamba.isa.instructions import OPS
from fastmamba.isa.target import Target

_SSM = OPS["ssm"].field_map
X_BITS = 16  # x, B, C and dt_raw are int16 (docs/NUMERICS.md §5)
P_BITS = 32  # A, D, dt_bias and the stored state are int32
Y_BITS = 32
# The accumulator of C·state over the lane blocks: |C·state| <= 2^15 * 2^31 per term, n < 2^16 terms.
ACC_BITS = 15 + 31 + _SSM["n"].bits + 2


def exp_split(m: Module, z, frac, segments: int, bits: int, name: str) -> dict:
    """exp_q's first steps (NUMERICS §4) as registers one cycle later: seg, dv and the final shift -u (clamped to
    bits + 1, which already rounds every table point to 0: p < 2^bits).  `z` signed, `frac` unsigned."""
    log2s = segments.bit_length() - 1
    zc = Mux(z < 0, z, 0)
    y = (zc * numerics.LOG2E_NUM) >> numerics.LOG2E_SHIFT  # floor
    u = y >> frac  # floor, <= 0
    v = (y - (u << frac))[:bits].as_unsigned()  # 0 <= v < 2^frac <= 2^(bits - 1)
    seg_shift = (frac - log2s)[:len(frac)].as_unsigned()
    seg = Signal(range(segments), name=f"{name}_seg")
    dv = Signal(bits, name=f"{name}_dv")  # < 2^(frac - log2 S) <= 2^(bits - 1 - log2 S)
    shift = Signal(range(bits + 2), name=f"{name}_sh")
    neg_u = -u
    m.d.sync += [seg.eq(v >> seg_shift), dv.eq(v - ((v >> seg_shift) << seg_shift)),
                 shift.eq(Mux(neg_u > bits + 1, bits + 1, neg_u))]
    return {"seg": seg, "dv": dv, "shift": shift}


def exp_point(m: Module, seg, dv, seg_shift, segments: int, bits: int, name: str) -> Signal:
    """p = base[seg] + ((slope[seg] * dv) >> (frac - log2 S)), registered (2^(v / 2^frac) in Q1.(bits-1))."""
    base, slope = numerics.exp2_table(segments, bits)
    bases = Array(Const(int(b), unsigned(bits + 1)) for b in base[:segments])
    slopes = Array(Const(int(s), unsigned(bits)) for s in slope)
    p = Signal(bits + 1, name=f"{name}_p")
    m.d.sync += p.eq(bases[seg] + ((slopes[seg] * dv) >> seg_shift))
    return p


class SsmDatapath(wiring.Component):
    """P x N lanes of the selective scan's state update, their C·state reduction, D·x; the NLA for one head."""

    LATENCY = 11
    STATE_STAGE = 8

    def __init__(self, target: Target):
        self.P = target.ssm_headdim_lanes
        self.N = target.ssm_dstate_lanes
        self.bits = target.nla_bits
        self.segments = target.nla_segments
        self.state_bits = target.ssm_state_bits
        lanes_pn = data.ArrayLayout(data.ArrayLayout(signed(P_BITS), self.N), self.P)
        super().__init__({
            "dt_raw": In(signed(X_BITS)), "a": In(signed(P_BITS)), "d": In(signed(P_BITS)),
            "dt_bias": In(signed(P_BITS)),
            "x": In(data.ArrayLayout(signed(X_BITS), self.P)),
            "b": In(data.ArrayLayout(signed(X_BITS), self.N)),
            "c": In(data.ArrayLayout(signed(X_BITS), self.N)),
            "n_valid": In(range(self.N + 1)),
            "dt_frac": In(unsigned(_SSM["dt_frac"].bits)), "a_frac": In(unsigned(_SSM["a_frac"].bits)),
            "dbx_shift": In(unsigned(_SSM["dbx_shift"].bits)), "y_shift": In(unsigned(_SSM["y_shift"].bits)),
            "d_shift": In(unsigned(_SSM["d_shift"].bits)),
            "first": In(1), "last": In(1), "fwd": In(1), "valid": In(1),
            "state": In(lanes_pn),
            "new_state": Out(lanes_pn),
            "y": Out(data.ArrayLayout(signed(Y_BITS), self.P)),
            "y_valid": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        P, N, bits, S = self.P, self.N, self.bits, self.segments

        def delay(value, n: int, name: str):
            for d in range(n):
                r = Signal.like(value, name=f"{name}_d{d + 1}")
                m.d.sync += r.eq(value)
                value = r
            return value

        # per-beat controls, delayed to the stage that uses them
        frac = [self.dt_frac] + [Signal.like(self.dt_frac, name=f"frac_d{i + 1}") for i in range(6)]
        for i in range(6):
            m.d.sync += frac[i + 1].eq(frac[i])

        # ---- 0: s, and the split of e^(-|s|) ----
        s0 = self.dt_raw + self.dt_bias  # signed(34)
        e1 = exp_split(m, Mux(s0 > 0, -s0, s0), self.dt_frac, S, bits, "sp")
        s1 = delay(s0, 1, "s")
        # ---- 1: the table point ----
        p2 = exp_point(m, e1["seg"], e1["dv"], (frac[1] - (S.bit_length() - 1))[:len(frac[1])].as_unsigned(),
                       S, bits, "sp")
        sh2 = delay(e1["shift"], 1, "sp_sh")
        s2 = delay(s1, 1, "s")
        # ---- 2: e^(-|s|) in Q1.(bits-1) ----
        ex3 = Signal(bits + 1, name="sp_exp")
        m.d.sync += ex3.eq(rshift_round(p2, sh2))
        s3 = delay(s2, 1, "s")
        # ---- 3: dt = clip(s + e or e, 0, 2^bits - 1) with e in frac fraction bits ----
        e = rshift_round(ex3, (bits - 1 - frac[3])[:len(frac[3])].as_unsigned())
        dt4 = Signal(bits, name="dt")
        raw_dt = Mux(s3 > 0, s3 + e, e)
        m.d.sync += dt4.eq(Mux(raw_dt > (1 << bits) - 1, (1 << bits) - 1, raw_dt))
        # ---- 4: z = sat_i32(rshift_round(dt * A, a_frac)); dt * x ----
        a4 = delay(self.a, 4, "a")
        a_frac4 = delay(self.a_frac, 4, "a_frac")
        x4 = delay(self.x, 4, "x")
        z5 = Signal(signed(P_BITS), name="z")
        m.d.sync += z5.eq(saturate(rshift_round(dt4 * a4, a_frac4), P_BITS))
        dtx5 = Signal(data.ArrayLayout(signed(bits + X_BITS + 1), P), name="dtx")
        for j in range(P):
            m.d.sync += dtx5[j].eq(dt4 * x4[j])
        # ---- 5: the split of exp(z); the increment rshift_round(dt * x * B, dbx_shift) ----
        e6 = exp_split(m, z5, frac[5], S, bits, "ex")
        b5 = delay(self.b, 5, "b")
        dbx5 = delay(self.dbx_shift, 5, "dbx")
        inc_bits = bits + 2 * X_BITS + 1
        inc6 = Signal(data.ArrayLayout(data.ArrayLayout(signed(inc_bits), N), P), name="inc")
        for j in range(P):
            for k in range(N):
                m.d.sync += inc6[j][k].eq(rshift_round(dtx5[j] * b5[k], dbx5))
        # ---- 6: the table point ----
        p7 = exp_point(m, e6["seg"], e6["dv"], (frac[6] - (S.bit_length() - 1))[:len(frac[6])].as_unsigned(),
                       S, bits, "ex")
        sh7 = delay(e6["shift"], 1, "ex_sh")
        inc7 = delay(inc6, 1, "inc")
        # ---- 7: dA in Q1.(bits-1) ----
        da8 = Signal(bits + 1, name="dA")
        m.d.sync += da8.eq(rshift_round(p7, sh7))
        inc8 = delay(inc7, 1, "inc")
        # ---- 8: the state update (the previous beat's result when fwd) ----
        fwd8 = delay(self.fwd, 8, "fwd")
        ns9 = Signal.like(self.new_state, name="ns")
        lo, hi = -(1 << (self.state_bits - 1)), (1 << (self.state_bits - 1)) - 1
        for j in range(P):
            for k in range(N):
                old = Mux(fwd8, ns9[j][k], self.state[j][k])
                upd = rshift_round(da8 * old, bits - 1) + inc8[j][k]
                clipped = Mux(upd > hi, hi, Mux(upd < lo, lo, upd))
                m.d.comb += self.new_state[j][k].eq(clipped)
        valid8 = delay(self.valid, 8, "valid")
        with m.If(valid8):
            m.d.sync += ns9.eq(self.new_state)
        # ---- 9: the products C * state (0 beyond n) ----
        c9 = delay(self.c, 9, "c")
        nv9 = delay(self.n_valid, 9, "n_valid")
        prods10 = Signal(data.ArrayLayout(data.ArrayLayout(signed(X_BITS + P_BITS), N), P), name="cs")
        for j in range(P):
            for k in range(N):
                m.d.sync += prods10[j][k].eq(Mux(k < nv9, c9[k] * ns9[j][k], 0))
        # ---- 10: the sum over k, accumulated over the lane blocks; y ----
        first10 = delay(self.first, 10, "first")
        last10 = delay(self.last, 10, "last")
        valid10 = delay(self.valid, 10, "valid")
        y_shift10 = delay(self.y_shift, 10, "y_shift")
        dx = Signal(data.ArrayLayout(signed(P_BITS + X_BITS), P), name="dx")
        for j in range(P):
            m.d.comb += dx[j].eq(rshift_round(self.d * self.x[j], self.d_shift))
        dx10 = delay(dx, 10, "dx")
        acc = Signal(data.ArrayLayout(signed(ACC_BITS), P), name="acc")
        for j in range(P):
            part, _ = adder_tree(m, [prods10[j][k] for k in range(N)], f"cs{j}")
            total = Mux(first10, 0, acc[j]) + part
            with m.If(valid10):
                m.d.sync += acc[j].eq(total)
            m.d.sync += self.y[j].eq(saturate(rshift_round(total, y_shift10) + dx10[j], Y_BITS))
        m.d.sync += self.y_valid.eq(valid10 & last10)
        return m
