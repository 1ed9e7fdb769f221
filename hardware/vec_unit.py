"""The VEC unit: a controller that walks a `vec` or `vec.argmax` op's rows in the buffer and feeds the VEC datapath.

Place in the flow: instantiated by `hardware.machine` for the VEC slot; the
arithmetic is `hardware.vec_datapath.VecDatapath` (docs/NUMERICS.md §6), the
buffer `hardware.buffer`.

Schedule (L = vec_lanes): for each row, for each group of columns (rmsnorm's
`group` when the chain has an rmsnorm, else the whole row), for each pass (two
with an rmsnorm: the sum of squares, then the scaling; else one), for each
block of L columns of the group: one beat, which holds the unit P cycles
(P = ceil(k / vec_stages) for a chain of k micro-ops, at least 1, and 1 for
`vec.argmax`: its passes through the datapath's micro-op stages).  So `vec`
occupies the unit P * rows * ceil(cols / L) cycles, or with an rmsnorm
P * rows * (cols / group) * 2 * ceil(group / L), and `vec.argmax`
rows * ceil(cols / L): the target's `vec_row_tiles` rule in isa/costs.py.
A beat reads its L elements of `a` (row pitch `a_ld`) and of `b` (pitch
`b_ld`, or the broadcast row) through ceil(4 L / word) read ports each, in
its first cycle; the data flows through

    read (1) -> VecDatapath (1 + vec_stages * P) -> write

and the last-pass beats write their L results (dst pitch `dst_ld`) through
as many write ports; an argmax beat that ends a row writes the row's index.
The write comes 1 + datapath_latency cycles after the beat's last cycle
(vec_latency(target): 3 on `small`), which the target's `vec_latency` must
equal (tests/test_hw_vec.py).  The last write of an op reports its table
entry done.

Limits of this build (`check`): at most VEC_LANES_MAX lanes (each lane's
micro-op stages are elaborated in full), vec_stages 1 or 4, and a chain with
at most one rmsnorm (the machine stops with `vec_fields` at issue otherwise).
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data

from fastmamba.hardware.decode import op_layout
from fastmamba.hardware.regions import wire
from fastmamba.hardware.unit import ComputeUnit
from fastmamba.hardware.vec_datapath import (MICRO_OPS, N_STAGES, TYPES, VecDatapath, beat_passes, check_stages,
                                             datapath_latency)
from fastmamba.isa.costs import VEC_MICRO_OP_FIELDS
from fastmamba.isa.dtypes import itemsize
from fastmamba.isa.instructions import OPS

VEC_LANES_MAX = 16
_VEC = OPS["vec"].field_map
B_MODES = _VEC["b_mode"].values
TYPE_SHIFT = [itemsize(t).bit_length() - 1 for t in TYPES]  # log2 of each type's bytes
ARGMAX_OPCODE = OPS["vec.argmax"].opcode
INDEX_BYTES = itemsize("i32")


def vec_latency(target) -> int:
    """The VEC unit's pipeline depth: what the target's vec_latency must be."""
    return (1 + datapath_latency(target) + 1) - 1


def check(target, word_bytes: int) -> None:
    if target.vec_lanes > VEC_LANES_MAX:
        raise ValueError(f"the RTL's VEC unit elaborates every lane's binary32 stages in full: vec_lanes must be at "
                         f"most {VEC_LANES_MAX}, got {target.vec_lanes}")
    check_stages(target)


def rmsnorm_count(ops) -> int:
    return sum((o == MICRO_OPS.index("rmsnorm")).as_unsigned() for o in ops)


class VecUnit(ComputeUnit):
    """The machine's interface as `hardware.lin_unit.LinUnit`'s; `op` holds a `vec` or a `vec.argmax`."""

    pipeline_latency = staticmethod(vec_latency)

    def __init__(self, target, buf, m: Module):
        check(target, buf.word_bytes)
        super().__init__(target, max(op_layout("vec").size, op_layout("vec.argmax").size))
        self.L = target.vec_lanes
        self.W = buf.word_bytes
        self.P = -(-self.L * 4 // self.W)  # ports per operand: L four-byte elements
        self.layout = op_layout("vec")
        self.arg_layout = op_layout("vec.argmax")
        self.a_rd = [buf.read_port(m, f"vec_a{i}") for i in range(self.P)]
        self.b_rd = [buf.read_port(m, f"vec_b{i}") for i in range(self.P)]
        self.wr = [buf.write_port(m, f"vec_dst{i}") for i in range(self.P)]
        type_bits, op_bits = _VEC["a_type"].bits, _VEC["op0"].bits
        self.params = data.StructLayout({
            "argmax": 1, "a": 24, "b": 24, "dst": 24, "rows": 16, "cols": 16, "a_ld": 16, "b_ld": 16, "dst_ld": 16,
            "a_type": type_bits, "a_exp": signed(8), "b_type": type_bits, "b_exp": signed(8),
            "b_mode": _VEC["b_mode"].bits, "ops": data.ArrayLayout(unsigned(op_bits), N_STAGES), "group": 16,
            "eps": 32, "out_type": type_bits, "out_scale": 32, "rms": 1, "glen": 16, "passes": range(1, N_STAGES + 1)})

    def _decode(self, m: Module) -> Signal:
        """The op in `op` as the unit's parameters (argmax: a chain of none on f32 rows of pitch cols)."""
        v = data.View(self.layout, self.op[:self.layout.size])
        av = data.View(self.arg_layout, self.op[:self.arg_layout.size])
        q = Signal(self.params)
        ops = [getattr(v, f) for f in VEC_MICRO_OP_FIELDS]
        rms = rmsnorm_count(ops) != 0
        with m.If(v.opcode == ARGMAX_OPCODE):
            m.d.comb += [q.argmax.eq(1), q.a.eq(av.a), q.dst.eq(av.dst), q.rows.eq(av.rows), q.cols.eq(av.cols),
                         q.a_ld.eq(av.cols), q.a_type.eq(TYPES.index("f32")), q.glen.eq(av.cols),
                         q.out_type.eq(TYPES.index("i32")), q.passes.eq(1)]
        with m.Else():
            m.d.comb += [q.a.eq(v.a), q.b.eq(v.b), q.dst.eq(v.dst), q.rows.eq(v.rows), q.cols.eq(v.cols),
                         q.a_ld.eq(v.a_ld), q.b_ld.eq(v.b_ld), q.dst_ld.eq(v.dst_ld), q.a_type.eq(v.a_type),
                         q.a_exp.eq(v.a_exp), q.b_type.eq(v.b_type), q.b_exp.eq(v.b_exp), q.b_mode.eq(v.b_mode),
                         q.group.eq(v.group), q.eps.eq(v.eps), q.out_type.eq(v.out_type), q.out_scale.eq(v.out_scale),
                         q.rms.eq(rms), q.glen.eq(Mux(rms, v.group, v.cols)),
                         q.passes.eq(beat_passes(ops, self.target.vec_stages))]
            m.d.comb += [q.ops[s].eq(o) for s, o in enumerate(ops)]
        return q

    def elaborate(self, platform):
        m = Module()
        L, W, P = self.L, self.W, self.P
        m.submodules.dp = dp = VecDatapath(self.target)
        LD = datapath_latency(self.target)
        new = self._decode(m)

        run = self.running_op(m, self.params, new, {"row": 16, "gcol": 16, "bc": 16, "ps": 1,
                                                    "sub": range(N_STAGES)})
        p, entry, active, cur, cur_entry, go = run.held, run.entry, run.active, run.cur, run.cur_entry, run.go
        row, gcol, bc, ps, sub = run.regs.values()
        c_row, c_gcol, c_bc, c_ps, c_sub = run.curs.values()

        # a beat holds the unit `passes` cycles: reads in its first, write side from its last
        first = wire(m, c_sub == 0, "vec_first")
        beat_last = wire(m, c_sub + 1 >= cur.passes, "vec_beat_last")
        blk_last = wire(m, c_bc + L >= cur.glen, "vec_blk_last")
        pass_last = wire(m, c_ps == cur.rms, "vec_pass_last")
        group_last = wire(m, c_gcol + cur.glen >= cur.cols, "vec_group_last")
        op_last = wire(m, blk_last & pass_last & group_last & (c_row == cur.rows - 1), "vec_op_last")
        with m.If(go):
            with m.If(op_last & beat_last):
                m.d.sync += active.eq(0)
            with m.Else():
                m.d.sync += [active.eq(1), p.eq(cur), entry.eq(cur_entry), row.eq(c_row), gcol.eq(c_gcol),
                             ps.eq(c_ps), bc.eq(c_bc), sub.eq(0)]
                with m.If(~beat_last):
                    m.d.sync += sub.eq(c_sub + 1)
                with m.Elif(~blk_last):
                    m.d.sync += bc.eq(c_bc + L)
                with m.Elif(~pass_last):
                    m.d.sync += [ps.eq(1), bc.eq(0)]
                with m.Elif(~group_last):
                    m.d.sync += [ps.eq(0), bc.eq(0), gcol.eq(c_gcol + cur.glen)]
                with m.Else():
                    m.d.sync += [ps.eq(0), bc.eq(0), gcol.eq(0), row.eq(c_row + 1)]

        # ---- the beat's reads ----
        c0 = wire(m, c_gcol + c_bc, "vec_c0")
        left_in_block = wire(m, cur.glen - c_bc, "vec_left_in_block")
        n_valid = wire(m, Mux(left_in_block >= L, L, left_in_block), "vec_n_valid")
        shifts = Array(Const(s, 2) for s in TYPE_SHIFT)
        a_addr = wire(m, cur.a + ((c_row * cur.a_ld + c0) << shifts[cur.a_type]), "vec_a_addr")
        b_row = Mux(cur.b_mode == B_MODES.index("full"), c_row * cur.b_ld, 0)
        b_addr = wire(m, cur.b + ((b_row + c0) << shifts[cur.b_type]), "vec_b_addr")
        for i in range(P):
            m.d.comb += [self.a_rd[i].en.eq(go & first), self.a_rd[i].addr.eq(a_addr + i * W),
                         self.b_rd[i].en.eq(go & first & (cur.b_mode != B_MODES.index("none"))),
                         self.b_rd[i].addr.eq(b_addr + i * W)]
        write = Mux(cur.argmax, blk_last, pass_last)
        o_shift = wire(m, shifts[cur.out_type], "vec_o_shift")
        dst_addr = Mux(cur.argmax, cur.dst + c_row * INDEX_BYTES, cur.dst + ((c_row * cur.dst_ld + c0) << o_shift))
        nbytes = Mux(cur.argmax, INDEX_BYTES, n_valid << o_shift)

        side = data.StructLayout({
            "first": 1, "valid": 1, "write": 1, "op_last": 1, "argmax": 1, "entry": 8, "dst": 25,
            "nbytes": range(4 * L + 1), "params": self.params, "sum_pass": 1, "group_first": 1, "lanes": range(L + 1),
            "row_first": 1, "col0": 16})
        s0 = Signal(side)
        m.d.comb += [s0.first.eq(go & first), s0.valid.eq(go & beat_last), s0.write.eq(go & beat_last & write),
                     s0.op_last.eq(op_last), s0.argmax.eq(cur.argmax),
                     s0.entry.eq(cur_entry), s0.dst.eq(dst_addr), s0.nbytes.eq(nbytes), s0.params.eq(cur),
                     s0.sum_pass.eq(cur.rms & (c_ps == 0)), s0.group_first.eq(cur.rms & (c_ps == 0) & (c_bc == 0)),
                     s0.lanes.eq(n_valid), s0.row_first.eq(c0 == 0), s0.col0.eq(c0)]
        stages = [s0]
        for d in range(1 + LD):
            s = Signal(side, name=f"vside{d + 1}")
            m.d.sync += s.eq(stages[-1])
            stages.append(s)
        s1, s_wr = stages[1], stages[1 + LD]

        # ---- into the datapath: lanes of the words read ----
        q = s1.params
        for name, ports, type_code in (("a", self.a_rd, q.a_type), ("b", self.b_rd, q.b_type)):
            raw = wire(m, Cat(*(port.data for port in ports)), f"vec_{name}_raw")
            is_type = [wire(m, type_code == code, f"vec_{name}_is{code}") for code in range(len(TYPES) - 1)]
            lanes = getattr(dp, name)
            for lane in range(L):
                by_type = [raw[lane * 8 * (1 << s):(lane + 1) * 8 * (1 << s)] for s in TYPE_SHIFT]
                value = by_type[-1]
                for code in range(len(TYPES) - 1):
                    value = Mux(is_type[code], by_type[code], value)
                m.d.comb += lanes[lane].eq(value)
        m.d.comb += [dp.valid.eq(s1.first), dp.a_type.eq(q.a_type), dp.b_type.eq(q.b_type), dp.a_exp.eq(q.a_exp),
                     dp.b_exp.eq(q.b_exp), dp.ops.eq(q.ops), dp.group.eq(q.group), dp.eps.eq(q.eps),
                     dp.out_type.eq(q.out_type), dp.out_scale.eq(q.out_scale), dp.sum_pass.eq(s1.sum_pass),
                     dp.group_first.eq(s1.group_first), dp.lanes.eq(s1.lanes), dp.argmax.eq(s1.argmax),
                     dp.row_first.eq(s1.row_first), dp.col0.eq(s1.col0)]

        # ---- the write ----
        out_type = s_wr.params.out_type
        packed = [Cat(*(dp.y[lane][:8 * (1 << s)] for lane in range(L))) for s in TYPE_SHIFT]
        out = Signal(P * W * 8)
        m.d.comb += out.eq(packed[-1])
        for code in range(len(TYPES) - 1):
            with m.If(out_type == code):
                m.d.comb += out.eq(packed[code])
        with m.If(s_wr.argmax):
            m.d.comb += out.eq(dp.index)
        for i, port in enumerate(self.wr):
            left = s_wr.nbytes - i * W
            m.d.comb += [port.en.eq(s_wr.write & (s_wr.nbytes > i * W)), port.addr.eq(s_wr.dst + i * W),
                         port.len.eq(Mux(left >= W, W, left)), port.data.eq(out[i * W * 8:(i + 1) * W * 8])]
        m.d.comb += [self.done.eq(s_wr.valid & s_wr.op_last), self.done_entry.eq(s_wr.entry)]
        return m
