"""The contract between the simulator's engine and its unit semantics.

Place in the flow: `simulator.engine` issues bundles, keeps time, checks
hazards and handles synchronization; `simulator.units.*` know what each
operation computes.  They meet here:

- `MachineState`: the memories an operation may touch (DDR image, on-chip
  buffer).  Semaphores and time belong to the engine.
- `Range`: a half-open byte range in one memory space.
- `Footprint`: what an operation reads and writes (for hazard checks), how
  long it occupies its unit and how long until its results are complete (for
  timing), and how many DDR bytes it moves (for the DMA channel and counters).
- `UnitSemantics`: per operation, `footprint(instr, state, target)` and
  `execute(instr, state, target)`.  The engine calls `footprint` first, then
  `execute` at issue.  Both raise `SimulationError` (with a message naming the
  problem, e.g. an address outside the buffer); the engine adds the bundle
  index and the instruction text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from fastmamba.isa.errors import FastmambaError


class SimulationError(FastmambaError):
    """A program that cannot run correctly: bad address, hazard, deadlock, bad index."""


SPACES = ("buf", "ddr")


@dataclass(frozen=True)
class Range:
    space: str  # "buf" or "ddr"
    start: int
    stop: int  # exclusive

    def overlaps(self, other: "Range") -> bool:
        return self.space == other.space and self.start < other.stop and other.start < self.stop


@dataclass
class MachineState:
    ddr: np.ndarray  # uint8, the whole DDR image of the running program
    buf: np.ndarray  # uint8, the on-chip buffer

    def space(self, name: str) -> np.ndarray:
        return self.ddr if name == "ddr" else self.buf


@dataclass(frozen=True)
class Footprint:
    reads: tuple[Range, ...] = ()
    writes: tuple[Range, ...] = ()
    occupancy: int = 1  # cycles the unit is busy (compute units); ignored for DMA
    latency: int = 0  # further cycles until results are complete (compute units)
    ddr_bytes: int = 0  # bytes moved over the DDR channel (DMA only)
    macs: int = 0  # multiply-accumulates performed (for statistics)
    extra: dict = field(default_factory=dict, compare=False)


class UnitSemantics(Protocol):
    def footprint(self, instr, state: MachineState, target) -> Footprint: ...

    def execute(self, instr, state: MachineState, target) -> None: ...
