"""The instruction set as one table: every fact about an instruction lives here.

Place in the flow: the bottom of `isa/`.  The encoder/decoder
(`isa.encoding`), the assembler and disassembler, the generated
`docs/ISA.md` and the simulator's dispatch all derive from `OPS` below;
none of them lists opcodes, fields or widths of its own.

Structure
- `SLOTS`: the VLIW issue slots, in bundle order.  A bundle issues at most one
  operation per slot.
- `FieldSpec`: one named operand field: its width in bits, its kind
  (`u` unsigned, `s` signed two's complement, `f32` an IEEE binary32 bit
  pattern, `enum` an unsigned code with named values) and its meaning.
- `OpSpec`: one operation: mnemonic, opcode, slot, fields (in encoding order)
  and meaning.
- `Instruction`: an operation with a value for each field (validated against
  the spec); `Bundle`: the operations of one issue cycle plus the idle delay
  the static schedule wants after it.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from isa.errors import FastmambaError

SLOTS: tuple[str, ...] = ("LD", "ST", "LIN", "CONV", "SSM", "VEC", "CTL")

OPCODE_BITS = 8
FIELD_KINDS = ("u", "s", "f32", "enum")


class InstructionError(FastmambaError):
    """An instruction or bundle that violates the table (bad field, value, slot)."""


@dataclass(frozen=True)
class FieldSpec:
    name: str
    bits: int
    kind: str = "u"
    doc: str = ""
    values: tuple[str, ...] = ()  # for kind == "enum": code i is values[i]

    def __post_init__(self) -> None:
        if self.kind not in FIELD_KINDS:
            raise ValueError(f"field {self.name}: unknown kind {self.kind!r}")
        if self.kind == "f32" and self.bits != 32:
            raise ValueError(f"field {self.name}: f32 fields are 32 bits")
        if self.kind == "enum" and not (0 < len(self.values) <= (1 << self.bits)):
            raise ValueError(f"field {self.name}: enum needs 1..2^bits named values")
        if not 0 < self.bits <= 64:
            raise ValueError(f"field {self.name}: width {self.bits} out of range")

    @property
    def min(self) -> int:
        return -(1 << (self.bits - 1)) if self.kind == "s" else 0

    @property
    def max(self) -> int:
        if self.kind == "s":
            return (1 << (self.bits - 1)) - 1
        if self.kind == "enum":
            return len(self.values) - 1
        return (1 << self.bits) - 1

    def check(self, op: str, value: int | float) -> int | float:
        """Return the canonical value of this field, or raise InstructionError."""
        if self.kind == "f32":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InstructionError(f"{op}: field {self.name} must be a number, got {value!r}")
            v = float(value)
            if not math.isfinite(v):
                raise InstructionError(f"{op}: field {self.name} must be finite, got {value!r}")
            try:
                f32 = struct.unpack("<f", struct.pack("<f", v))[0]
            except OverflowError:
                f32 = math.inf
            if not math.isfinite(f32):
                raise InstructionError(f"{op}: field {self.name} = {value!r} overflows float32")
            return f32
        if isinstance(value, str) and self.kind == "enum":
            if value not in self.values:
                raise InstructionError(f"{op}: field {self.name} must be one of {', '.join(self.values)}, got {value!r}")
            return self.values.index(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InstructionError(f"{op}: field {self.name} must be an integer, got {value!r}")
        if not self.min <= value <= self.max:
            raise InstructionError(f"{op}: field {self.name} = {value} outside [{self.min}, {self.max}] ({self.bits}-bit {self.kind})")
        return value


@dataclass(frozen=True)
class OpSpec:
    name: str
    opcode: int
    slot: str
    fields: tuple[FieldSpec, ...]
    doc: str

    def __post_init__(self) -> None:
        if self.slot not in SLOTS:
            raise ValueError(f"op {self.name}: unknown slot {self.slot!r}")
        if not 0 < self.opcode < (1 << OPCODE_BITS):
            raise ValueError(f"op {self.name}: opcode {self.opcode} out of range")
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"op {self.name}: duplicate field names")

    @property
    def field_map(self) -> Mapping[str, FieldSpec]:
        return MappingProxyType({f.name: f for f in self.fields})

    @property
    def bits(self) -> int:
        """Encoded width: opcode plus fields, before padding to whole 64-bit words."""
        return OPCODE_BITS + sum(f.bits for f in self.fields)

    @property
    def words(self) -> int:
        """Encoded length in 64-bit words."""
        return -(-self.bits // 64)


@dataclass(frozen=True)
class Instruction:
    """One operation with all its fields set (canonical values: enums as codes)."""

    op: str
    args: Mapping[str, int | float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        spec = OPS.get(self.op)
        if spec is None:
            raise InstructionError(f"unknown operation {self.op!r}")
        given = dict(self.args)
        unknown = sorted(set(given) - {f.name for f in spec.fields})
        if unknown:
            raise InstructionError(f"{self.op}: unknown field(s) {', '.join(unknown)}")
        missing = [f.name for f in spec.fields if f.name not in given]
        if missing:
            raise InstructionError(f"{self.op}: missing field(s) {', '.join(missing)}")
        canon = {f.name: f.check(self.op, given[f.name]) for f in spec.fields}
        object.__setattr__(self, "args", MappingProxyType(canon))

    @property
    def spec(self) -> OpSpec:
        return OPS[self.op]

    @property
    def slot(self) -> str:
        return OPS[self.op].slot

    def __getitem__(self, name: str) -> int | float:
        return self.args[name]

    def enum(self, name: str) -> str:
        """The named value of an enum field."""
        return self.spec.field_map[name].values[int(self.args[name])]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Instruction) and self.op == other.op and dict(self.args) == dict(other.args)

    def __hash__(self) -> int:
        return hash((self.op, tuple(self.args.items())))


BUNDLE_DELAY_BITS = 24


@dataclass(frozen=True)
class Bundle:
    """The operations issued together, in slot order, and the idle cycles after them."""

    ops: tuple[Instruction, ...]
    delay: int = 0

    def __post_init__(self) -> None:
        ops = tuple(self.ops)
        slots = [op.slot for op in ops]
        if len(set(slots)) != len(slots):
            dup = sorted({s for s in slots if slots.count(s) > 1})
            raise InstructionError(f"bundle issues more than one operation in slot(s) {', '.join(dup)}")
        ops = tuple(sorted(ops, key=lambda o: SLOTS.index(o.slot)))
        object.__setattr__(self, "ops", ops)
        if isinstance(self.delay, bool) or not isinstance(self.delay, int) or not 0 <= self.delay < (1 << BUNDLE_DELAY_BITS):
            raise InstructionError(f"bundle delay {self.delay!r} outside [0, {(1 << BUNDLE_DELAY_BITS) - 1}]")

    def op_in(self, slot: str) -> Instruction | None:
        for op in self.ops:
            if op.slot == slot:
                return op
        return None


def _f(name: str, bits: int, doc: str, kind: str = "u", values: tuple[str, ...] = ()) -> FieldSpec:
    return FieldSpec(name, bits, kind, doc, values)


def _table(*specs: OpSpec) -> Mapping[str, OpSpec]:
    by_name: dict[str, OpSpec] = {}
    by_code: dict[int, str] = {}
    for s in specs:
        if s.name in by_name:
            raise ValueError(f"duplicate op {s.name}")
        if s.opcode in by_code:
            raise ValueError(f"ops {by_code[s.opcode]} and {s.name} share opcode {s.opcode:#x}")
        by_name[s.name] = s
        by_code[s.opcode] = s.name
    return MappingProxyType(by_name)


# ---------------------------------------------------------------------------
# The table.  Opcode ranges by slot: LD 0x10-0x1f, ST 0x20-0x2f, LIN 0x30-0x3f,
# CONV 0x40-0x4f, SSM 0x50-0x5f, VEC 0x60-0x6f, CTL 0x70-0x7f.
# ---------------------------------------------------------------------------
OPS: Mapping[str, OpSpec] = _table(
    OpSpec(
        "ctl.wait", 0x70, "CTL",
        (_f("sem", 8, "semaphore index"), _f("count", 16, "completions to wait for; subtracted once satisfied")),
        "Hold this bundle (and every later one) until semaphore `sem` is at least `count`, then subtract `count`.",
    ),
    OpSpec("ctl.halt", 0x71, "CTL", (), "End of program: completes once every operation in flight has completed."),
)

BY_OPCODE: Mapping[int, OpSpec] = MappingProxyType({s.opcode: s for s in OPS.values()})
