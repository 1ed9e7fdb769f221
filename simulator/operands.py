"""Operand access shared by the unit semantics: checks, ranges and memory views of an op's regions.

Place in the flow: below `simulator/units/*` (which import it) and
`simulator.semantics` (which collects the units).  The units turn an
instruction's operand regions (`Instruction.regions()`, from the instruction
table: the one definition of what an op touches) into what the engine needs
with these helpers:

- `check_regions`: every region inside its memory, aligned, written rows not
  overlapping each other or another operand of the same op (docs/NUMERICS.md §8);
- `region_ranges`: the regions as the engine's read/write `Range`s (their spans);
- `view`: a region as a 2-D numpy view into the machine's memory;
- `remember_last_check`: the engine calls `footprint` then `execute` with the
  same instruction, so a unit's field and region checks run once per issue.
"""

from __future__ import annotations

import functools
from typing import Iterable

import numpy as np

from fastmamba.isa.dtypes import numpy_dtype
from fastmamba.isa.instructions import Region
from fastmamba.simulator.effects import MachineState, Range, SimulationError

READ_ACCESS = ("r", "rw")
WRITE_ACCESS = ("w", "rw")


def memory_size(space: str, state: MachineState, target) -> int:
    """Bytes addressable in `space`: the buffer as the target sizes it, the program's DDR image."""
    if space == "buf":
        return min(int(state.buf.size), int(target.buffer_bytes))
    return int(state.ddr.size)


def check_positive(instr, *names: str) -> None:
    """Counts that must be at least 1."""
    for name in names:
        if instr[name] < 1:
            raise SimulationError(f"{instr.op}: field {name} must be at least 1, got {instr[name]}")


def regions_by_field(instr) -> dict[str, Region]:
    return {r.field: r for r in instr.regions()}


def _stride_field(instr, region: Region) -> str:
    for name in (f"{region.field}_ld", f"{region.space}_stride"):
        if name in instr.args:
            return name
    return region.field


def check_regions(instr, regions: Iterable[Region], state: MachineState, target,
                  in_place: Iterable[tuple[str, str]] = ()) -> None:
    """Raise SimulationError (naming the op and the field) unless every region may be accessed.

    `in_place` lists (written field, read field) pairs allowed to coincide exactly.
    """
    regions = tuple(regions)
    spans = [r.span for r in regions]  # each computed once (the pairwise test below reuses them)
    sizes: dict[str, int] = {}
    for r, (start, stop) in zip(regions, spans):
        size = sizes.get(r.space)
        if size is None:
            size = sizes[r.space] = memory_size(r.space, state, target)
        if r.base % r.align:
            raise SimulationError(f"{instr.op}: field {r.field} = {r.base:#x} is not aligned to {r.align} bytes")
        if stop > size:
            raise SimulationError(f"{instr.op}: field {r.field}: {r.space} bytes [{start:#x}, {stop:#x}) outside "
                                  f"the {r.space} of {size:#x} bytes")
        if r.access in WRITE_ACCESS and r.rows > 1 and r.stride < r.row_bytes:
            name = _stride_field(instr, r)
            raise SimulationError(f"{instr.op}: field {name}: written rows of {r.field} overlap "
                                  f"({r.stride} bytes apart, {r.row_bytes} bytes each)")
    allowed = None
    for i, w in enumerate(regions):
        if w.access not in WRITE_ACCESS:
            continue
        w0, w1 = spans[i]
        for j, other in enumerate(regions):
            o0, o1 = spans[j]
            if i == j or not (w0 < o1 and o0 < w1 and w.space == other.space):
                continue
            if allowed is None:
                allowed = set(in_place)
            if ((w.field, other.field) in allowed and (w0, w1) == (o0, o1)
                    and (w.stride == other.stride or w.rows == other.rows == 1)):  # the same elements
                continue
            raise SimulationError(f"{instr.op}: field {w.field}: the written {w.space} bytes "
                                  f"[{w0:#x}, {w1:#x}) overlap operand {other.field} [{o0:#x}, {o1:#x})")


def region_ranges(regions: Iterable[Region]) -> tuple[tuple[Range, ...], tuple[Range, ...]]:
    """(reads, writes): one Range per region, its span; an "rw" region in both."""
    reads, writes = [], []
    for r in regions:
        rng = Range(r.space, *r.span)
        if r.access in READ_ACCESS:
            reads.append(rng)
        if r.access in WRITE_ACCESS:
            writes.append(rng)
    return tuple(reads), tuple(writes)


def view(state: MachineState, region: Region, dtype: str | None = None) -> np.ndarray:
    """The region as a [rows, cols] array viewing the machine's memory (bytes when dtype is None)."""
    dt = np.dtype(np.uint8) if dtype is None else numpy_dtype(dtype)
    return np.ndarray((region.rows, region.row_bytes // dt.itemsize), dtype=dt, buffer=state.space(region.space),
                      offset=region.base, strides=(region.stride, dt.itemsize))


def remember_last_check(check):
    """Wrap a unit's `_check(self, instr, state, target)` whose result depends only on the
    instruction's fields, the memory sizes and the target: a repeated call with the same
    instruction and target objects and the same memory sizes returns the remembered result."""

    @functools.wraps(check)
    def checked(self, instr, state: MachineState, target):
        sizes = (state.buf.size, state.ddr.size)
        last = self.__dict__.get("_last_check")
        if last is not None and last[0] is instr and last[1] is target and last[2] == sizes:
            return last[3]
        result = check(self, instr, state, target)
        self._last_check = (instr, target, sizes, result)
        return result

    return checked
