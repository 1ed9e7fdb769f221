"""The host's side of running a program: what every execution backend does before and after the machine runs.

Place in the flow: `isa/`, below both backends (`fastmamba.simulator.runtime.SimulatorBackend`
and `fastmamba.hardware.backend.RtlBackend`), which implement the machine independently
but meet the host the same way (docs/ARCHITECTURE.md §6):

- `load_binary`: a `Binary` (or a path to one) built for the backend's target;
  `HostBackend` keeps it for a backend (its `load` and `binary`);
- `initial_ddr`: the DDR image a run starts from: the binary's constant image at
  address 0, zeros up to the program's `ddr_size`, each given input or state
  (checked against its descriptor by `check_input`) at its address;
- `read_results`: every `output` and `state` tensor read back from the DDR image.
"""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np

from fastmamba.isa.container import Binary, Program, TensorDesc, read_fmb
from fastmamba.isa.dtypes import numpy_dtype
from fastmamba.isa.errors import InputError

WRITABLE_ROLES = ("input", "state")
READ_ROLES = ("output", "state")


def load_binary(binary: Binary | str | os.PathLike, target) -> Binary:
    """`binary` (read from its path if one is given), refused unless it was built for `target`."""
    if not isinstance(binary, Binary):
        binary = read_fmb(binary)
    want = target.digest()
    if binary.target_digest != want:
        raise InputError(f"the binary was built for another target (digest {binary.target_digest.hex()[:16]}…); "
                         f"the chosen target {getattr(target, 'name', '')} has digest {want.hex()[:16]}…")
    return binary


def check_input(prog: Program, name: str, value) -> tuple[TensorDesc, np.ndarray]:
    """The descriptor of input or state `name` and `value` as an array of its dtype and shape; else InputError."""
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


def initial_ddr(binary: Binary, prog: Program, inputs: Mapping[str, np.ndarray] | None) -> np.ndarray:
    """The run's DDR image (uint8): constant image, zeros to `ddr_size`, the checked inputs at their addresses."""
    checked = [check_input(prog, name, value) for name, value in (inputs or {}).items()]
    ddr = np.zeros(prog.ddr_size, np.uint8)
    ddr[:len(binary.const_image)] = np.frombuffer(binary.const_image, np.uint8)
    for desc, array in checked:
        raw = np.ascontiguousarray(array, dtype=numpy_dtype(desc.dtype)).reshape(-1).view(np.uint8)
        ddr[desc.ddr:desc.ddr + desc.nbytes] = raw
    return ddr


def read_tensor(ddr: np.ndarray, desc: TensorDesc) -> np.ndarray:
    """A copy of the tensor `desc` describes, read from the DDR image."""
    return ddr[desc.ddr:desc.ddr + desc.nbytes].view(numpy_dtype(desc.dtype)).reshape(desc.shape).copy()


def read_results(prog: Program, ddr: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(outputs, states) of `prog` read back from the DDR image after a run."""
    outputs = {t.name: read_tensor(ddr, t) for t in prog.tensors if t.role == "output"}
    states = {t.name: read_tensor(ddr, t) for t in prog.tensors if t.role == "state"}
    return outputs, states


class HostBackend:
    """What every execution backend keeps for the host: its target and the loaded binary."""

    def __init__(self, target):
        self.target = target
        self._binary: Binary | None = None

    def load(self, binary: Binary | str | os.PathLike) -> None:
        """Load a binary (or read one from a path); refused unless it was built for this backend's target."""
        self._binary = load_binary(binary, self.target)

    @property
    def binary(self) -> Binary:
        """The loaded binary."""
        if self._binary is None:
            raise InputError("no binary loaded")
        return self._binary
