"""SSM semantics: the selective scan over t tokens for h heads, with the NLA's exp and softplus.

Place in the flow: looked up by `simulator.semantics.SEMANTICS` for `ssm`;
the arithmetic is `isa.numerics.ssm_scan` (docs/NUMERICS.md §5), the cost
`isa.costs` (t * max(ceil(h*p*n / ssm_elems_per_cycle), ceil(h / nla_lanes))
cycles plus ssm_latency, §9), 3*t*h*p*n multiplies.
"""

from __future__ import annotations

from fastmamba.isa import costs, numerics
from fastmamba.simulator.effects import Footprint, MachineState, SimulationError
from fastmamba.simulator.operands import (check_positive, check_regions, region_ranges, regions_by_field,
                                         remember_last_check, view)

MULTIPLIES_PER_ELEMENT = 3  # dA * state, (dt * x) * B, C * state


class Scan:
    @remember_last_check
    def _check(self, instr, state: MachineState, target):
        check_positive(instr, "t", "h", "p", "n", "hpg")
        low, high = target.nla_segments.bit_length() - 1, target.nla_bits - 1
        if not low <= instr["dt_frac"] <= high:
            raise SimulationError(f"{instr.op}: field dt_frac = {instr['dt_frac']} outside [{low}, {high}] "
                                  f"(log2 nla_segments .. nla_bits - 1)")
        regs = regions_by_field(instr)
        check_regions(instr, regs.values(), state, target)
        return regs

    def footprint(self, instr, state: MachineState, target) -> Footprint:
        regs = self._check(instr, state, target)
        reads, writes = region_ranges(regs.values())
        t, h, p, n = (int(instr[f]) for f in ("t", "h", "p", "n"))
        return Footprint(reads, writes, occupancy=costs.occupancy(instr, target), latency=costs.latency(instr, target),
                         macs=MULTIPLIES_PER_ELEMENT * t * h * p * n)

    def execute(self, instr, state: MachineState, target) -> None:
        regs = self._check(instr, state, target)
        t, h, p, n, hpg = (int(instr[f]) for f in ("t", "h", "p", "n", "hpg"))
        groups = -(-h // hpg)
        xbc = view(state, regs["xbc"], "i16")
        b_off, c_off = int(instr["b_off"]), int(instr["c_off"])
        params = view(state, regs["params"], "i32")
        y, final = numerics.ssm_scan(
            xbc[:, :h * p].reshape(t, h, p),
            xbc[:, b_off:b_off + groups * n].reshape(t, groups, n),
            xbc[:, c_off:c_off + groups * n].reshape(t, groups, n),
            view(state, regs["dt"], "i16"), params[:, 0], params[:, 1], params[:, 2],
            view(state, regs["state"], "i32").reshape(h, p, n),
            hpg=hpg, dt_frac=int(instr["dt_frac"]), a_frac=int(instr["a_frac"]), dbx_shift=int(instr["dbx_shift"]),
            y_shift=int(instr["y_shift"]), d_shift=int(instr["d_shift"]),
            segments=int(target.nla_segments), bits=int(target.nla_bits),
            state_bits=int(target.ssm_state_bits))
        view(state, regs["y"], "i32")[...] = y.reshape(t, h * p)
        view(state, regs["state"], "i32")[...] = final.reshape(h * p, n)


SCAN = Scan()
