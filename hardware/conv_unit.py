"""The CONV unit: a controller that walks a `conv` op's operands in the buffer and feeds H2's ConvDatapath.

Place in the flow: instantiated by `hardware.machine` for the CONV slot; the
arithmetic is `hardware.conv_datapath.ConvDatapath` (docs/NUMERICS.md §3),
the buffer `hardware.buffer`.

Schedule (one beat per cycle, no bubbles; C = conv_channels, K =
conv_kernel_max): for each token tt < t, for each block of C channels: one
beat.  The op occupies the unit t * ceil(c / C) cycles (the target's
`conv_row_tiles` rule in isa/costs.py).  A beat reads, in its cycle, the K
rows xx[tt + j] (j < K; xx = concat(state, src): row s < kw - 1 is state
row s, else src row s - (kw - 1)) and the K tap rows of its channel block
(a read port each) and the bias; the data flows through

    read (1) -> ConvDatapath -> write (1)

The last token's beat holds xx[t - 1 .. t + kw - 2] in its taps, which are
the new state's rows (shifted by one): with `upd` it writes them (kw - 1
write ports) beside its dst row.  LATENCY = 1 + ConvDatapath.LATENCY + 1 - 1
(the last beat reads in the occupancy's last cycle), which the target's
`conv_latency` must equal (tests/test_hw_conv.py).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data

from fastmamba.hardware.conv_datapath import OUT_TYPES, ConvDatapath
from fastmamba.hardware.decode import op_layout
from fastmamba.hardware.unit import ComputeUnit

X_BYTES = 2  # src, state and taps are int16


def conv_latency(target) -> int:
    """The CONV unit's pipeline depth: what the target's conv_latency must be."""
    return (1 + ConvDatapath.LATENCY + 1) - 1


def check(target, word_bytes: int) -> None:
    if target.conv_channels * 4 > word_bytes:
        raise ValueError(f"the RTL's CONV moves a block of {target.conv_channels} int32 values as one buffer word of "
                         f"{word_bytes} bytes: conv_channels * 4 must be <= dma_bytes_per_cycle")


class ConvUnit(ComputeUnit):
    """The machine's interface as `hardware.lin_unit.LinUnit`'s."""

    pipeline_latency = staticmethod(conv_latency)

    def __init__(self, target, buf, m: Module):
        check(target, buf.word_bytes)
        super().__init__(target, op_layout("conv").size)
        self.C = target.conv_channels
        self.K = target.conv_kernel_max
        self.layout = op_layout("conv")
        self.xs = [buf.read_port(m, f"conv_x{j}") for j in range(self.K)]
        self.ws = [buf.read_port(m, f"conv_w{j}") for j in range(self.K)]
        self.bias = buf.read_port(m, "conv_bias")
        self.dst = buf.write_port(m, "conv_dst")
        self.st = [buf.write_port(m, f"conv_state{r}") for r in range(self.K - 1)]

    def elaborate(self, platform):
        m = Module()
        C, K = self.C, self.K
        m.submodules.dp = dp = ConvDatapath(self.target)
        L = ConvDatapath.LATENCY
        v = data.View(self.layout, self.op)
        m.d.comb += self.macs_of_op.eq(v.t * v.c * v.kw)

        run = self.running_op(m, self.layout, self.op, {"tt": 16, "cb": 16})
        p, entry, active, cur, cur_entry, go = run.held, run.entry, run.active, run.cur, run.cur_entry, run.go
        tt, cb = run.regs.values()
        c_tt, c_cb = run.curs.values()
        cb_last = (c_cb + 1) * C >= cur.c
        tok_last = c_tt == cur.t - 1
        op_last = cb_last & tok_last
        with m.If(go):
            with m.If(op_last):
                m.d.sync += active.eq(0)
            with m.Else():
                m.d.sync += [active.eq(1), p.eq(cur), entry.eq(cur_entry)]
                with m.If(~cb_last):
                    m.d.sync += [cb.eq(c_cb + 1), tt.eq(c_tt)]
                with m.Else():
                    m.d.sync += [cb.eq(0), tt.eq(c_tt + 1)]

        ch0 = c_cb * C
        n_valid = Mux(cur.c - ch0 >= C, C, cur.c - ch0)
        hist = cur.kw - 1
        for j, port in enumerate(self.xs):
            s = c_tt + j  # row of xx
            state_addr = cur.state + (s * cur.c + ch0) * X_BYTES
            src_addr = cur.src + ((s - hist) * cur.src_ld + ch0) * X_BYTES
            m.d.comb += [port.en.eq(go), port.addr.eq(Mux(s < hist, state_addr, src_addr))]
        for j, port in enumerate(self.ws):
            m.d.comb += [port.en.eq(go), port.addr.eq(cur.wgt + (j * cur.c + ch0) * X_BYTES)]
        m.d.comb += [self.bias.en.eq(go), self.bias.addr.eq(cur.bias + ch0 * 4)]
        out_i32 = cur.out_type == OUT_TYPES.index("i32")
        dst_addr = cur.dst + (c_tt * cur.dst_ld + ch0) * Mux(out_i32, 4, 2)

        side = data.StructLayout({
            "valid": 1, "op_last": 1, "upd": 1, "i32": 1, "kw": 4, "shift": 7, "n_valid": range(C + 1),
            "dst": len(dst_addr), "state": 24, "c": 16, "ch0": 16, "entry": 8})
        s0 = Signal(side)
        m.d.comb += [s0.valid.eq(go), s0.op_last.eq(op_last), s0.upd.eq(cur.upd & tok_last), s0.i32.eq(out_i32),
                     s0.kw.eq(cur.kw), s0.shift.eq(cur.shift), s0.n_valid.eq(n_valid), s0.dst.eq(dst_addr),
                     s0.state.eq(cur.state), s0.c.eq(cur.c), s0.ch0.eq(ch0), s0.entry.eq(cur_entry)]
        stages = [s0]
        for d in range(1 + L):
            s = Signal(side, name=f"cside{d + 1}")
            m.d.sync += s.eq(stages[-1])
            stages.append(s)
        s1, s_wr = stages[1], stages[1 + L]

        x = Signal(data.ArrayLayout(data.ArrayLayout(signed(16), C), K))
        w = Signal(data.ArrayLayout(data.ArrayLayout(signed(16), C), K))
        bias = Signal(data.ArrayLayout(signed(32), C))
        for j in range(K):
            for ch in range(C):
                m.d.comb += [x[j][ch].eq(self.xs[j].data[16 * ch:16 * ch + 16].as_signed()),
                             w[j][ch].eq(self.ws[j].data[16 * ch:16 * ch + 16].as_signed())]
        for ch in range(C):
            m.d.comb += bias[ch].eq(self.bias.data[32 * ch:32 * ch + 32].as_signed())
        m.d.comb += [dp.x.eq(x), dp.w.eq(w), dp.bias.eq(bias), dp.kw.eq(s1.kw), dp.shift.eq(s1.shift),
                     dp.out_type.eq(s1.i32), dp.valid.eq(s1.valid)]

        # the new state rows: taps 1 .. kw-1 of the last token's beat, delayed to the write stage
        taps = x
        for d in range(L):
            r = Signal.like(taps, name=f"ctaps_d{d}")
            m.d.sync += r.eq(taps)
            taps = r
        y16 = Signal(16 * C)
        y32 = Signal(32 * C)
        for ch in range(C):
            m.d.comb += [y16[16 * ch:16 * ch + 16].eq(dp.y[ch][:16]), y32[32 * ch:32 * ch + 32].eq(dp.y[ch])]
        write = s_wr.valid
        m.d.comb += [self.dst.en.eq(write), self.dst.addr.eq(s_wr.dst),
                     self.dst.len.eq(s_wr.n_valid * Mux(s_wr.i32, 4, 2)), self.dst.data.eq(Mux(s_wr.i32, y32, y16)),
                     self.done.eq(write & s_wr.op_last), self.done_entry.eq(s_wr.entry)]
        for r, port in enumerate(self.st):
            row = Signal(16 * C, name=f"cstate_row{r}")
            for ch in range(C):
                m.d.comb += row[16 * ch:16 * ch + 16].eq(taps[r + 1][ch])
            m.d.comb += [port.en.eq(write & s_wr.upd & (r + 1 < s_wr.kw)),
                         port.addr.eq(s_wr.state + (r * s_wr.c + s_wr.ch0) * X_BYTES),
                         port.len.eq(s_wr.n_valid * X_BYTES), port.data.eq(row)]
        return m
