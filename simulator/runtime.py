"""Execution backends: load a binary, write inputs, run a program, read outputs, states and counters.

Place in the flow: the one interface (docs/ARCHITECTURE.md §6) between a compiled `.fmb`
and whatever executes it.  `ExecutionBackend` is the protocol every backend
implements, so tests and tools are written once against it;
`SimulatorBackend` implements it with `simulator.engine` and the unit
semantics.  A hardware backend (a board driver, an RTL model) is a second
implementation of the same protocol.

A run starts from a fresh DDR image: the binary's constant image at address 0,
zero up to the program's `ddr_size`.  The given inputs (tensors of role
`input` or `state`) are written at their descriptors' addresses; tensors not
given keep the image's bytes there (zero, or the data the program shipped).
After the run, every `output` and `state` tensor is read back.  The prefill
program's returned states are the decode program's initial states.  That host
side is `fastmamba.isa.host`, shared with the RTL backend.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Protocol

import numpy as np

from fastmamba.isa.container import Binary
from fastmamba.isa.dtypes import numpy_dtype  # noqa: F401  (re-exported: tools read tensors with it)
from fastmamba.isa.host import HostBackend, initial_ddr, read_results
from fastmamba.simulator.effects import MachineState, SimulationError
from fastmamba.simulator.stats import Stats
from fastmamba.simulator.trace import Trace


@dataclass
class RunResult:
    program: str
    outputs: dict[str, np.ndarray]
    states: dict[str, np.ndarray]
    stats: Stats
    trace: Trace | None = None


class ExecutionBackend(Protocol):
    """What every backend offers: load a binary once, then run its programs on given inputs."""

    def load(self, binary: Binary | str | os.PathLike) -> None:
        """Load a binary (or read one from a path); checks it was built for this backend's target."""

    @property
    def binary(self) -> Binary:
        """The loaded binary."""

    def run(self, program: str, inputs: Mapping[str, np.ndarray] | None = None, *, trace: bool = False) -> RunResult:
        """Run `program` with `inputs` (tensors of role input or state, by name); return outputs, states, counters."""


class SimulatorBackend(HostBackend):
    """The functional + timing simulator as an `ExecutionBackend`."""

    def __init__(self, target, semantics: Mapping | None = None):
        super().__init__(target)
        self.semantics = semantics

    def run(self, program: str, inputs: Mapping[str, np.ndarray] | None = None, *, trace: bool = False) -> RunResult:
        from fastmamba.simulator.engine import Engine

        binary = self.binary
        prog = binary.program(program)
        ddr = initial_ddr(binary, prog, inputs)
        state = MachineState(ddr=ddr, buf=np.zeros(int(self.target.buffer_bytes), np.uint8))
        recorder = Trace(float(self.target.clock_hz), prog.name, prog.debug, int(self.target.buffer_bytes)) \
            if trace else None
        try:
            stats = Engine(self.target, self.semantics, recorder).run(prog.bundles, state)
        except SimulationError as exc:
            exc.trace = recorder  # type: ignore[attr-defined]  # what ran up to the failing bundle, for sim --trace
            raise
        outputs, states = read_results(prog, ddr)
        return RunResult(prog.name, outputs, states, stats, recorder)
