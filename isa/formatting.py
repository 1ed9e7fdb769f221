"""The one-line text of an instruction and a bundle: the assembly syntax's operation part.

Place in the flow: `isa/`, just above the instruction table.  The
disassembler renders whole binaries with it, the container quotes an
instruction in its validation errors, and the simulator's errors and traces
quote operations with it; `isa.assembler` parses the same syntax back.  It
imports only `isa.instructions`, so every one of them can import it.
"""

from __future__ import annotations

import struct

from fastmamba.isa.instructions import Bundle, Instruction

NOP = "nop"
"""The text of a bundle without operations (it still carries a delay)."""

_F32 = struct.Struct("<f")


def format_f32(value: float) -> str:
    """The shortest decimal text that reads back as the same float32 bit pattern."""
    bits = _F32.pack(value)
    for digits in range(1, 10):
        text = f"{value:.{digits}g}"
        try:
            if _F32.pack(float(text)) == bits:
                break
        except OverflowError:  # rounded up past the largest float32
            continue
    if not any(c in text for c in ".e"):
        text += ".0"
    return text


def format_value(instr: Instruction, name: str) -> str:
    spec = instr.spec.field_map[name]
    value = instr.args[name]
    if spec.kind == "enum":
        return spec.values[int(value)]
    if spec.kind == "f32":
        return format_f32(value)
    return str(value)


def format_instruction(instr: Instruction) -> str:
    """One operation as assembly: `mnemonic field=value, field=value` in table order."""
    args = ", ".join(f"{f.name}={format_value(instr, f.name)}" for f in instr.spec.fields)
    return f"{instr.op} {args}" if args else instr.op


def format_bundle(bundle: Bundle) -> str:
    """One bundle as assembly: its operations joined by ` | `, then `; delay=N` when it has a delay."""
    text = " | ".join(format_instruction(op) for op in bundle.ops) or NOP
    return f"{text} ; delay={bundle.delay}" if bundle.delay else text
