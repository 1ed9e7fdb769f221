"""Text form of instructions, bundles and whole binaries: the inverse of `isa.assembler`.

Place in the flow: reads what `isa.encoding` decodes and `isa.container`
loads; the text of one instruction or bundle is `isa.formatting`'s (re-exported
here).  `disassemble` renders a whole `Binary` as assembly that
`isa.assembler.assemble` turns back into the byte-identical binary: every
section (constant image, programs with their tensors and debug text, metadata).  The
syntax is documented in the generated docs/ISA.md.
"""

from __future__ import annotations

import json
import struct

from fastmamba.isa.container import Binary, Program, TensorDesc
from fastmamba.isa.formatting import NOP, format_bundle, format_f32, format_instruction, format_value

__all__ = ["DATA_LINE_BYTES", "NOP", "disassemble", "disassemble_program", "format_bundle", "format_f32",
           "format_instruction", "format_tensor", "format_value"]

DATA_LINE_BYTES = 64
"""Constant-image bytes per `.data` line; all-zero runs of this size are left out."""

_F32 = struct.Struct("<f")


def format_tensor(t: TensorDesc) -> str:
    shape = "(" + ", ".join(str(d) for d in t.shape) + ("," if len(t.shape) == 1 else "") + ")"
    text = f".{t.role} {t.name} ddr={t.ddr:#x} shape={shape} dtype={t.dtype}"
    if _F32.pack(t.scale) != _F32.pack(1.0):
        text += f" scale={format_f32(t.scale)}"
    if t.exp:
        text += f" exp={t.exp}"
    return text


def _data_lines(image: bytes) -> list[str]:
    lines = []
    for start in range(0, len(image), DATA_LINE_BYTES):
        chunk = image[start:start + DATA_LINE_BYTES]
        if not any(chunk):
            continue
        lines.append(f".data addr={start:#x} hex={chunk.hex()}")
    return lines


def disassemble_program(prog: Program, numbered: bool = True) -> list[str]:
    lines = [f".program {prog.name} ddr_size={prog.ddr_size:#x}"]
    lines += [format_tensor(t) for t in prog.tensors]
    for index, bundle in enumerate(prog.bundles):
        if index in prog.debug:
            lines.append(f".loc {json.dumps(prog.debug[index], ensure_ascii=False)}")
        text = format_bundle(bundle)
        lines.append(f"{text:<60}  # {index}" if numbered else text)
    return lines


def disassemble(binary: Binary, with_data: bool = True, numbered: bool = True) -> str:
    """The whole binary as assembly text; with the data and `assemble` it gives back the identical bytes."""
    lines = [
        f"# fastmamba disassembly: {len(binary.programs)} program(s), constant image {len(binary.const_image)} bytes",
        f".target_digest {binary.target_digest.hex()}",
        f".image_size {len(binary.const_image):#x}",
    ]
    if binary.meta:
        lines.append(f".meta {json.dumps(binary.meta, ensure_ascii=False)}")
    if with_data:
        lines += _data_lines(binary.const_image)
    else:
        lines.append("# constant image contents left out (--no-data): this text does not reassemble to the same binary")
    for prog in binary.programs:
        lines.append("")
        lines += disassemble_program(prog, numbered)
    return "\n".join(lines) + "\n"
