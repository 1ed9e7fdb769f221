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

import gc
import struct
from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Mapping, Sequence

import fastmamba.isa.instructions as instructions
from fastmamba.isa.errors import FastmambaError
from fastmamba.isa.instructions import (BUNDLE_DELAY_BITS, OPCODE_BITS, SLOTS, Bundle, Instruction, InstructionError,
                                        OpSpec)

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

_F32 = struct.Struct("<f")
_U32 = struct.Struct("<I")


class DecodeError(FastmambaError):
    """An instruction stream that is not a valid encoding of bundles."""


class _FieldError(Exception):
    """Raised by a generated decoder: (field name, problem); turned into a DecodeError with the location."""


@dataclass(frozen=True)
class OpLayout:
    """Where each field of one operation lives in its encoding, and the functions that pack and unpack it."""

    spec: OpSpec
    slot_index: int
    nbytes: int
    fields: tuple[tuple[str, int, int, str, int], ...]  # (name, shift, width in bits, kind, enum count)
    used_bits: int
    encode_word: Callable[[Mapping[str, int | float]], int]
    decode_word: Callable[[int], dict]


@dataclass(frozen=True)
class Layouts:
    by_name: Mapping[str, OpLayout]
    by_opcode: Mapping[int, OpLayout]


_CACHE: dict[int, tuple[Mapping[str, OpSpec], Layouts]] = {}
_NAMESPACE = {"_pack_f": _F32.pack, "_unpack_f": _F32.unpack, "_pack_I": _U32.pack, "_unpack_I": _U32.unpack,
              "_FieldError": _FieldError}


def _compile(spec: OpSpec, fields: tuple[tuple[str, int, int, str, int], ...]):
    """Straight-line encoder and decoder functions for one op: one shift and mask per field, no loops."""
    terms = [str(spec.opcode)]
    lines = ["def decode(w):"]
    names = []
    for i, (name, shift, bits, kind, nvalues) in enumerate(fields):
        mask = (1 << bits) - 1
        arg = f"a[{name!r}]"
        terms.append(f"(_unpack_I(_pack_f({arg}))[0] << {shift})" if kind == "f32" else f"(({arg} & {mask:#x}) << "
                                                                                        f"{shift})")
        v = f"v{i}"
        names.append(f"{name!r}: {v}")
        raw = f"(w >> {shift}) & {mask:#x}"
        if kind == "s":
            half = 1 << (bits - 1)
            lines.append(f"    {v} = (({raw}) ^ {half:#x}) - {half:#x}")
        elif kind == "f32":
            lines.append(f"    {v} = _unpack_f(_pack_I({raw}))[0]")
            lines.append(f"    if {v} - {v} != 0.0: raise _FieldError({name!r}, 'is not a finite float32')")
        else:
            lines.append(f"    {v} = {raw}")
            if kind == "enum":
                lines.append(f"    if {v} >= {nvalues}: raise _FieldError({name!r}, f'has no value with code {{{v}}}')")
    lines.append("    return {" + ", ".join(names) + "}")
    source = "def encode(a):\n    return " + " | ".join(terms) + "\n" + "\n".join(lines) + "\n"
    namespace = dict(_NAMESPACE)
    exec(compile(source, f"<isa.encoding {spec.name}>", "exec"), namespace)
    return namespace["encode"], namespace["decode"]


def op_layout(spec: OpSpec) -> OpLayout:
    """The bit layout of one operation: opcode in bits 0..7, then its fields in table order."""
    fields = []
    shift = OPCODE_BITS
    for f in spec.fields:
        fields.append((f.name, shift, f.bits, f.kind, len(f.values)))
        shift += f.bits
    fields_t = tuple(fields)
    encode, decode = _compile(spec, fields_t)
    return OpLayout(spec, SLOTS.index(spec.slot), spec.words * WORD_BYTES, fields_t, spec.bits, encode, decode)


def layouts(ops: Mapping[str, OpSpec] | None = None) -> Layouts:
    """Per-opcode layouts of a table (default: the live `isa.instructions.OPS`), computed once per table."""
    table = instructions.OPS if ops is None else ops
    hit = _CACHE.get(id(table))
    if hit is not None and hit[0] is table:
        return hit[1]
    by_name = {name: op_layout(spec) for name, spec in table.items()}
    result = Layouts(MappingProxyType(by_name), MappingProxyType({lay.spec.opcode: lay for lay in by_name.values()}))
    _CACHE[id(table)] = (table, result)
    return result


# ---------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------
def _encode_with(layout: OpLayout, instr: Instruction) -> bytes:
    return layout.encode_word(instr.args).to_bytes(layout.nbytes, "little")


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
    instr.__dict__.update(op=op, args=MappingProxyType(args))
    return instr


def _trusted_bundle(ops: tuple[Instruction, ...], delay: int) -> Bundle:
    """A Bundle whose operations are already in slot order, one per slot."""
    bundle = object.__new__(Bundle)
    bundle.__dict__.update(ops=ops, delay=delay)
    return bundle


def _where(pos: int, bundle: tuple[int, int, str] | None) -> str:
    """Error-message prefix: the bundle index and offset, the slot, the op's byte offset."""
    if bundle is None:
        return f"byte offset {pos}"
    index, start, slot = bundle
    return f"bundle {index} at byte offset {start}, slot {slot} at byte offset {pos}"


def _decode_op(data: bytes, pos: int, get: Callable[[int], OpLayout | None],
               bundle: tuple[int, int, str] | None) -> tuple[OpLayout, Instruction]:
    """Decode the operation at byte `pos`, checking everything; `bundle` (index, offset, slot) names the place."""
    if pos >= len(data):
        raise DecodeError(f"{_where(pos, bundle)}: stream ends where an operation should start")
    layout = get(data[pos])
    if layout is None:
        raise DecodeError(f"{_where(pos, bundle)}: unknown opcode {data[pos]:#04x}")
    end = pos + layout.nbytes
    if end > len(data):
        raise DecodeError(f"{_where(pos, bundle)}: stream ends inside {layout.spec.name} ({layout.nbytes} bytes, "
                          f"{len(data) - pos} left)")
    word = int.from_bytes(data[pos:end], "little")
    if word >> layout.used_bits:
        raise DecodeError(f"{_where(pos, bundle)}: {layout.spec.name} has nonzero padding bits")
    try:
        args = layout.decode_word(word)
    except _FieldError as exc:
        name, problem = exc.args
        raise DecodeError(f"{_where(pos, bundle)}: {layout.spec.name} field {name} {problem}") from None
    return layout, _trusted_instruction(layout.spec.name, args)


def decode_instruction(data: bytes, offset: int = 0, ops: Mapping[str, OpSpec] | None = None) -> tuple[Instruction,
                                                                                                       int]:
    """Decode the operation starting at byte `offset`; return it and the offset just past it."""
    layout, instr = _decode_op(data, offset, layouts(ops).by_opcode.get, None)
    return instr, offset + layout.nbytes


_SLOTS_OF_MASK = tuple(tuple(i for i in range(len(SLOTS)) if m >> i & 1) for m in range(1 << len(SLOTS)))


def decode_bundles(data: bytes, ops: Mapping[str, OpSpec] | None = None) -> list[Bundle]:
    """Decode a whole instruction stream; any malformation raises DecodeError naming the bundle and byte offset.

    The loop is the fast path for well-formed streams; on any anomaly it hands the operation to the checked
    `_decode_op`, which raises the precise error.  The cyclic garbage collector is paused meanwhile: the
    millions of small objects built here hold no cycles, and its repeated passes over them more than doubled
    the time.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _decode_bundles(data, ops)
    finally:
        if was_enabled:
            gc.enable()


def _decode_bundles(data: bytes, ops: Mapping[str, OpSpec] | None) -> list[Bundle]:
    data = bytes(data)
    get = layouts(ops).by_opcode.get
    n = len(data)
    new, mapping, from_bytes = object.__new__, MappingProxyType, int.from_bytes
    bundles: list[Bundle] = []
    append = bundles.append
    pos = 0
    while pos < n:
        start = pos
        pos += WORD_BYTES
        if pos > n:
            raise DecodeError(f"bundle {len(bundles)} at byte offset {start}: stream ends inside the bundle header")
        header = from_bytes(data[start:pos], "little")
        if header & _HEADER_RESERVED:
            raise DecodeError(f"bundle {len(bundles)} at byte offset {start}: nonzero reserved bits in the bundle "
                              "header")
        ops_out = []
        for slot in _SLOTS_OF_MASK[header & _SLOT_MASK]:
            layout = get(data[pos]) if pos < n else None
            end = pos + layout.nbytes if layout is not None else n + 1
            word = from_bytes(data[pos:end], "little") if end <= n else 0
            try:
                if end > n or layout.slot_index != slot or word >> layout.used_bits:
                    raise _FieldError
                args = layout.decode_word(word)
            except _FieldError:
                _raise_decode_error(data, pos, get, (len(bundles), start, slot))
            instr = new(Instruction)
            d = instr.__dict__
            d["op"] = layout.spec.name
            d["args"] = mapping(args)
            ops_out.append(instr)
            pos = end
        bundle = new(Bundle)
        d = bundle.__dict__
        d["ops"] = tuple(ops_out)
        d["delay"] = (header >> DELAY_SHIFT) & _DELAY_MASK
        append(bundle)
    return bundles


def _raise_decode_error(data: bytes, pos: int, get, bundle: tuple[int, int, int]) -> None:
    index, start, slot = bundle
    where = (index, start, SLOTS[slot])
    layout, _ = _decode_op(data, pos, get, where)
    raise DecodeError(f"{_where(pos, where)}: {layout.spec.name} belongs to slot {layout.spec.slot}")
