"""Binary encoding of instructions and bundles: the instruction stream of a .fmb.

Place in the flow: between the instruction table (`isa.instructions`) and
everything that stores or runs code: the assembler and the compiler's
emitter encode with `encode_bundles`, the container (`isa.container`)
validates streams with `decode_bundles`, and the simulator executes what
`decode_bundles` returns.  Every width and opcode comes from the table; the
per-opcode bit layouts are computed from it once and cached.

Format (documented, with its rationale, in the generated docs/ISA.md):
- A bundle is one 64-bit little-endian header word (`HEADER_FIELDS`: slot
  mask, delay, reserved zero bits) followed by its operations in slot order,
  one per bit set in the mask.
- An operation is its opcode byte followed by its fields, least significant
  bit first in table order (`u` unsigned, `s` two's complement, `f32` IEEE
  binary32 bit pattern, `enum` the value's code), padded with zero bits to
  whole 64-bit words, little-endian.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping, Sequence

import isa.instructions as instructions
from isa.errors import FastmambaError
from isa.instructions import BUNDLE_DELAY_BITS, OPCODE_BITS, SLOTS, Bundle, Instruction, InstructionError, OpSpec

WORD_BYTES = 8
SLOT_MASK_BITS = 8
DELAY_SHIFT = SLOT_MASK_BITS
RESERVED_SHIFT = DELAY_SHIFT + BUNDLE_DELAY_BITS
assert len(SLOTS) <= SLOT_MASK_BITS and RESERVED_SHIFT <= 64 and OPCODE_BITS == 8

HEADER_FIELDS: tuple[tuple[str, int, int, str], ...] = (
    ("slot mask", 0, len(SLOTS), "bit i set: an operation for slot i follows (slots in the order of the slot table)"),
    ("reserved", len(SLOTS), SLOT_MASK_BITS - len(SLOTS), "zero"),
    ("delay", DELAY_SHIFT, BUNDLE_DELAY_BITS, "idle cycles the static schedule wants after this bundle"),
    ("reserved", RESERVED_SHIFT, 64 - RESERVED_SHIFT, "zero"),
)
"""The bundle header word: (name, first bit, width in bits, meaning)."""

_SLOT_MASK = (1 << len(SLOTS)) - 1
_DELAY_MASK = (1 << BUNDLE_DELAY_BITS) - 1
_HEADER_RESERVED = ((1 << 64) - 1) & ~(_SLOT_MASK | (_DELAY_MASK << DELAY_SHIFT))

_K_U, _K_S, _K_F32, _K_ENUM = range(4)
_KIND_CODES = {"u": _K_U, "s": _K_S, "f32": _K_F32, "enum": _K_ENUM}
_F32 = struct.Struct("<f")
_U32 = struct.Struct("<I")


class DecodeError(FastmambaError):
    """An instruction stream that is not a valid encoding of bundles."""


@dataclass(frozen=True)
class OpLayout:
    """Where each field of one operation lives in its encoding."""

    spec: OpSpec
    slot_index: int
    nbytes: int
    fields: tuple[tuple[str, int, int, int, int], ...]  # (name, shift, width mask, kind code, enum count)
    used_bits: int


@dataclass(frozen=True)
class Layouts:
    by_name: Mapping[str, OpLayout]
    by_opcode: Mapping[int, OpLayout]


_CACHE: dict[int, tuple[Mapping[str, OpSpec], Layouts]] = {}


def op_layout(spec: OpSpec) -> OpLayout:
    """The bit layout of one operation: opcode in bits 0..7, then its fields in table order."""
    fields = []
    shift = OPCODE_BITS
    for f in spec.fields:
        fields.append((f.name, shift, (1 << f.bits) - 1, _KIND_CODES[f.kind], len(f.values)))
        shift += f.bits
    return OpLayout(spec, SLOTS.index(spec.slot), spec.words * WORD_BYTES, tuple(fields), spec.bits)


def layouts(ops: Mapping[str, OpSpec] | None = None) -> Layouts:
    """Per-opcode layouts of a table (default: the live `isa.instructions.OPS`), computed once per table."""
    table = instructions.OPS if ops is None else ops
    hit = _CACHE.get(id(table))
    if hit is not None and hit[0] is table:
        return hit[1]
    by_name = {name: op_layout(spec) for name, spec in table.items()}
    result = Layouts(MappingProxyType(by_name), MappingProxyType({l.spec.opcode: l for l in by_name.values()}))
    _CACHE[id(table)] = (table, result)
    return result


# ---------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------
def _encode_with(layout: OpLayout, instr: Instruction) -> bytes:
    word = layout.spec.opcode
    args = instr.args
    for name, shift, mask, kind, _ in layout.fields:
        v = args[name]
        if kind == _K_F32:
            v = _U32.unpack(_F32.pack(v))[0]
        word |= (v & mask) << shift
    return word.to_bytes(layout.nbytes, "little")


def encode_instruction(instr: Instruction, ops: Mapping[str, OpSpec] | None = None) -> bytes:
    """One operation's encoding: opcode byte, fields LSB-first, zero-padded to whole 64-bit words."""
    layout = layouts(ops).by_name.get(instr.op)
    if layout is None:
        raise InstructionError(f"operation {instr.op!r} is not in the instruction table")
    return _encode_with(layout, instr)


def encode_bundle_header(bundle: Bundle) -> bytes:
    mask = 0
    for op in bundle.ops:
        mask |= 1 << SLOTS.index(op.slot)
    return (mask | (bundle.delay << DELAY_SHIFT)).to_bytes(WORD_BYTES, "little")


def encode_bundles(bundles: Sequence[Bundle], ops: Mapping[str, OpSpec] | None = None) -> bytes:
    """The instruction stream of a program: each bundle's header word, then its operations in slot order."""
    by_name = layouts(ops).by_name
    out = bytearray()
    for bundle in bundles:
        mask = 0
        parts = []
        for instr in bundle.ops:
            layout = by_name.get(instr.op)
            if layout is None:
                raise InstructionError(f"operation {instr.op!r} is not in the instruction table")
            mask |= 1 << layout.slot_index
            parts.append(_encode_with(layout, instr))
        out += (mask | (bundle.delay << DELAY_SHIFT)).to_bytes(WORD_BYTES, "little")
        for p in parts:
            out += p
    return bytes(out)


# ---------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------
def _trusted_instruction(op: str, args: dict) -> Instruction:
    """An Instruction from values the decoder has already checked against the table (skips revalidation)."""
    instr = object.__new__(Instruction)
    object.__setattr__(instr, "op", op)
    object.__setattr__(instr, "args", MappingProxyType(args))
    return instr


def _trusted_bundle(ops: tuple[Instruction, ...], delay: int) -> Bundle:
    """A Bundle whose operations are already in slot order, one per slot."""
    bundle = object.__new__(Bundle)
    object.__setattr__(bundle, "ops", ops)
    object.__setattr__(bundle, "delay", delay)
    return bundle


def _where(pos: int, bundle: tuple[int, int, str] | None) -> str:
    """Error-message prefix: the bundle index and offset, the slot, the op's byte offset."""
    if bundle is None:
        return f"byte offset {pos}"
    index, start, slot = bundle
    return f"bundle {index} at byte offset {start}, slot {slot} at byte offset {pos}"


def _decode_op(data: bytes, pos: int, by_opcode: Mapping[int, OpLayout], bundle: tuple[int, int, str] | None) -> tuple[OpLayout, Instruction]:
    """Decode the operation at byte `pos`; `bundle` (index, offset, slot) only serves error messages."""
    if pos >= len(data):
        raise DecodeError(f"{_where(pos, bundle)}: stream ends where an operation should start")
    layout = by_opcode.get(data[pos])
    if layout is None:
        raise DecodeError(f"{_where(pos, bundle)}: unknown opcode {data[pos]:#04x}")
    end = pos + layout.nbytes
    if end > len(data):
        raise DecodeError(f"{_where(pos, bundle)}: stream ends inside {layout.spec.name} ({layout.nbytes} bytes, {len(data) - pos} left)")
    word = int.from_bytes(data[pos:end], "little")
    if word >> layout.used_bits:
        raise DecodeError(f"{_where(pos, bundle)}: {layout.spec.name} has nonzero padding bits")
    args: dict = {}
    for name, shift, mask, kind, nvalues in layout.fields:
        v = (word >> shift) & mask
        if kind == _K_S:
            if v > (mask >> 1):
                v -= mask + 1
        elif kind == _K_F32:
            v = _F32.unpack(_U32.pack(v))[0]
            if not math.isfinite(v):
                raise DecodeError(f"{_where(pos, bundle)}: {layout.spec.name} field {name} is not a finite float32")
        elif kind == _K_ENUM and v >= nvalues:
            raise DecodeError(f"{_where(pos, bundle)}: {layout.spec.name} field {name} has no value with code {v}")
        args[name] = v
    return layout, _trusted_instruction(layout.spec.name, args)


def decode_instruction(data: bytes, offset: int = 0, ops: Mapping[str, OpSpec] | None = None) -> tuple[Instruction, int]:
    """Decode the operation starting at byte `offset`; return it and the offset just past it."""
    layout, instr = _decode_op(data, offset, layouts(ops).by_opcode, None)
    return instr, offset + layout.nbytes


def decode_bundles(data: bytes, ops: Mapping[str, OpSpec] | None = None) -> list[Bundle]:
    """Decode a whole instruction stream; any malformation raises DecodeError naming the bundle and byte offset."""
    data = bytes(data)
    by_opcode = layouts(ops).by_opcode
    n = len(data)
    nslots = len(SLOTS)
    bundles: list[Bundle] = []
    pos = 0
    while pos < n:
        index = len(bundles)
        if pos + WORD_BYTES > n:
            raise DecodeError(f"bundle {index} at byte offset {pos}: stream ends inside the bundle header")
        header = int.from_bytes(data[pos:pos + WORD_BYTES], "little")
        if header & _HEADER_RESERVED:
            raise DecodeError(f"bundle {index} at byte offset {pos}: nonzero reserved bits in the bundle header")
        mask = header & _SLOT_MASK
        start = pos
        pos += WORD_BYTES
        ops_out = []
        for slot in range(nslots):
            if mask >> slot & 1:
                layout, instr = _decode_op(data, pos, by_opcode, (index, start, SLOTS[slot]))
                if layout.slot_index != slot:
                    where = _where(pos, (index, start, SLOTS[slot]))
                    raise DecodeError(f"{where}: {layout.spec.name} belongs to slot {layout.spec.slot}")
                ops_out.append(instr)
                pos += layout.nbytes
        bundles.append(_trusted_bundle(tuple(ops_out), (header >> DELAY_SHIFT) & _DELAY_MASK))
    return bundles
