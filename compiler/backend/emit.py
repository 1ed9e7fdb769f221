"""The emitter: scheduled `accel` IR -> `isa.container.Binary` -> `.fmb`.

Place in the flow: the last step of the compiler, after schedule-vliw.  Each
`accel.program` (scheduled: bundles only) becomes an `isa.container.Program`
with its DDR size, tensor descriptors, bundles and debug info (bundle index
-> the debug text of its ops, joined by "; ").  The constant image (weights,
scales, tables) is given as bytes; the binary records `target.digest()`.
The container's own validation (addresses inside the buffer and DDR,
alignment, names) runs when writing.
"""

from __future__ import annotations

import os

from xdsl.dialects.builtin import ModuleOp

from fastmamba.compiler.dialects.accel import BundleOp, ProgramOp, instruction_of
from fastmamba.isa.container import Binary, Program, validate_binary, write_fmb
from fastmamba.isa.errors import InputError
from fastmamba.isa.instructions import Bundle

DEBUG_SEPARATOR = "; "


def program_of(program: ProgramOp) -> Program:
    """The container program of one scheduled `accel.program`."""
    items = list(program.body.block.ops)
    if items and not program.is_scheduled:
        raise InputError(f"accel.program {program.program_name} is not scheduled (run schedule-vliw first)")
    bundles, debug = [], {}
    for index, b in enumerate(items):
        assert isinstance(b, BundleOp)
        ops = b.instruction_ops
        bundles.append(Bundle(tuple(instruction_of(o) for o in ops), b.delay_cycles))
        texts = [o.debug_text for o in ops if o.debug_text]
        if texts:
            debug[index] = DEBUG_SEPARATOR.join(texts)
    return Program(program.program_name, program.ddr_bytes, tuple(bundles), program.tensor_descs, debug)


def emit_binary(module: ModuleOp, target, const_image: bytes = b"", meta: str = "") -> Binary:
    """The binary of every `accel.program` in `module`, for `target`, with optional metadata (JSON text),
    validated."""
    programs = tuple(program_of(p) for p in module.walk() if isinstance(p, ProgramOp))
    binary = Binary(programs, const_image, target.digest(), meta=meta)
    validate_binary(binary, target)
    return binary


def write_binary(module: ModuleOp, path: str | os.PathLike, target, const_image: bytes = b"") -> Binary:
    """emit_binary, written to `path` as an .fmb; returns the binary."""
    binary = emit_binary(module, target, const_image)
    write_fmb(path, binary, target)
    return binary
