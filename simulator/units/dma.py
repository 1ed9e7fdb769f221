"""DMA semantics: `ld` (DDR -> BUF), `ldg` (row gather, the embedding lookup) and `st` (BUF -> DDR).

Place in the flow: looked up by `simulator.semantics.SEMANTICS`; the engine
times the transfer itself from `Footprint.ddr_bytes` (rows * row_bytes) and
signals the op's semaphore.  Bytes are copied as they are (docs/NUMERICS.md §7).
"""

from __future__ import annotations

import numpy as np

from fastmamba.isa import costs
from fastmamba.simulator.effects import Footprint, MachineState, Range, SimulationError
from fastmamba.simulator.operands import (check_positive, check_regions, region_ranges, regions_by_field,
                                         remember_last_check, view)


def _check_semaphore(instr, target) -> None:
    """sem 0 signals nothing; 1..semaphores names the semaphore incremented on completion."""
    if instr["sem"] > target.semaphores:
        raise SimulationError(f"{instr.op}: field sem = {instr['sem']} outside [0, {target.semaphores}] "
                              f"(0 = none; the target's semaphores)")


class Copy:
    """`ld` and `st`: a 2-D strided copy between the memories the op's regions name."""

    @remember_last_check
    def _regions(self, instr, state: MachineState, target):
        check_positive(instr, "rows", "row_bytes")
        _check_semaphore(instr, target)
        regions = instr.regions()
        check_regions(instr, regions, state, target)
        return regions

    def footprint(self, instr, state: MachineState, target) -> Footprint:
        regions = self._regions(instr, state, target)
        reads, writes = region_ranges(regions)
        return Footprint(reads, writes, ddr_bytes=costs.ddr_bytes(instr))

    def execute(self, instr, state: MachineState, target) -> None:
        regions = self._regions(instr, state, target)
        src = next(r for r in regions if r.access == "r")
        dst = next(r for r in regions if r.access == "w")
        view(state, dst)[...] = view(state, src)


class Gather:
    """`ldg`: destination row r = table row idx[r]; the footprint reads only the rows indexed."""

    def _check(self, instr, state: MachineState, target):
        check_positive(instr, "rows", "row_bytes")
        _check_semaphore(instr, target)
        regs = regions_by_field(instr)
        check_regions(instr, regs.values(), state, target)
        idx = view(state, regs["idx"], "i32")[:, 0].astype(np.int64)
        limit = int(instr["limit"])
        bad = np.flatnonzero((idx < 0) | (idx >= limit))
        if bad.size:
            r = int(bad[0])
            raise SimulationError(f"{instr.op}: field idx: index idx[{r}] = {int(idx[r])} outside [0, limit = {limit})")
        return regs, idx

    def footprint(self, instr, state: MachineState, target) -> Footprint:
        regs, idx = self._check(instr, state, target)
        stride, row_bytes, base = int(instr["ddr_stride"]), int(instr["row_bytes"]), int(instr["ddr"])
        starts = np.unique(idx) * stride + base  # sorted; rows of equal width
        # rows that touch or overlap merge into one range: a new range begins after each gap
        begins = np.concatenate(([0], np.flatnonzero(starts[1:] > starts[:-1] + row_bytes) + 1))
        ends = np.concatenate((begins[1:], [starts.size])) - 1
        reads = (Range("buf", *regs["idx"].span),) + tuple(
            Range("ddr", int(starts[b]), int(starts[e]) + row_bytes) for b, e in zip(begins, ends))
        _, writes = region_ranges([regs["buf"]])
        return Footprint(reads, writes, ddr_bytes=costs.ddr_bytes(instr))

    def execute(self, instr, state: MachineState, target) -> None:
        regs, idx = self._check(instr, state, target)
        view(state, regs["buf"])[...] = view(state, regs["ddr"])[idx]


LOAD = Copy()
STORE = Copy()
GATHER = Gather()
