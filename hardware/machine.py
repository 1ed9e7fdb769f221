"""The accelerator's top level: control (issue rule, semaphores, hazards, errors), the DMA engines, the buffer.

Place in the flow: `hardware.build` turns `Machine(target)` into Verilog and a
Verilator library; the C++ harness (hardware/harness/harness.cpp) serves its
DDR port and its host port.  The control follows docs/ACCELERATOR.md as
simulator/engine.py implements it, but applies every effect when the hardware
performs it, so a missing semaphore or a too-short delay shows up as a
detected hazard or a wrong value, never silently:

- Issue: bundle i+1 no earlier than issue(i) + 1 + delay(i); a bundle issues
  as a whole once its `ctl.wait` is satisfied (semaphore), every compute slot's
  unit is free (structural) and the DMA queue has room (dma_queue); a stall
  cycle counts against the first cause that holds it.
- Checks at issue, in slot order (the simulator's order): zero counts, the
  semaphore field, alignment and bounds of every region (`hardware.regions`),
  then RAW/WAR/WAW overlaps with the in-flight table, which holds every issued
  operation's byte ranges until the unit reports it really complete.
- DMA: one DDR channel in issue order.  A transfer's beat i (up to
  `dma_bytes_per_cycle` bytes of one row: `dma_row_bursts` = 1) leaves the
  address stage at start + i; the harness answers a read, or acknowledges a
  write, `dma_latency - DMA_STAGES` cycles after it sees the request, so the
  last beat lands at start + transfer + dma_latency, when the semaphore
  increments and the table entry retires (the simulator's completion cycle).
- `ctl.halt`: the run ends once nothing is in flight; `cycles` =
  max(halt's issue + 1, last completion), as the engine defines it.
- An error latches a code, the bundle, the slot and two words of detail
  (`ERRORS`), and stops the machine.

Time 0 is the first cycle after `start`; `rtl_cycles` counts every clock until
`done` (including the drain).
"""

from __future__ import annotations

from amaranth.hdl import (Array, Cat, ClockDomain, ClockSignal, Const, DomainRenamer, Module, Mux, ResetSignal, Signal,
                          unsigned)
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from fastmamba.isa.costs import VEC_MICRO_OP_FIELDS
from fastmamba.isa.instructions import OPS, SLOTS
from fastmamba.isa.numerics import MICRO_OPS_WITH_B
from fastmamba.isa.target import CONV_KERNEL_MIN, Target

from fastmamba.hardware.buffer import Buffer
from fastmamba.hardware.decode import RTL_SLOTS, BundleFetch, op_layout
from fastmamba.hardware.conv_unit import ConvUnit
from fastmamba.hardware.lin_unit import LinUnit
from fastmamba.hardware.ssm_unit import SsmUnit
from fastmamba.hardware.vec_unit import B_MODES, VecUnit, rmsnorm_count
from fastmamba.hardware.vec_datapath import MICRO_OPS
from fastmamba.hardware.regions import SPACES, op_ranges, wire

DMA_STAGES = 1  # the address stage between a beat and the DDR port (docs/RTL.md)
ERRORS = ("none", "unimplemented", "zero_count", "semaphore", "misaligned", "out_of_range", "RAW", "WAR", "WAW",
          "deadlock", "ldg_index", "dma_queue", "table_full", "run_off_end", "cycle_limit", "lin_block", "conv_kw",
          "ssm_dt_frac",
          "vec_fields")
ERROR_CODE = {name: i for i, name in enumerate(ERRORS)}
# Counts the simulator's units require to be >= 1 (simulator/units/*: check_positive).
POSITIVE_FIELDS = {"ld": ("rows", "row_bytes"), "ldg": ("rows", "row_bytes"), "st": ("rows", "row_bytes"),
                   "lin": ("m", "k", "n"), "conv": ("t", "c"),
                   "ssm": ("t", "h", "p", "n", "hpg"), "vec": ("rows", "cols"), "vec.argmax": ("rows", "cols")}
DMA_KINDS = ("ld", "ldg", "st")
ISSUE_SLOTS = ("LD", "ST", "LIN", "CONV", "SSM", "VEC")  # slots whose operations can enter the in-flight table
COMPUTE_SLOTS = tuple(s for s in ISSUE_SLOTS if s not in ("LD", "ST"))
COUNTERS = ("cycles", "rtl_cycles", "bundles", "ops", "macs", "ddr_bytes_read", "ddr_bytes_written",
            "stall_semaphore", "stall_structural", "stall_dma_queue",
            "busy_LD", "busy_ST", "busy_LIN", "busy_CONV", "ops_LD", "ops_ST", "ops_LIN", "ops_CONV",
            "busy_SSM", "ops_SSM",
            "busy_VEC", "ops_VEC")
ADDR_BITS = 41  # DDR addresses and span ends (40-bit fields)


def _positions(op: str) -> dict[int, int]:
    """Region index of `op` -> its position in the in-flight table (0: the DDR range; 1..: buffer ranges)."""
    from fastmamba.hardware.regions import region_forms

    longest = max((forms for _, forms in region_forms(op)), key=len)
    out: dict[int, int] = {}
    nxt = 1
    for i, rf in enumerate(longest):
        if rf.space == "ddr":
            assert 0 not in out.values(), f"{op}: more than one DDR region"
            out[i] = 0
        else:
            out[i] = nxt
            nxt += 1
    return out


def _access(op: str, positions: dict[int, int]) -> dict[int, tuple[bool, bool]]:
    """Table position -> (can read, can write) of `op`, over every combination of its flags."""
    from fastmamba.hardware.regions import region_forms

    out: dict[int, tuple[bool, bool]] = {}
    for _, forms in region_forms(op):
        for i, rf in enumerate(forms):
            r, w = out.get(positions[i], (False, False))
            out[positions[i]] = (r or rf.access in ("r", "rw"), w or rf.access in ("w", "rw"))
    return out


def _union(accesses) -> dict[int, tuple[bool, bool]]:
    out: dict[int, tuple[bool, bool]] = {}
    for acc in accesses:
        for pos, (r, w) in acc.items():
            r0, w0 = out.get(pos, (False, False))
            out[pos] = (r0 or r, w0 or w)
    return dict(sorted(out.items()))


def check_target(target: Target) -> None:
    """The RTL's own limits on a target (raised as ValueError; the backend words them as InputError)."""
    rate = target.dma_bytes_per_cycle
    if rate != int(rate) or int(rate) & (int(rate) - 1):
        raise ValueError(f"the RTL moves whole bytes per DMA beat: dma_bytes_per_cycle must be a power of two, "
                         f"got {rate:g}")
    if not target.dma_row_bursts:
        raise ValueError("the RTL's DMA moves each row as its own burst: the target needs dma_row_bursts = 1")
    if target.dma_latency < DMA_STAGES + 1:
        raise ValueError(f"the RTL's DMA has {DMA_STAGES} address stage(s): dma_latency must be >= {DMA_STAGES + 1}")


def table_entries(target: Target, compute_latencies) -> int:
    """In-flight operations at most: the DMA queue, plus latency + 1 per compute unit (occupancy >= 1)."""
    return target.dma_queue_depth + sum(lat + 1 for lat in compute_latencies)


def _any(terms):
    out = Const(0)
    for t in terms:
        out = out | t
    return out


def vec_fields_bad(v):
    """A `vec` the simulator refuses (a pitch below cols, add/mul/gate without b, rmsnorm's group not dividing
    cols), or one the RTL's VEC unit does not run (two rmsnorms in the chain)."""
    ops = [getattr(v, f) for f in VEC_MICRO_OP_FIELDS]
    full, none = v.b_mode == B_MODES.index("full"), v.b_mode == B_MODES.index("none")
    bad = (v.a_ld < v.cols) | (v.dst_ld < v.cols) | (full & (v.b_ld < v.cols))
    for o in ops:
        bad = bad | (none & sum((o == MICRO_OPS.index(n) for n in MICRO_OPS_WITH_B), Const(0)).bool())
    n_rms = rmsnorm_count(ops)
    return bad | (n_rms > 1) | ((n_rms == 1) & ((v.group == 0) | ((v.cols % Mux(v.group == 0, 1, v.group)) != 0)))


class Machine(wiring.Component):
    def __init__(self, target: Target, imem_words: int = 4096, units=None):
        check_target(target)
        self.target = target
        self.imem_words = imem_words
        self.W = int(target.dma_bytes_per_cycle)
        self.units = dict(units or {})  # slot -> compute unit factory (hardware.units)
        self.fetch = BundleFetch(imem_words)
        self.buf = Buffer(target.buffer_bytes, self.W)
        self.n_sems = target.semaphores
        self.entries = table_entries(target, [u.pipeline_latency(target) for u in self.units.values()])
        # the slots whose operations enter the in-flight table: the DMA engines and the compute units built
        self.issue_slots = tuple(s for s in ISSUE_SLOTS if s in ("LD", "ST") or s in self.units)
        # Table positions: 0 holds an op's DDR range (ld, ldg, st have one), 1.. its buffer ranges, narrower.
        self.positions = {op: _positions(op) for op, spec in OPS.items() if spec.slot in self.issue_slots}
        self.n_regions = 1 + max(len(p) - (0 in p.values()) for p in self.positions.values())
        # Position -> (can read, can write) of each issuing slot's ops: which range pairs can ever conflict.
        self.slot_access = {slot: _union(_access(op, self.positions[op]) for op, spec in OPS.items()
                                         if spec.slot == slot and spec.slot in RTL_SLOTS)
                            for slot in self.issue_slots}
        # The table is one group of entries per issuing unit (the DMA engines share the queue's): a group's
        # entries hold that unit's ops only, so each (slot, group) pair compares only the positions that can
        # conflict.  Sizes: the DMA queue, and latency + 1 per compute unit (table_entries).
        sizes: dict[tuple[str, ...], int] = {("LD", "ST"): target.dma_queue_depth}
        for slot in self.issue_slots:
            if slot in self.units:
                sizes[(slot,)] = self.units[slot].pipeline_latency(target) + 1
        self.groups: list[tuple[tuple[str, ...], range]] = []
        for slots, size in sizes.items():
            first = self.groups[-1][1].stop if self.groups else 0
            self.groups.append((slots, range(first, first + size)))
        assert self.groups[-1][1].stop == self.entries
        self.buf_bits = (int(target.buffer_bytes) + 1).bit_length()
        self.rd_tag_layout = data.StructLayout({
            "buf": unsigned(self.buf.addr_bits), "len": range(self.W + 1), "last": unsigned(1),
            "sem": unsigned(8), "entry": range(self.entries)})
        self.wr_tag_layout = data.StructLayout({"last": unsigned(1), "sem": unsigned(8),
                                                "entry": range(self.entries)})
        members = {
            "load_en": In(1), "load_addr": In(self.fetch.row_bits), "load_data": In(len(self.fetch.load_data)),
            "start": In(1), "ddr_size": In(ADDR_BITS), "prog_words": In(self.fetch.addr_bits + 1),
            "running": Out(1), "done": Out(1),
            "err": Out(8), "err_bundle": Out(32), "err_slot": Out(4), "err_info0": Out(64), "err_info1": Out(64),
            # DDR port (served by the harness)
            "rd_en": Out(1), "rd_addr": Out(ADDR_BITS), "rd_len": Out(range(self.W + 1)),
            "rd_tag": Out(self.rd_tag_layout.size),
            "rsp_en": In(1), "rsp_data": In(self.W * 8), "rsp_tag": In(self.rd_tag_layout.size),
            "wr_en": Out(1), "wr_addr": Out(ADDR_BITS), "wr_len": Out(range(self.W + 1)), "wr_data": Out(self.W * 8),
            "wr_tag": Out(self.wr_tag_layout.size),
            "ack_en": In(1), "ack_tag": In(self.wr_tag_layout.size),
        }
        for name in COUNTERS:
            members[f"cnt_{name}"] = Out(64)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        t = self.target
        W, E, R = self.W, self.entries, self.n_regions
        ISSUE_SLOTS = self.issue_slots
        # Clock gating for the simulator's sake (docs/RTL.md, "Simulation speed"): Verilator evaluates the logic
        # of a clock domain only on its clock's edges, so each part with its own gated clock costs nothing in the
        # cycles its clock is off.  A gate's enable is a register of the falling edge (a latch-based clock gate's
        # timing) and holds in every cycle in which a register of its domain would change, so that the gated
        # machine computes what the ungated one does.  `issue`: the instruction memory's writes and what changes
        # only at `start` or when a bundle issues (the program counter, the bundle count, the in-flight table's
        # ranges): the decode of the bundle and its checks are evaluated once per bundle, not once per cycle.
        # `table`: the in-flight table's valid bits, which change at start, at issue and when an op completes:
        # the conflicts with the in-flight ops are evaluated when the table or the bundle changes.
        m.domains.neg = ClockDomain("neg", clk_edge="neg", reset_less=True, local=True)
        m.domains.issue = ClockDomain("issue", local=True)
        m.domains.table = ClockDomain("table", local=True)
        issue_clk_en = Signal()
        table_clk_en = Signal()
        m.d.comb += [ClockSignal("neg").eq(ClockSignal()), ClockSignal("issue").eq(ClockSignal() & issue_clk_en),
                     ResetSignal("issue").eq(ResetSignal()), ClockSignal("table").eq(ClockSignal() & table_clk_en),
                     ResetSignal("table").eq(ResetSignal())]
        fetch = self.fetch
        m.submodules.fetch = DomainRenamer({"sync": "issue"})(fetch)
        self.buf.add_to(m)
        m.d.comb += [fetch.load_en.eq(self.load_en), fetch.load_addr.eq(self.load_addr),
                     fetch.load_data.eq(self.load_data)]

        # ---------------- state ----------------
        running = Signal()
        done = Signal()
        now = Signal(64)
        rtl_cycles = Signal(64)
        pc = Signal(self.fetch.addr_bits + 1)
        bundle_idx = Signal(32)
        idle = Signal(24)  # cycles until the next bundle may issue
        halting = Signal()
        halt_time = Signal(64)
        err = Signal(8)
        err_bundle = Signal(32)
        err_slot = Signal(4)
        err_info0 = Signal(64)
        err_info1 = Signal(64)
        counters = {name: Signal(64, name=f"c_{name}") for name in COUNTERS}
        # the run's DDR size and program length, taken at `start`: no check depends on an input combinationally
        # (Verilator evaluates logic that does on every eval of the harness)
        ddr_size = Signal(ADDR_BITS)
        prog_words = Signal.like(self.prog_words)
        m.d.comb += [self.running.eq(running), self.done.eq(done), self.err.eq(err),
                     self.err_bundle.eq(err_bundle), self.err_slot.eq(err_slot), self.err_info0.eq(err_info0),
                     self.err_info1.eq(err_info1), fetch.pc.eq(pc)]
        for name in COUNTERS:
            m.d.comb += getattr(self, f"cnt_{name}").eq(counters[name])
        sem_val = Array(Signal(32, name=f"sem{i}") for i in range(self.n_sems + 1))
        sem_pending = Array(Signal(16, name=f"sem_pend{i}") for i in range(self.n_sems + 1))
        dma_inflight = Signal(range(t.dma_queue_depth + 3))

        # in-flight table
        ent_valid = Signal(E)
        ent_bundle = [Signal(32, name=f"ent{e}_bundle") for e in range(E)]
        ent_slot = [Signal(4, name=f"ent{e}_slot") for e in range(E)]
        group_of = {slot: g for g, (slots, _) in enumerate(self.groups) for slot in slots}
        group_access = [_union(self.slot_access[s] for s in slots) for slots, _ in self.groups]

        def width(r):
            return ADDR_BITS if r == 0 else self.buf_bits

        # a range a position does not hold is [MAX, 0): it overlaps nothing, so no valid bit is compared
        ent_rng = [{r: {k: Signal(w, name=f"ent{e}_r{r}_{k}") for k, w in
                        (("lo", width(r)), ("hi", width(r)), ("read", 1), ("write", 1))}
                    for r in group_access[g]} for g, (_, entries) in enumerate(self.groups) for e in entries]

        # ---------------- decode the bundle at pc ----------------
        slot_index = {s: SLOTS.index(s) for s in SLOTS}
        present = {s: fetch.mask[slot_index[s]] for s in RTL_SLOTS}
        views = {}  # (slot, op) -> struct view
        is_op = {}
        for op, spec in OPS.items():
            if spec.slot not in RTL_SLOTS:
                continue
            layout = op_layout(op)
            raw = getattr(fetch, f"op_{spec.slot}")
            views[op] = data.View(layout, raw[:layout.size])
            is_op[op] = wire(m, present[spec.slot] & (getattr(fetch, f"opcode_{spec.slot}") == spec.opcode),
                             f"is_{op.replace('.', '_')}")
        wait, halt = is_op["ctl.wait"], is_op["ctl.halt"]
        wv = views["ctl.wait"]

        # ---------------- per-op issue checks, in slot order ----------------
        # Each op of the bundle: its ranges (muxed over the ops of its slot) and its first error.
        slot_ranges = {}
        slot_error = {}  # slot -> (flag, code, info0, info1)
        for slot in ISSUE_SLOTS:
            ops = [op for op, spec in OPS.items() if spec.slot == slot]
            rng = [dict(valid=Const(0), lo=Const(0, ADDR_BITS), hi=Const(0, ADDR_BITS), read=Const(0), write=Const(0))
                   for _ in range(R)]
            e_flag, e_code, e_info0, e_info1 = Const(0), Const(0, 8), Const(0, 64), Const(0, 64)
            for op in ops:
                v = views.get(op)
                if v is None:  # an op of this slot the RTL lacks (none among ISSUE_SLOTS today)
                    continue
                sel = is_op[op]
                ranges = op_ranges(m, op, v, len(self.positions[op]))
                # this op's first error: zero count, semaphore field, then per region alignment, bounds
                f, c, i0, i1 = Const(0), Const(0, 8), Const(0, 64), Const(0, 64)
                checks = []
                for k, name in enumerate(POSITIVE_FIELDS.get(op, ())):
                    checks.append((getattr(v, name) == 0, "zero_count", Const(k), Const(0)))
                if "sem" in OPS[op].field_map:
                    checks.append((v.sem > self.n_sems, "semaphore", v.sem, Const(0)))
                if op == "lin":  # the Hadamard block: at most the target's, dividing k
                    block = Const(1, 16) << v.hlog2
                    checks.append(((block > t.hadamard_max_block) | ((v.k & (block - 1)) != 0), "lin_block",
                                   v.hlog2, Const(0)))
                if op == "conv":
                    checks.append(((v.kw < CONV_KERNEL_MIN) | (v.kw > t.conv_kernel_max), "conv_kw", v.kw, Const(0)))
                if op == "ssm":  # the NLA's fraction bits: [log2 nla_segments, nla_bits - 1]
                    low, high = t.nla_segments.bit_length() - 1, t.nla_bits - 1
                    checks.append(((v.dt_frac < low) | (v.dt_frac > high), "ssm_dt_frac", v.dt_frac, Const(0)))
                if op == "vec":
                    checks.append((vec_fields_bad(v), "vec_fields", Const(0), Const(0)))
                for r, rg in enumerate(ranges):
                    size = Mux(rg["space"] == SPACES.index("ddr"), ddr_size, Const(t.buffer_bytes))
                    checks.append((rg["valid"] & ~rg["align_ok"], "misaligned", Const(r), Const(0)))
                    checks.append((rg["valid"] & (rg["hi"] > size), "out_of_range", Const(r), rg["hi"]))
                for j, (cond, code, a, b) in enumerate(reversed(checks)):
                    cond = wire(m, cond, f"{op.replace('.', '_')}_chk{len(checks) - 1 - j}")
                    f, c = Mux(cond, 1, f), Mux(cond, ERROR_CODE[code], c)
                    i0, i1 = Mux(cond, a, i0), Mux(cond, b, i1)
                e_flag, e_code = Mux(sel, f, e_flag), Mux(sel, c, e_code)
                e_info0, e_info1 = Mux(sel, i0, e_info0), Mux(sel, i1, e_info1)
                for i, pos in self.positions[op].items():
                    for key in rng[pos]:
                        rng[pos][key] = Mux(sel, ranges[i][key], rng[pos][key])
            sig = {r: {k: Signal(width(r) if k in ("lo", "hi") else 1, name=f"{slot}_r{r}_{k}")
                       for k in ("lo", "hi", "read", "write")} for r in self.slot_access[slot]}
            for r in sig:
                valid = rng[r]["valid"]
                m.d.comb += [sig[r]["lo"].eq(Mux(valid, rng[r]["lo"], (1 << width(r)) - 1)),
                             sig[r]["hi"].eq(Mux(valid, rng[r]["hi"], 0)),
                             sig[r]["read"].eq(valid & rng[r]["read"]), sig[r]["write"].eq(valid & rng[r]["write"])]
            slot_ranges[slot] = sig
            flag = Signal(name=f"{slot}_chk_err")
            code = Signal(8, name=f"{slot}_chk_code")
            i0s = Signal(64, name=f"{slot}_chk_i0")
            i1s = Signal(64, name=f"{slot}_chk_i1")
            m.d.comb += [flag.eq(e_flag & present[slot]), code.eq(e_code), i0s.eq(e_info0), i1s.eq(e_info1)]
            slot_error[slot] = (flag, code, i0s, i1s)

        def overlap(a, b):  # (a range not held is [MAX, 0): never overlaps)
            return (a["lo"] < b["hi"]) & (b["lo"] < a["hi"])

        def conflict(mine, mine_access, theirs, their_access, name):
            """(RAW, WAW, WAR) of my ranges against another op's ranges (position 0 with 0: DDR; the rest: BUF),
            as Signals; only the pairs and terms the ops' accesses allow are built (two reads never conflict)."""
            terms: dict[str, list] = {"raw": [], "waw": [], "war": []}
            for p, (p_read, p_write) in mine_access.items():
                mine_terms: dict[tuple[str, str], list] = {}  # (kind, my access) -> overlaps & their access
                for q, (q_read, q_write) in their_access.items():
                    if (p == 0) != (q == 0):
                        continue
                    need = [(kind, ka, kb) for kind, ka, kb, ok in
                            (("raw", "read", "write", p_read and q_write),
                             ("waw", "write", "write", p_write and q_write),
                             ("war", "write", "read", p_write and q_read)) if ok]
                    if not need:
                        continue
                    a, b = mine[p], theirs[q]
                    o = overlap(a, b)
                    if len(need) > 1:
                        o = wire(m, o, f"{name}_o{p}{q}")
                    for kind, ka, kb in need:
                        mine_terms.setdefault((kind, ka), []).append(o & b[kb])
                for (kind, ka), ts in mine_terms.items():
                    terms[kind].append(mine[p][ka] & _any(ts))
            return tuple(wire(m, _any(terms[k]), f"{name}_{k}") for k in ("raw", "waw", "war"))

        def oldest(cands, name):
            """The candidate with the smallest key (its slot and bundle) among those hit, as a tree of pairwise
            picks: (hit, key, code) Signals."""
            level = 0
            while len(cands) > 1:
                nxt = []
                for i in range(0, len(cands) - 1, 2):
                    (ha, ka, ca), (hb, kb, cb) = cands[i], cands[i + 1]
                    before = wire(m, ka < kb, f"{name}_lt{level}_{i // 2}")  # level 0: of `issue` registers only
                    take_a = wire(m, ha & (~hb | before), f"{name}_t{level}_{i // 2}")
                    nxt.append((wire(m, ha | hb, f"{name}_h{level}_{i // 2}"),
                                wire(m, Mux(take_a, ka, kb), f"{name}_k{level}_{i // 2}"),
                                wire(m, Mux(take_a, ca, cb), f"{name}_c{level}_{i // 2}")))
                if len(cands) % 2:
                    nxt.append(cands[-1])
                cands, level = nxt, level + 1
            return cands[0]

        def code_of(raw, waw):
            return Mux(raw, ERROR_CODE["RAW"], Mux(waw, ERROR_CODE["WAW"], ERROR_CODE["WAR"]))

        hazard = {}  # slot -> (flag, code, other bundle, other slot)
        for si, slot in enumerate(ISSUE_SLOTS):
            mine, access = slot_ranges[slot], self.slot_access[slot]
            # the in-flight ops: the oldest conflicting one (issue order: bundle, then slot), as the simulator
            cands = []
            for g, (_, entries) in enumerate(self.groups):
                for e in entries:
                    raw, waw, war = conflict(mine, access, ent_rng[e], group_access[g], f"{slot}_e{e}")
                    hit = wire(m, ent_valid[e] & (raw | waw | war), f"{slot}_hit{e}")
                    cands.append((hit, Cat(ent_slot[e], ent_bundle[e]), code_of(raw, waw)))
            t_hit, t_key, t_code = oldest(cands, f"{slot}_old")
            t_slot, t_bundle = t_key[:4], t_key[4:]
            # then the ops of this bundle issued before it (slot order)
            h_flag, h_code, h_bundle, h_slot = t_hit, t_code, t_bundle, t_slot
            for earlier in reversed(ISSUE_SLOTS[:si]):
                raw, waw, war = conflict(mine, access, slot_ranges[earlier], self.slot_access[earlier],
                                         f"{slot}_{earlier}")
                any_ = wire(m, ~t_hit & present[earlier] & (raw | waw | war), f"{slot}_hit_{earlier}")
                h_flag, h_code = Mux(any_, 1, h_flag), Mux(any_, code_of(raw, waw), h_code)
                h_bundle, h_slot = Mux(any_, bundle_idx, h_bundle), Mux(any_, SLOTS.index(earlier), h_slot)
            flag = Signal(name=f"{slot}_haz")
            m.d.comb += flag.eq(h_flag & present[slot])
            hazard[slot] = (flag, h_code, h_bundle, h_slot)

        # ---------------- DMA: descriptor queue and channel ----------------
        desc_layout = data.StructLayout({
            "kind": unsigned(2), "buf": unsigned(24), "ddr": unsigned(40), "idx": unsigned(24), "rows": unsigned(16),
            "row_bytes": unsigned(24), "ddr_stride": unsigned(40), "buf_stride": unsigned(24), "limit": unsigned(32),
            "sem": unsigned(8), "entry": range(E), "bundle": unsigned(32)})
        depth = t.dma_queue_depth
        queue = Array(Signal(desc_layout, name=f"dq{i}") for i in range(depth))
        q_head = Signal(range(depth))
        q_count = Signal(range(depth + 1))

        def desc_of(op, entry):
            v = views[op]
            d = Signal(desc_layout, name=f"desc_{op.replace('.', '_')}")
            m.d.comb += [d.kind.eq(DMA_KINDS.index(op)), d.buf.eq(v.buf), d.ddr.eq(v.ddr), d.rows.eq(v.rows),
                         d.row_bytes.eq(v.row_bytes), d.ddr_stride.eq(v.ddr_stride), d.buf_stride.eq(v.buf_stride),
                         d.sem.eq(v.sem), d.entry.eq(entry), d.bundle.eq(bundle_idx)]
            if op == "ldg":
                m.d.comb += [d.idx.eq(v.idx), d.limit.eq(v.limit)]
            return d

        # channel state
        ch_active = Signal()
        ch = Signal(desc_layout)
        ch_row = Signal(16)
        ch_col = Signal(24)
        ch_ddr_row = Signal(ADDR_BITS)
        ch_buf_row = Signal(25)

        # ---------------- issue decision ----------------
        eligible = Signal()
        wait_ok = Signal()
        units_free = Signal()
        queue_ok = Signal()
        issue = Signal()
        n_dma = Signal(2)
        sem_sel = wv.sem
        sem_in_range = (sem_sel >= 1) & (sem_sel <= self.n_sems)
        m.d.comb += [
            eligible.eq(running & ~halting & (idle == 0) & (err == 0)),
            wait_ok.eq(~wait | (sem_in_range & (sem_val[sem_sel] >= wv.count))),
            n_dma.eq(present["LD"] + present["ST"]),
            queue_ok.eq(dma_inflight + n_dma <= depth),
        ]
        unit_ready = {}
        for slot in COMPUTE_SLOTS:
            unit_ready[slot] = Signal(name=f"{slot}_ready")
        free = Const(1)
        for slot in COMPUTE_SLOTS:
            free = free & (~present[slot] | unit_ready[slot])
        m.d.comb += units_free.eq(free)

        # entry allocation: the k-th issuing op takes the k-th free entry
        alloc = {}
        taken = Const(0, E)
        for slot in ISSUE_SLOTS:  # in its group: LD before ST in the DMA's
            free_mask = Signal(E, name=f"{slot}_freemask")
            m.d.comb += free_mask.eq(~ent_valid & ~taken)
            idx = Signal(range(E), name=f"{slot}_entry")
            found = Signal(name=f"{slot}_entry_ok")
            for e in reversed(self.groups[group_of[slot]][1]):
                with m.If(free_mask[e]):
                    m.d.comb += [idx.eq(e), found.eq(1)]
            alloc[slot] = (idx, found)
            taken = taken | Mux(present[slot], (Const(1, E) << idx)[:E], 0)
        table_full = Const(0)
        for slot in ISSUE_SLOTS:
            table_full = table_full | (present[slot] & ~alloc[slot][1])

        # errors of the bundle, in the simulator's order
        pre_error = Signal()  # found while the bundle waits (before its ops' checks)
        pre_code = Signal(8)
        pre_info0 = Signal(64)
        deadlock = wait & sem_in_range & (sem_val[sem_sel] + sem_pending[sem_sel] < wv.count)
        pc_off_end = pc >= prog_words
        missing_unit = Const(0)
        for slot in COMPUTE_SLOTS:
            if slot not in self.units:
                missing_unit = missing_unit | present[slot]
        with m.If(pc_off_end):
            m.d.comb += [pre_error.eq(1), pre_code.eq(ERROR_CODE["run_off_end"])]
        with m.Elif(fetch.bad_slot | missing_unit):
            m.d.comb += [pre_error.eq(1), pre_code.eq(ERROR_CODE["unimplemented"])]
        with m.Elif(wait & ~sem_in_range):
            m.d.comb += [pre_error.eq(1), pre_code.eq(ERROR_CODE["semaphore"]), pre_info0.eq(sem_sel)]
        with m.Elif(deadlock):
            m.d.comb += [pre_error.eq(1), pre_code.eq(ERROR_CODE["deadlock"]), pre_info0.eq(sem_sel)]
        with m.Elif(wait_ok & units_free & (n_dma > depth)):
            m.d.comb += [pre_error.eq(1), pre_code.eq(ERROR_CODE["dma_queue"])]
        can_issue = Signal()
        m.d.comb += can_issue.eq(eligible & ~pre_error & wait_ok & units_free & queue_ok)
        op_error = Signal()
        op_code = Signal(8)
        op_slot = Signal(4)
        op_info0 = Signal(64)
        op_info1 = Signal(64)
        chain = []
        for slot in ISSUE_SLOTS:
            flag, code, i0, i1 = slot_error[slot]
            chain.append((flag, code, Const(SLOTS.index(slot), 4), i0, i1))
            hflag, hcode, hb, hs = hazard[slot]
            chain.append((hflag, hcode, Const(SLOTS.index(slot), 4), hb, hs))
        chain.append((table_full, Const(ERROR_CODE["table_full"], 8), Const(0, 4), Const(0, 64), Const(0, 64)))
        for flag, code, sl, i0, i1 in reversed(chain):
            with m.If(flag):
                m.d.comb += [op_error.eq(1), op_code.eq(code), op_slot.eq(sl), op_info0.eq(i0), op_info1.eq(i1)]
        # (m.If chains in comb: later statements win, so iterate reversed to give the first slot priority)
        m.d.comb += issue.eq(can_issue & ~op_error)
        m.d.neg += issue_clk_en.eq(issue | self.start | self.load_en | ResetSignal())

        # ---------------- compute units ----------------
        unit_done = {}  # slot -> (pulse, entry)
        units_built = {}
        unit_start = {}
        # Each unit, with its buffer ports, runs on its own gated clock, on while the unit has a beat (the issuing
        # op's first included) and until its pipeline has drained (a count of cycles since the last beat).
        for slot, factory in self.units.items():
            dom = f"u_{slot}"
            m.domains += ClockDomain(dom, local=True)
            with self.buf.ports_in(dom):
                unit = factory(t, self.buf, m)
            m.submodules[f"unit_{slot}"] = DomainRenamer({"sync": dom})(unit)
            drain_cycles = unit.pipeline_latency(t) + 2
            drain = Signal(range(drain_cycles + 1), name=f"{slot}_drain")
            clk_en = Signal(name=f"{slot}_clk_en")
            with m.If(unit.busy_cycle):
                m.d.sync += drain.eq(drain_cycles)
            with m.Elif(drain != 0):
                m.d.sync += drain.eq(drain - 1)
            m.d.neg += clk_en.eq(unit.busy_cycle | (drain != 0) | ResetSignal())
            m.d.comb += [ClockSignal(dom).eq(ClockSignal() & clk_en), ResetSignal(dom).eq(ResetSignal())]
            start = issue & present[slot]
            m.d.comb += [unit.start.eq(start), unit.op.eq(getattr(fetch, f"op_{slot}")[:len(unit.op)]),
                         unit.entry.eq(alloc[slot][0]), unit_ready[slot].eq(unit.ready)]
            unit_done[slot] = (unit.done, unit.done_entry)
            units_built[slot] = unit
            unit_start[slot] = start
        for slot in COMPUTE_SLOTS:
            if slot not in self.units:
                m.d.comb += unit_ready[slot].eq(1)

        # ---------------- DMA channel: beat generation (address stage A) ----------------
        ld_issue = issue & present["LD"]
        st_issue = issue & present["ST"]
        ld_desc_ld = desc_of("ld", alloc["LD"][0])
        ld_desc_ldg = desc_of("ldg", alloc["LD"][0])
        ld_desc = Signal(desc_layout)
        m.d.comb += ld_desc.eq(Mux(is_op["ldg"], ld_desc_ldg, ld_desc_ld))
        st_desc = desc_of("st", alloc["ST"][0])
        # the descriptor the channel serves this cycle: the active one, else the queue's head, else the LD
        # (then the ST) issuing now: transfers take the channel in issue order.
        cur = Signal(desc_layout)
        cur_valid = Signal()
        cur_row = Signal(16)
        cur_col = Signal(24)
        cur_ddr_row = Signal(ADDR_BITS)
        cur_buf_row = Signal(25)
        from_issue_ld = Signal()
        from_issue_st = Signal()
        q_pop = Signal()
        head = queue[q_head]
        with m.If(ch_active):
            m.d.comb += [cur.eq(ch), cur_valid.eq(1), cur_row.eq(ch_row), cur_col.eq(ch_col),
                         cur_ddr_row.eq(ch_ddr_row), cur_buf_row.eq(ch_buf_row)]
        with m.Elif(q_count != 0):
            m.d.comb += [cur.eq(head), cur_valid.eq(1), cur_ddr_row.eq(head.ddr), cur_buf_row.eq(head.buf),
                         q_pop.eq(1)]
        with m.Elif(ld_issue):
            m.d.comb += [cur.eq(ld_desc), cur_valid.eq(1), cur_ddr_row.eq(ld_desc.ddr),
                         cur_buf_row.eq(ld_desc.buf), from_issue_ld.eq(1)]
        with m.Elif(st_issue):
            m.d.comb += [cur.eq(st_desc), cur_valid.eq(1), cur_ddr_row.eq(st_desc.ddr),
                         cur_buf_row.eq(st_desc.buf), from_issue_st.eq(1)]
        remaining = cur.row_bytes - cur_col
        beat_len = Signal(range(W + 1))
        m.d.comb += beat_len.eq(Mux(remaining > W, W, remaining))
        row_end = remaining <= W
        last = row_end & (cur_row == cur.rows - 1)
        # stage A registers
        a_valid = Signal()
        a = Signal(desc_layout)
        a_ddr = Signal(ADDR_BITS)
        a_buf = Signal(25)
        a_len = Signal(range(W + 1))
        a_last = Signal()
        a_col = Signal(24)
        a_row = Signal(16)
        dma_rd = self.buf.read_port(m, "dma_rd")
        dma_wr = self.buf.write_port(m, "dma_wr")
        kind_ldg = DMA_KINDS.index("ldg")
        kind_st = DMA_KINDS.index("st")
        m.d.sync += a_valid.eq(0)
        stopped = (err != 0) | ~running
        with m.If(cur_valid & ~stopped):
            m.d.sync += [a_valid.eq(1), a.eq(cur), a_ddr.eq(cur_ddr_row + cur_col), a_buf.eq(cur_buf_row + cur_col),
                         a_len.eq(beat_len), a_last.eq(last), a_col.eq(cur_col), a_row.eq(cur_row)]
            m.d.comb += [dma_rd.en.eq(1),
                         dma_rd.addr.eq(Mux(cur.kind == kind_ldg, cur.idx + (cur_row << 2), cur_buf_row + cur_col))]
            with m.If(cur.kind == kind_st):
                m.d.sync += [counters["busy_ST"].eq(counters["busy_ST"] + 1),
                             counters["ddr_bytes_written"].eq(counters["ddr_bytes_written"] + beat_len)]
            with m.Else():
                m.d.sync += [counters["busy_LD"].eq(counters["busy_LD"] + 1),
                             counters["ddr_bytes_read"].eq(counters["ddr_bytes_read"] + beat_len)]
            # advance within the descriptor
            with m.If(last):
                m.d.sync += ch_active.eq(0)
            with m.Else():
                m.d.sync += [ch_active.eq(1), ch.eq(cur)]
                with m.If(row_end):
                    m.d.sync += [ch_row.eq(cur_row + 1), ch_col.eq(0),
                                 ch_ddr_row.eq(cur_ddr_row + cur.ddr_stride),
                                 ch_buf_row.eq(cur_buf_row + cur.buf_stride)]
                with m.Else():
                    m.d.sync += [ch_row.eq(cur_row), ch_col.eq(cur_col + W), ch_ddr_row.eq(cur_ddr_row),
                                 ch_buf_row.eq(cur_buf_row)]
        # queue pushes: issued DMA ops the channel did not take directly
        push_ld = ld_issue & ~from_issue_ld
        push_st = st_issue & ~from_issue_st
        tail = (q_head + q_count)
        tail0 = Signal(range(depth))
        tail1 = Signal(range(depth))
        m.d.comb += [tail0.eq(tail % depth), tail1.eq((tail + push_ld) % depth)]
        with m.If(push_ld):
            m.d.sync += queue[tail0].eq(ld_desc)
        with m.If(push_st):
            m.d.sync += queue[tail1].eq(st_desc)
        m.d.sync += [q_count.eq(q_count + push_ld + push_st - q_pop),
                     q_head.eq(Mux(q_pop, (q_head + 1) % depth, q_head))]

        # stage B: the DDR request (combinational from stage A and the buffer read)
        rd_tag = Signal(self.rd_tag_layout)
        wr_tag = Signal(self.wr_tag_layout)
        idx_val = dma_rd.data[:32].as_signed()
        ldg_bad = Signal()
        b_go = a_valid & ~stopped
        m.d.comb += [rd_tag.buf.eq(a_buf), rd_tag.len.eq(a_len), rd_tag.last.eq(a_last), rd_tag.sem.eq(a.sem),
                     rd_tag.entry.eq(a.entry), wr_tag.last.eq(a_last), wr_tag.sem.eq(a.sem),
                     wr_tag.entry.eq(a.entry), self.rd_tag.eq(rd_tag), self.wr_tag.eq(wr_tag),
                     self.rd_len.eq(a_len), self.wr_len.eq(a_len), self.wr_addr.eq(a_ddr),
                     self.wr_data.eq(dma_rd.data)]
        with m.If(b_go):
            with m.If(a.kind == kind_st):
                m.d.comb += self.wr_en.eq(1)
            with m.Elif(a.kind == kind_ldg):
                m.d.comb += ldg_bad.eq((idx_val < 0) | (idx_val.as_unsigned() >= a.limit))
                m.d.comb += [self.rd_en.eq(~ldg_bad),
                             self.rd_addr.eq(a.ddr + idx_val.as_unsigned() * a.ddr_stride + a_col)]
            with m.Else():
                m.d.comb += [self.rd_en.eq(1), self.rd_addr.eq(a_ddr)]

        # responses: buffer writes and completions
        rsp = data.View(self.rd_tag_layout, self.rsp_tag)
        ack = data.View(self.wr_tag_layout, self.ack_tag)
        m.d.comb += [dma_wr.en.eq(self.rsp_en & ~stopped), dma_wr.addr.eq(rsp.buf), dma_wr.len.eq(rsp.len),
                     dma_wr.data.eq(self.rsp_data)]
        done_rd = self.rsp_en & rsp.last & ~stopped
        done_wr = self.ack_en & ack.last & ~stopped

        # ---------------- table, semaphores, counters: sequential updates ----------------
        clear = Const(0, E)
        for pulse, entry in [(done_rd, rsp.entry), (done_wr, ack.entry)] + list(unit_done.values()):
            clear = clear | Mux(pulse, (Const(1, E) << entry)[:E], 0)
        set_ = Const(0, E)
        for slot in ISSUE_SLOTS:
            set_ = set_ | Mux(issue & present[slot], (Const(1, E) << alloc[slot][0])[:E], 0)
        m.d.table += ent_valid.eq((ent_valid & ~clear) | set_)
        completes = _any([done_rd, done_wr] + [pulse for pulse, _ in unit_done.values()])
        m.d.neg += table_clk_en.eq(completes | issue | self.start | ResetSignal())
        for slot in ISSUE_SLOTS:
            e_idx = alloc[slot][0]
            with m.If(issue & present[slot]):
                for e in self.groups[group_of[slot]][1]:
                    with m.If(e_idx == e):
                        m.d.issue += [ent_bundle[e].eq(bundle_idx), ent_slot[e].eq(SLOTS.index(slot))]
                        for r, rs in ent_rng[e].items():
                            src = slot_ranges[slot].get(r)  # None: the slot's ops never have this position
                            for k, sig in rs.items():
                                none = (1 << len(sig)) - 1 if k == "lo" else 0  # [MAX, 0): not held
                                m.d.issue += sig.eq(src[k] if src is not None else none)

        for s in range(1, self.n_sems + 1):
            inc = ((done_rd & (rsp.sem == s)).as_unsigned() + (done_wr & (ack.sem == s)).as_unsigned())
            dec = Mux(issue & wait & (wv.sem == s), wv.count, 0)
            m.d.sync += sem_val[s].eq(sem_val[s] + inc - dec)
            add = ((ld_issue & (ld_desc.sem == s)).as_unsigned() + (st_issue & (st_desc.sem == s)).as_unsigned())
            m.d.sync += sem_pending[s].eq(sem_pending[s] + add - inc)
        m.d.sync += dma_inflight.eq(dma_inflight + ld_issue + st_issue - done_rd - done_wr)

        for slot in COMPUTE_SLOTS:
            if slot in self.units:
                unit = units_built[slot]
                m.d.sync += counters[f"busy_{slot}"].eq(counters[f"busy_{slot}"] + unit.busy_cycle)
        # the MACs of every compute op issued this cycle (several compute units may issue in one bundle)
        new_macs = sum((Mux(unit_start[slot], units_built[slot].macs_of_op, 0) for slot in units_built), Const(0, 64))
        m.d.sync += counters["macs"].eq(counters["macs"] + new_macs)
        # ---------------- control sequencing ----------------
        any_inflight = (ent_valid != 0) | (q_count != 0) | ch_active | a_valid
        with m.If(self.start):
            m.d.issue += [ddr_size.eq(self.ddr_size), prog_words.eq(self.prog_words), pc.eq(0), bundle_idx.eq(0)]
            m.d.table += ent_valid.eq(0)
            m.d.sync += [running.eq(1), done.eq(0), now.eq(0), rtl_cycles.eq(0),
                         idle.eq(0), halting.eq(0), err.eq(0), q_count.eq(0), q_head.eq(0),
                         ch_active.eq(0), a_valid.eq(0), dma_inflight.eq(0)]
            for s in range(self.n_sems + 1):
                m.d.sync += [sem_val[s].eq(0), sem_pending[s].eq(0)]
            for name in COUNTERS:
                m.d.sync += counters[name].eq(0)
        with m.Elif(running):
            m.d.sync += [now.eq(now + 1), rtl_cycles.eq(rtl_cycles + 1), counters["rtl_cycles"].eq(rtl_cycles + 1)]
            with m.If(idle != 0):
                m.d.sync += idle.eq(idle - 1)
            with m.If(ldg_bad & b_go & (a.kind == kind_ldg)):
                m.d.sync += [err.eq(ERROR_CODE["ldg_index"]), err_bundle.eq(a.bundle),
                             err_slot.eq(SLOTS.index("LD")), err_info0.eq(a_row), err_info1.eq(idx_val),
                             running.eq(0), done.eq(1)]
            with m.Elif(eligible & pre_error):
                m.d.sync += [err.eq(pre_code), err_bundle.eq(bundle_idx), err_slot.eq(SLOTS.index("CTL")),
                             err_info0.eq(pre_info0), err_info1.eq(0), running.eq(0), done.eq(1)]
            with m.Elif(can_issue & op_error):
                m.d.sync += [err.eq(op_code), err_bundle.eq(bundle_idx), err_slot.eq(op_slot),
                             err_info0.eq(op_info0), err_info1.eq(op_info1), running.eq(0), done.eq(1)]
            with m.Elif(issue):
                n_ops = sum((present[s].as_unsigned() for s in RTL_SLOTS), Const(0, 4))
                m.d.issue += [pc.eq(pc + fetch.length), bundle_idx.eq(bundle_idx + 1)]
                m.d.sync += [idle.eq(fetch.delay),
                             counters["bundles"].eq(counters["bundles"] + 1),
                             counters["ops"].eq(counters["ops"] + n_ops)]
                for slot in ISSUE_SLOTS:
                    with m.If(present[slot]):
                        m.d.sync += counters[f"ops_{slot}"].eq(counters[f"ops_{slot}"] + 1)
                with m.If(halt):
                    m.d.sync += [halting.eq(1), halt_time.eq(now)]
            with m.Elif(eligible):  # a stall, counted against its first cause
                with m.If(~wait_ok):
                    m.d.sync += counters["stall_semaphore"].eq(counters["stall_semaphore"] + 1)
                with m.Elif(~units_free):
                    m.d.sync += counters["stall_structural"].eq(counters["stall_structural"] + 1)
                with m.Else():
                    m.d.sync += counters["stall_dma_queue"].eq(counters["stall_dma_queue"] + 1)
            with m.If(halting & ~any_inflight):
                m.d.sync += [running.eq(0), done.eq(1),
                             counters["cycles"].eq(Mux(now > halt_time + 1, now, halt_time + 1))]
        return m


UNITS: dict = {"LIN": LinUnit, "CONV": ConvUnit, "SSM": SsmUnit, "VEC": VecUnit}  # slot -> compute unit class


def make_machine(target: Target, imem_words: int = 4096) -> Machine:
    """The machine with every unit this RTL has."""
    return Machine(target, imem_words, units=UNITS)


def machine_ops() -> tuple[str, ...]:
    """The operations `make_machine`'s machine runs."""
    return tuple(op for op, spec in OPS.items() if spec.slot in ("LD", "ST", "CTL") or spec.slot in UNITS)
