"""The SSM unit: a controller that walks an `ssm` op's tokens, heads and lane blocks and feeds SsmDatapath.

Place in the flow: instantiated by `hardware.machine` for the SSM slot; the
arithmetic is `hardware.ssm_datapath.SsmDatapath` (the NLA's softplus and
exp, the state update, C·state, D·x: docs/NUMERICS.md §4-5), the buffer
`hardware.buffer`.

Schedule (one beat per cycle, no bubbles; P = ssm_headdim_lanes, N =
ssm_dstate_lanes): for each token tt < t, each head i < h, each block of P
channels j0, each block of N state indices k0 (innermost): one beat.  The
op occupies the unit t * h * ceil(p / P) * ceil(n / N) cycles (the target's
`ssm_head_tiles` rule in isa/costs.py).  A beat reads, in its cycle,
dt_raw[tt, i], the head's params (A, D, dt_bias: one 16-byte window), the P
x values of its channels and the N B and N C values of its state indices in
the head's group g = i // hpg (a read port each: the controller counts heads
within a group, no divider); STATE_STAGE cycles later it reads the P state
rows of its block (a port per row) and, in the next cycle (the datapath's
update is combinational there), writes them back; after its last block of
n it writes the P values of y.  So

    read (1) -> SsmDatapath (LATENCY) -> write of y (1)

and LATENCY = 1 + SsmDatapath.LATENCY + 1 - 1 (the last beat reads in the
occupancy's last cycle), which the target's `ssm_latency` must equal
(tests/test_hw_ssm.py).

The state of a lane block is written STATE_STAGE + 1 cycles after its beat
and read again one token later, h * ceil(p / P) * ceil(n / N) beats on: with
two or more beats per token the write has landed; with one (h = 1, p <= P,
n <= N) the read and the previous write fall in the same cycle and the
datapath takes its own previous result (`fwd`).

Limits of this build (checked by `check`): a buffer word holds the head's
params (16 bytes), N int32 state values and P int32 values of y.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data

from fastmamba.hardware.decode import op_layout
from fastmamba.hardware.unit import ComputeUnit
from fastmamba.hardware.ssm_datapath import P_BITS, X_BITS, SsmDatapath

X_BYTES = X_BITS // 8  # xbc and dt are int16
S_BYTES = P_BITS // 8  # params, state and y are int32
PARAMS_BYTES = 4 * S_BYTES  # (A, D, dt_bias, 0) per head


def ssm_latency(target) -> int:
    """The SSM unit's pipeline depth: what the target's ssm_latency must be."""
    return (1 + SsmDatapath.LATENCY + 1) - 1


def check(target, word_bytes: int) -> None:
    """The RTL's own limits on a target (ValueError)."""
    need = {"a head's params (A, D, dt_bias, 0)": PARAMS_BYTES,
            f"ssm_dstate_lanes = {target.ssm_dstate_lanes} int32 state values": target.ssm_dstate_lanes * S_BYTES,
            f"ssm_headdim_lanes = {target.ssm_headdim_lanes} int32 values of y": target.ssm_headdim_lanes * S_BYTES}
    for what, nbytes in need.items():
        if nbytes > word_bytes:
            raise ValueError(f"the RTL's SSM moves {what} ({nbytes} bytes) as one buffer word of {word_bytes} "
                             f"bytes: dma_bytes_per_cycle must be at least {nbytes}")
    if not target.ssm_head_tiles:
        raise ValueError("the RTL's SSM walks heads and lane blocks one beat each: the target needs "
                         "ssm_head_tiles = 1")


class SsmUnit(ComputeUnit):
    """The machine's interface as `hardware.lin_unit.LinUnit`'s."""

    pipeline_latency = staticmethod(ssm_latency)

    def __init__(self, target, buf, m: Module):
        check(target, buf.word_bytes)
        super().__init__(target, op_layout("ssm").size)
        self.P = target.ssm_headdim_lanes
        self.N = target.ssm_dstate_lanes
        self.layout = op_layout("ssm")
        self.dt = buf.read_port(m, "ssm_dt")
        self.params = buf.read_port(m, "ssm_params")
        self.x = buf.read_port(m, "ssm_x")
        self.b = buf.read_port(m, "ssm_b")
        self.c = buf.read_port(m, "ssm_c")
        self.st_rd = [buf.read_port(m, f"ssm_state_rd{j}") for j in range(self.P)]
        self.st_wr = [buf.write_port(m, f"ssm_state_wr{j}") for j in range(self.P)]
        self.y = buf.write_port(m, "ssm_y")

    def elaborate(self, platform):
        m = Module()
        P, N = self.P, self.N
        m.submodules.dp = dp = SsmDatapath(self.target)
        L, SS = SsmDatapath.LATENCY, SsmDatapath.STATE_STAGE
        v = data.View(self.layout, self.op)
        m.d.comb += self.macs_of_op.eq(3 * v.t * v.h * v.p * v.n)

        # the running op and its beat counters (token, head, the head's group and place in it, lane blocks)
        run = self.running_op(m, self.layout, self.op, {n: 16 for n in ("tt", "head", "group", "hc", "jb", "kb")})
        p, entry, active, cur, cur_entry, go = run.held, run.entry, run.active, run.cur, run.cur_entry, run.go
        tt, i, g, hc, jb, kb = run.regs.values()
        c_tt, c_i, c_g, c_hc, c_jb, c_kb = run.curs.values()
        j0 = c_jb * P
        k0 = c_kb * N
        kb_last = k0 + N >= cur.n
        jb_last = j0 + P >= cur.p
        head_last = c_i == cur.h - 1
        tok_last = c_tt == cur.t - 1
        op_last = kb_last & jb_last & head_last & tok_last
        group_last = c_hc == cur.hpg - 1
        with m.If(go):
            with m.If(op_last):
                m.d.sync += active.eq(0)
            with m.Else():
                m.d.sync += [active.eq(1), p.eq(cur), entry.eq(cur_entry),
                             tt.eq(c_tt), i.eq(c_i), g.eq(c_g), hc.eq(c_hc), jb.eq(c_jb), kb.eq(c_kb)]
                with m.If(~kb_last):
                    m.d.sync += kb.eq(c_kb + 1)
                with m.Elif(~jb_last):
                    m.d.sync += [kb.eq(0), jb.eq(c_jb + 1)]
                with m.Elif(~head_last):
                    m.d.sync += [kb.eq(0), jb.eq(0), i.eq(c_i + 1), g.eq(Mux(group_last, c_g + 1, c_g)),
                                 hc.eq(Mux(group_last, 0, c_hc + 1))]
                with m.Else():
                    m.d.sync += [kb.eq(0), jb.eq(0), i.eq(0), g.eq(0), hc.eq(0), tt.eq(c_tt + 1)]

        # ---- the beat's reads ----
        xrow = cur.xbc + c_tt * cur.xbc_ld * X_BYTES
        reads = ((self.dt, cur.dt + (c_tt * cur.dt_ld + c_i) * X_BYTES),
                 (self.params, cur.params + c_i * PARAMS_BYTES),
                 (self.x, xrow + (c_i * cur.p + j0) * X_BYTES),
                 (self.b, xrow + (cur.b_off + c_g * cur.n + k0) * X_BYTES),
                 (self.c, xrow + (cur.c_off + c_g * cur.n + k0) * X_BYTES))
        for port, addr in reads:
            m.d.comb += [port.en.eq(go), port.addr.eq(addr)]
        n_valid = Mux(cur.n - k0 >= N, N, cur.n - k0)
        p_valid = Mux(cur.p - j0 >= P, P, cur.p - j0)
        one_beat_per_token = (cur.h == 1) & (cur.p <= P) & (cur.n <= N)
        state_addr = cur.state + ((c_i * cur.p + j0) * cur.n + k0) * S_BYTES
        y_addr = cur.y + (c_tt * cur.y_ld + c_i * cur.p + j0) * S_BYTES

        side = data.StructLayout({
            "valid": 1, "op_last": 1, "first": 1, "last": 1, "fwd": 1, "n_valid": range(N + 1),
            "p_valid": range(P + 1), "state": len(state_addr), "row_bytes": 16 + 2, "y": len(y_addr),
            "dt_frac": 5, "a_frac": 6, "dbx_shift": 7, "y_shift": 7, "d_shift": 7, "entry": 8})
        s0 = Signal(side)
        m.d.comb += [s0.valid.eq(go), s0.op_last.eq(op_last), s0.first.eq(c_kb == 0), s0.last.eq(kb_last),
                     s0.fwd.eq(one_beat_per_token & (c_tt != 0)), s0.n_valid.eq(n_valid), s0.p_valid.eq(p_valid),
                     s0.state.eq(state_addr), s0.row_bytes.eq(cur.n * S_BYTES), s0.y.eq(y_addr),
                     s0.dt_frac.eq(cur.dt_frac), s0.a_frac.eq(cur.a_frac), s0.dbx_shift.eq(cur.dbx_shift),
                     s0.y_shift.eq(cur.y_shift), s0.d_shift.eq(cur.d_shift), s0.entry.eq(cur_entry)]
        stages = [s0]
        for d in range(1 + L):
            s = Signal(side, name=f"sside{d + 1}")
            m.d.sync += s.eq(stages[-1])
            stages.append(s)
        s1, s_rd, s_wr, s_y = stages[1], stages[SS], stages[1 + SS], stages[1 + L]

        # ---- into the datapath (cycle 0 = the read data's cycle) ----
        def lanes(raw, count, bits):
            return Cat(*(raw[bits * e:bits * e + bits] for e in range(count)))

        m.d.comb += [dp.dt_raw.eq(self.dt.data[:X_BITS].as_signed()),
                     dp.a.eq(self.params.data[0:P_BITS].as_signed()),
                     dp.d.eq(self.params.data[P_BITS:2 * P_BITS].as_signed()),
                     dp.dt_bias.eq(self.params.data[2 * P_BITS:3 * P_BITS].as_signed()),
                     dp.x.eq(lanes(self.x.data, P, X_BITS)), dp.b.eq(lanes(self.b.data, N, X_BITS)),
                     dp.c.eq(lanes(self.c.data, N, X_BITS)), dp.n_valid.eq(s1.n_valid),
                     dp.dt_frac.eq(s1.dt_frac), dp.a_frac.eq(s1.a_frac), dp.dbx_shift.eq(s1.dbx_shift),
                     dp.y_shift.eq(s1.y_shift), dp.d_shift.eq(s1.d_shift), dp.first.eq(s1.first),
                     dp.last.eq(s1.last), dp.fwd.eq(s1.fwd), dp.valid.eq(s1.valid)]

        # ---- the state: P rows read at STATE_STAGE - 1, updated and written back at STATE_STAGE ----
        for j, port in enumerate(self.st_rd):
            m.d.comb += [port.en.eq(s_rd.valid), port.addr.eq(s_rd.state + j * s_rd.row_bytes),
                         dp.state[j].eq(lanes(port.data, N, P_BITS))]
        for j, port in enumerate(self.st_wr):
            m.d.comb += [port.en.eq(s_wr.valid & (j < s_wr.p_valid)), port.addr.eq(s_wr.state + j * s_wr.row_bytes),
                         port.len.eq(s_wr.n_valid * S_BYTES), port.data.eq(dp.new_state[j].as_value())]

        # ---- y ----
        write = s_y.valid & s_y.last
        m.d.comb += [self.y.en.eq(write), self.y.addr.eq(s_y.y), self.y.len.eq(s_y.p_valid * S_BYTES),
                     self.y.data.eq(dp.y.as_value()),
                     self.done.eq(write & s_y.op_last), self.done_entry.eq(s_y.entry)]
        return m
