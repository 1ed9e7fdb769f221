"""LIN semantics: the int8 tile matmul with online block Hadamard, requantization and rescale.

Place in the flow: looked up by `simulator.semantics.SEMANTICS` for `lin`;
the arithmetic is `isa.numerics.lin` (docs/NUMERICS.md §2), the cost
`isa.costs` (ceil(m*k*n / lin_macs_per_cycle) cycles plus lin_latency, §9).
"""

from __future__ import annotations

from fastmamba.isa import costs, numerics
from fastmamba.simulator.effects import Footprint, MachineState, SimulationError
from fastmamba.simulator.operands import (check_positive, check_regions, region_ranges, regions_by_field,
                                         remember_last_check, view)


class Linear:
    @remember_last_check
    def _check(self, instr, state: MachineState, target):
        check_positive(instr, "m", "k", "n")
        block = 1 << int(instr["hlog2"])
        if block > target.hadamard_max_block:
            raise SimulationError(f"{instr.op}: field hlog2: Hadamard block 2^{instr['hlog2']} = {block} exceeds "
                                  f"the target's hadamard_max_block {target.hadamard_max_block}")
        if instr["k"] % block:
            raise SimulationError(f"{instr.op}: field k = {instr['k']} is not a multiple of the Hadamard block {block}")
        regs = regions_by_field(instr)
        check_regions(instr, regs.values(), state, target)
        return regs

    def footprint(self, instr, state: MachineState, target) -> Footprint:
        regs = self._check(instr, state, target)
        reads, writes = region_ranges(regs.values())
        macs = int(instr["m"]) * int(instr["k"]) * int(instr["n"])
        return Footprint(reads, writes, occupancy=costs.occupancy(instr, target), latency=costs.latency(instr, target),
                         macs=macs)

    def execute(self, instr, state: MachineState, target) -> None:
        regs = self._check(instr, state, target)
        a = view(state, regs["src"], instr.enum("src_type"))
        wgt = view(state, regs["wgt"], "i8")
        prev = view(state, regs["dst"], "i32") if instr["acc"] else None
        scale = view(state, regs["scale"], "f32")[0] if instr.enum("out") == "f32" else None
        result = numerics.lin(a, wgt, hlog2=int(instr["hlog2"]), qmul=int(instr["qmul"]), qshift=int(instr["qshift"]),
                              prev=prev, scale=scale)
        view(state, regs["dst"], "f32" if scale is not None else "i32")[...] = result


LINEAR = Linear()
