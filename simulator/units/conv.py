"""CONV semantics: causal depthwise conv1d over t tokens with its state of the last kw-1 inputs.

Place in the flow: looked up by `simulator.semantics.SEMANTICS` for `conv`;
the arithmetic is `isa.numerics.conv` (docs/NUMERICS.md §3), the cost
`isa.costs` (ceil(t*c / conv_channels) cycles plus conv_latency, §9).
"""

from __future__ import annotations

from fastmamba.isa import costs, numerics
from fastmamba.isa.target import CONV_KERNEL_MIN
from fastmamba.simulator.effects import Footprint, MachineState, SimulationError
from fastmamba.simulator.operands import (check_positive, check_regions, region_ranges, regions_by_field,
                                         remember_last_check, view)


class Conv:
    @remember_last_check
    def _check(self, instr, state: MachineState, target):
        check_positive(instr, "t", "c")
        kw = int(instr["kw"])
        if not CONV_KERNEL_MIN <= kw <= target.conv_kernel_max:
            raise SimulationError(f"{instr.op}: field kw = {kw} outside [{CONV_KERNEL_MIN}, {target.conv_kernel_max}] "
                                  f"(the target's conv_kernel_max)")
        regs = regions_by_field(instr)
        check_regions(instr, regs.values(), state, target)
        return regs

    def footprint(self, instr, state: MachineState, target) -> Footprint:
        regs = self._check(instr, state, target)
        reads, writes = region_ranges(regs.values())
        return Footprint(reads, writes, occupancy=costs.occupancy(instr, target), latency=costs.latency(instr, target),
                         macs=int(instr["t"]) * int(instr["c"]) * int(instr["kw"]))

    def execute(self, instr, state: MachineState, target) -> None:
        regs = self._check(instr, state, target)
        out_type = instr.enum("out_type")
        dst, new_state = numerics.conv(view(state, regs["src"], "i16"), view(state, regs["state"], "i16"),
                                       view(state, regs["wgt"], "i16"), view(state, regs["bias"], "i32")[0],
                                       int(instr["shift"]), out_type)
        view(state, regs["dst"], out_type)[...] = dst
        if instr["upd"]:
            view(state, regs["state"], "i16")[...] = new_state


CONV = Conv()
