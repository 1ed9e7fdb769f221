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
program's returned states are the decode program's initial states.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Protocol

import numpy as np

from fastmamba.isa.container import Binary, Program, TensorDesc, read_fmb
from fastmamba.isa.dtypes import numpy_dtype
from fastmamba.isa.errors import InputError
from fastmamba.simulator.effects import MachineState
from fastmamba.simulator.stats import Stats
from fastmamba.simulator.trace import Trace

WRITABLE_ROLES = ("input", "state")
READ_ROLES = ("output", "state")


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


def _check_input(prog: Program, name: str, value) -> tuple[TensorDesc, np.ndarray]:
    desc = next((t for t in prog.tensors if t.name == name), None)
    writable = [t.name for t in prog.tensors if t.role in WRITABLE_ROLES]
    if desc is None:
        raise InputError(f"program {prog.name} has no input or state {name!r} (has: {', '.join(writable) or 'none'})")
    if desc.role not in WRITABLE_ROLES:
        raise InputError(f"program {prog.name}: {name!r} is an {desc.role}, not an input or state "
                         f"(inputs and states: {', '.join(writable) or 'none'})")
    array = np.asarray(value)
    want = numpy_dtype(desc.dtype)
    if array.dtype.newbyteorder("=") != want.newbyteorder("="):
        raise InputError(f"program {prog.name}: {desc.role} {name!r} must have dtype {desc.dtype} "
                         f"({want.name}), got {array.dtype.name}")
    if array.shape != desc.shape:
        raise InputError(f"program {prog.name}: {desc.role} {name!r} must have shape {desc.shape}, got {array.shape}")
    return desc, array


class SimulatorBackend:
    """The functional + timing simulator as an `ExecutionBackend`."""

    def __init__(self, target, semantics: Mapping | None = None):
        self.target = target
        self.semantics = semantics
        self._binary: Binary | None = None

    def load(self, binary: Binary | str | os.PathLike) -> None:
        if not isinstance(binary, Binary):
            binary = read_fmb(binary)
        want = self.target.digest()
        if binary.target_digest != want:
            raise InputError(f"the binary was built for another target (digest {binary.target_digest.hex()[:16]}…); "
                             f"the chosen target {getattr(self.target, 'name', '')} has digest {want.hex()[:16]}…")
        self._binary = binary

    @property
    def binary(self) -> Binary:
        if self._binary is None:
            raise InputError("no binary loaded")
        return self._binary

    def run(self, program: str, inputs: Mapping[str, np.ndarray] | None = None, *, trace: bool = False) -> RunResult:
        from fastmamba.simulator.engine import Engine

        binary = self.binary
        prog = binary.program(program)
        checked = [_check_input(prog, name, value) for name, value in (inputs or {}).items()]
        ddr = np.zeros(prog.ddr_size, np.uint8)
        ddr[:len(binary.const_image)] = np.frombuffer(binary.const_image, np.uint8)
        for desc, array in checked:
            raw = np.ascontiguousarray(array, dtype=numpy_dtype(desc.dtype)).reshape(-1).view(np.uint8)
            ddr[desc.ddr:desc.ddr + desc.nbytes] = raw
        state = MachineState(ddr=ddr, buf=np.zeros(int(self.target.buffer_bytes), np.uint8))
        recorder = Trace(float(self.target.clock_hz), prog.name) if trace else None
        stats = Engine(self.target, self.semantics, recorder).run(prog.bundles, state)

        def read(desc: TensorDesc) -> np.ndarray:
            raw = ddr[desc.ddr:desc.ddr + desc.nbytes]
            return raw.view(numpy_dtype(desc.dtype)).reshape(desc.shape).copy()

        outputs = {t.name: read(t) for t in prog.tensors if t.role == "output"}
        states = {t.name: read(t) for t in prog.tensors if t.role == "state"}
        return RunResult(prog.name, outputs, states, stats, recorder)
