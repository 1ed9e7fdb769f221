"""VEC semantics: the fused binary32 element-wise chain (`vec`) and the row argmax (`vec.argmax`).

Place in the flow: looked up by `simulator.semantics.SEMANTICS`; the
arithmetic is `isa.numerics` (dequant, vec_chain, vec_output, argmax;
docs/NUMERICS.md §6), the cost `isa.costs` (ceil(rows*cols / vec_lanes) beats,
twice that for a chain with an rmsnorm, of ceil(k / vec_stages) cycles each for
k micro-ops, plus vec_latency, §9).  The operands
of `vec` are row-pitched (a_ld, b_ld for b_mode = full, dst_ld): the regions,
and so the views of memory, carry the pitches, so a chain reads and writes
column slices of wider matrices.
"""

from __future__ import annotations

from fastmamba.isa import costs, numerics
from fastmamba.simulator.effects import Footprint, MachineState, SimulationError
from fastmamba.simulator.operands import (check_positive, check_regions, region_ranges, regions_by_field,
                                         remember_last_check, view)

MICRO_OP_FIELDS = costs.VEC_MICRO_OP_FIELDS


def _micro_ops(instr) -> tuple[str, ...]:
    return tuple(instr.enum(f) for f in MICRO_OP_FIELDS)


class Chain:
    @remember_last_check
    def _check(self, instr, state: MachineState, target):
        check_positive(instr, "rows", "cols")
        ops = _micro_ops(instr)
        pitches = ("a_ld", "b_ld", "dst_ld") if instr.enum("b_mode") == "full" else ("a_ld", "dst_ld")
        for f in pitches:
            if instr[f] < instr["cols"]:
                raise SimulationError(f"{instr.op}: field {f} = {instr[f]} is less than cols = {instr['cols']} "
                                      f"(rows would overlap)")
        if instr.enum("b_mode") == "none":
            for f, op in zip(MICRO_OP_FIELDS, ops):
                if op in numerics.MICRO_OPS_WITH_B:
                    raise SimulationError(f"{instr.op}: field b_mode is none but {f} = {op} needs b")
        if "rmsnorm" in ops:
            check_positive(instr, "group")
            if instr["cols"] % instr["group"]:
                raise SimulationError(f"{instr.op}: field group = {instr['group']} does not divide "
                                      f"cols = {instr['cols']}")
        regs = regions_by_field(instr)
        check_regions(instr, regs.values(), state, target, in_place=(("dst", "a"), ("dst", "b")))
        return regs, ops

    def footprint(self, instr, state: MachineState, target) -> Footprint:
        regs, ops = self._check(instr, state, target)
        reads, writes = region_ranges(regs.values())
        return Footprint(reads, writes, occupancy=costs.occupancy(instr, target), latency=costs.latency(instr, target))

    def execute(self, instr, state: MachineState, target) -> None:
        regs, ops = self._check(instr, state, target)
        x = numerics.dequant(view(state, regs["a"], instr.enum("a_type")), int(instr["a_exp"]))
        b = None
        if "b" in regs:
            b = numerics.dequant(view(state, regs["b"], instr.enum("b_type")), int(instr["b_exp"]))
        x = numerics.vec_chain(x, ops, b, group=int(instr["group"]), eps=float(instr["eps"]))
        out_type = instr.enum("out_type")
        view(state, regs["dst"], out_type)[...] = numerics.vec_output(x, out_type, float(instr["out_scale"]))


class Argmax:
    @remember_last_check
    def _check(self, instr, state: MachineState, target):
        check_positive(instr, "rows", "cols")
        regs = regions_by_field(instr)
        check_regions(instr, regs.values(), state, target)
        return regs

    def footprint(self, instr, state: MachineState, target) -> Footprint:
        regs = self._check(instr, state, target)
        reads, writes = region_ranges(regs.values())
        return Footprint(reads, writes, occupancy=costs.occupancy(instr, target), latency=costs.latency(instr, target))

    def execute(self, instr, state: MachineState, target) -> None:
        regs = self._check(instr, state, target)
        view(state, regs["dst"], "i32")[:, 0] = numerics.argmax(view(state, regs["a"], "f32"))


CHAIN = Chain()
ARGMAX = Argmax()
