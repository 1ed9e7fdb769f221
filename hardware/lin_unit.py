"""The LIN unit: a controller that walks a `lin` op's operands in the buffer and feeds H2's datapaths.

Place in the flow: instantiated by `hardware.machine` for the LIN slot; the
arithmetic is `hardware.lin_datapath` (HadamardRequant, MacArray,
LinRescale: docs/NUMERICS.md §2), the buffer `hardware.buffer`.

Schedule (one beat per cycle, no bubbles; N = lin_groups * lin_mac_trees
trees of width W = lin_mac_tree_width, R = max(hadamard_max_block, W)):
for each row i < m, for each block of N output channels, for each R-window
of k, for each group j of W positions in the window: one beat.  The op
occupies the unit m * ceil(n / N) * ceil(k / W) cycles (the target's
`lin_row_tiles` rule in isa/costs.py).  A beat reads, in its cycle, the
window of activations (on its first group), W weights for each of the N
trees (a read port per tree), and the N int32 accumulators (acc = 1) and
N scales of its channel block; the data flows through

    read (1) -> HadamardRequant -> MacArray -> LinRescale (or an equal delay for i32) -> write (1)

so that the last beat (in the occupancy's last cycle) has its results in
the buffer LATENCY cycles after the occupancy: LATENCY = the read (1) +
HadamardRequant.LATENCY + MacArray.LATENCY + LinRescale.LATENCY + the write
(1) - 1, which the target's `lin_latency` must equal
(tests/test_hw_lin.py).  The last write of an op reports its table entry done.

Limits of this build (checked by `check`): N int32 values fit one buffer
word (N * 4 <= the DMA's bytes per cycle) and the activation window in a few
words.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data

from fastmamba.hardware.decode import op_layout
from fastmamba.hardware.unit import ComputeUnit
from fastmamba.hardware.lin_datapath import ACT_BITS, HadamardRequant, LinRescale, MacArray
from fastmamba.isa.instructions import OPS

_LIN = OPS["lin"].field_map
ACT_TYPES = _LIN["src_type"].values  # ("i8", "i16")
OUT_TYPES = _LIN["out"].values  # ("i32", "f32")


def lin_latency(target) -> int:
    """The LIN unit's pipeline depth: what the target's lin_latency must be."""
    # the op's last beat reads in the occupancy's last cycle; its result lands a buffer read, the three
    # datapaths and a write later
    return (1 + HadamardRequant.latency(target) + MacArray.LATENCY + LinRescale.LATENCY + 1) - 1


def check(target, word_bytes: int) -> None:
    trees = target.lin_groups * target.lin_mac_trees
    if trees * 4 > word_bytes:
        raise ValueError(f"the RTL's LIN writes its {trees} int32 results as one buffer word of {word_bytes} bytes: "
                         f"lin_groups * lin_mac_trees * 4 must be <= dma_bytes_per_cycle")


class LinUnit(ComputeUnit):
    """Ports for the machine: `start` (the op in `op` issues this cycle), `op` (its raw bits), `entry`;
    `ready` (a new op may issue), `done`/`done_entry` (an op's last result written this cycle),
    `busy_cycle` (a beat this cycle), `macs_of_op` (m * k * n of the op in `op`)."""

    pipeline_latency = staticmethod(lin_latency)

    def __init__(self, target, buf, m: Module):
        check(target, buf.word_bytes)
        super().__init__(target, op_layout("lin").size)
        self.buf = buf
        self.N = target.lin_groups * target.lin_mac_trees
        self.W = target.lin_mac_tree_width
        self.R = max(target.hadamard_max_block, self.W)
        self.B = buf.word_bytes
        self.LATENCY = lin_latency(target)
        layout = op_layout("lin")
        self.layout = layout
        # buffer ports: the activation window, one per tree for weights, accumulators, scales; one write
        self.n_act = -(-self.R * (ACT_BITS // 8) // self.B)
        self.act = [buf.read_port(m, f"lin_act{i}") for i in range(self.n_act)]
        self.wgt = [buf.read_port(m, f"lin_wgt{t}") for t in range(self.N)]
        self.init = buf.read_port(m, "lin_init")
        self.scale = buf.read_port(m, "lin_scale")
        self.wr = buf.write_port(m, "lin_wr")

    def elaborate(self, platform):
        m = Module()
        N, W, R, B = self.N, self.W, self.R, self.B
        m.submodules.hr = hr = HadamardRequant(self.target)
        m.submodules.mac = mac = MacArray(self.target)
        m.submodules.rescale = rescale = LinRescale(self.target)
        LH, LM, LR = hr.LATENCY, MacArray.LATENCY, LinRescale.LATENCY

        v = data.View(self.layout, self.op)
        m.d.comb += self.macs_of_op.eq(v.m * v.k * v.n)
        # the op's parameters, held while it runs; the beat counters (kk: k position of the beat's first element)
        run = self.running_op(m, self.layout, self.op, {"i_row": 16, "nb": 16, "kk": 17})
        p, entry, active, cur, cur_entry, go = run.held, run.entry, run.active, run.cur, run.cur_entry, run.go
        i_row, nb, kk = run.regs.values()
        c_i, c_nb, c_kk = run.curs.values()
        esize = Mux(cur.src_type == ACT_TYPES.index("i16"), 2, 1)
        k_next = c_kk + W
        row_block_last = k_next >= cur.k
        nb_last = (c_nb + 1) * N >= cur.n
        op_last = row_block_last & nb_last & (c_i == cur.m - 1)
        window_first = c_kk[:(R.bit_length() - 1)] == 0 if R > 1 else Const(1)
        first = c_kk == 0
        with m.If(go):
            with m.If(op_last):
                m.d.sync += active.eq(0)
            with m.Else():
                m.d.sync += [active.eq(1), p.eq(cur), entry.eq(cur_entry)]
                with m.If(~row_block_last):
                    m.d.sync += [kk.eq(k_next), nb.eq(c_nb), i_row.eq(c_i)]
                with m.Elif(~nb_last):
                    m.d.sync += [kk.eq(0), nb.eq(c_nb + 1), i_row.eq(c_i)]
                with m.Else():
                    m.d.sync += [kk.eq(0), nb.eq(0), i_row.eq(c_i + 1)]

        # ---- reads of the beat ----
        src_row = cur.src + c_i * cur.src_ld * esize
        win_start = Cat(Const(0, R.bit_length() - 1), c_kk[R.bit_length() - 1:]) if R > 1 else c_kk
        for a_i, port in enumerate(self.act):
            m.d.comb += [port.en.eq(go), port.addr.eq(src_row + win_start * esize + a_i * B)]
        ch0 = c_nb * N
        for t, port in enumerate(self.wgt):
            m.d.comb += [port.en.eq(go), port.addr.eq(cur.wgt + (ch0 + t) * cur.k + c_kk)]
        dst_addr = cur.dst + (c_i * cur.dst_ld + ch0) * 4
        m.d.comb += [self.init.en.eq(go), self.init.addr.eq(dst_addr),
                     self.scale.en.eq(go), self.scale.addr.eq(cur.scale + ch0 * 4)]
        n_valid = Mux(cur.n - ch0 >= N, N, cur.n - ch0)
        k_valid = Mux(cur.k - c_kk >= W, W, cur.k - c_kk)

        # ---- sideband of the beat, delayed to each stage ----
        side = data.StructLayout({
            "valid": 1, "first": 1, "last": 1, "op_last": 1, "window_first": 1, "i16": 1, "f32": 1, "acc": 1,
            "j": range(max(R // W, 2)), "hlog2": 4, "qmul": 16, "qshift": 6, "k_valid": range(W + 1),
            "n_valid": range(N + 1), "addr": len(dst_addr), "entry": 8})
        s0 = Signal(side)
        m.d.comb += [s0.valid.eq(go), s0.first.eq(first), s0.last.eq(row_block_last), s0.op_last.eq(op_last),
                     s0.window_first.eq(window_first), s0.i16.eq(esize == 2),
                     s0.f32.eq(cur.out == OUT_TYPES.index("f32")), s0.acc.eq(cur.acc),
                     s0.j.eq(c_kk[(W.bit_length() - 1):(R.bit_length() - 1)] if R > W else 0),
                     s0.hlog2.eq(cur.hlog2), s0.qmul.eq(cur.qmul), s0.qshift.eq(cur.qshift),
                     s0.k_valid.eq(k_valid), s0.n_valid.eq(n_valid), s0.addr.eq(dst_addr), s0.entry.eq(cur_entry)]
        stages = [s0]
        for d in range(1 + LH + LM + LR):
            s = Signal(side, name=f"side{d + 1}")
            m.d.sync += s.eq(stages[-1])
            stages.append(s)
        s1 = stages[1]  # read data valid
        s_mac = stages[1 + LH]  # MacArray input
        s_wr = stages[1 + LH + LM + LR]  # write

        def delay(value, n, name):
            for d in range(n):
                r = Signal.like(value, name=f"{name}_d{d}")
                m.d.sync += r.eq(value)
                value = r
            return value

        # ---- stage 1: the activation window into the Hadamard block register ----
        raw = Cat(*(port.data for port in self.act))
        elems = []
        for c in range(R):
            e8 = raw[8 * c:8 * c + 8].as_signed()
            e16 = raw[16 * c:16 * c + 16].as_signed()
            elems.append(Mux(s1.i16, e16, e8))
        block_reg = Signal(data.ArrayLayout(signed(ACT_BITS), R))
        block = Signal(data.ArrayLayout(signed(ACT_BITS), R))
        m.d.comb += block.eq(Mux(s1.window_first, Cat(*elems), block_reg))
        with m.If(s1.valid):
            m.d.sync += block_reg.eq(block)
        m.d.comb += [hr.a.eq(block), hr.hlog2.eq(s1.hlog2), hr.qmul.eq(s1.qmul), hr.qshift.eq(s1.qshift),
                     hr.j.eq(s1.j), hr.valid.eq(s1.valid)]

        # weights (zero beyond k and beyond n), accumulators' start, scales: delayed to their stage
        wsig = Signal(data.ArrayLayout(data.ArrayLayout(signed(8), W), N))
        for t, port in enumerate(self.wgt):
            for e in range(W):
                keep = (t < s1.n_valid) & (e < s1.k_valid)
                m.d.comb += wsig[t][e].eq(Mux(keep, port.data[8 * e:8 * e + 8].as_signed(), 0))
        init = Signal(data.ArrayLayout(signed(32), N))
        for t in range(N):
            m.d.comb += init[t].eq(Mux(s1.acc, self.init.data[32 * t:32 * t + 32].as_signed(), 0))
        scale = Signal(data.ArrayLayout(unsigned(32), N))
        m.d.comb += scale.eq(self.scale.data[:32 * N])
        m.d.comb += [mac.q.eq(hr.q), mac.w.eq(delay(wsig, LH, "lin_w")), mac.init.eq(delay(init, LH, "lin_init")),
                     mac.first.eq(s_mac.first), mac.last.eq(s_mac.last), mac.valid.eq(s_mac.valid)]
        m.d.comb += [rescale.total.eq(mac.total), rescale.scale.eq(delay(scale, LH + LM, "lin_scale")),
                     rescale.valid.eq(mac.total_valid)]
        total_i32 = delay(mac.total, LR, "lin_total")

        # ---- write ----
        wr_data = Mux(s_wr.f32, rescale.y.as_value(), total_i32.as_value())
        write = s_wr.valid & s_wr.last
        m.d.comb += [self.wr.en.eq(write), self.wr.addr.eq(s_wr.addr), self.wr.len.eq(s_wr.n_valid * 4),
                     self.wr.data.eq(wr_data),
                     self.done.eq(write & s_wr.op_last), self.done_entry.eq(s_wr.entry)]
        return m
