"""The instruction set as one table: every fact about an instruction lives here.

Place in the flow: near the bottom of `isa/`, above only the element types
(`isa.dtypes`) and the cost formulas (`isa.costs`) its columns name.  The encoder/decoder
(`isa.encoding`), the assembler and disassembler, the generated
`docs/ISA.md` and the simulator's dispatch all derive from `OPS` below;
none of them lists opcodes, fields or widths of its own.

Structure
- `SLOTS`: the VLIW issue slots, in bundle order.  A bundle issues at most one
  operation per slot.
- `FieldSpec`: one named operand field: its width in bits, its kind
  (`u` unsigned, `s` signed two's complement, `f32` an IEEE binary32 bit
  pattern, `enum` an unsigned code with named values) and its meaning.
- `OpSpec`: one operation: mnemonic, opcode, slot, fields (in encoding order),
  meaning, the memory it touches, and its cost column: the occupancy formula
  (a function of `isa.costs`) and the target parameter holding its latency.
- `Instruction`: an operation with a value for each field (validated against
  the spec); `Bundle`: the operations of one issue cycle plus the idle delay
  the static schedule wants after it.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Callable, Mapping

from fastmamba.isa import costs
from fastmamba.isa.dtypes import MACHINE_TYPES, itemsize
from fastmamba.isa.errors import FastmambaError

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
                raise InstructionError(f"{op}: field {self.name} must be one of {', '.join(self.values)}, got "
                                       f"{value!r}")
            return self.values.index(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InstructionError(f"{op}: field {self.name} must be an integer, got {value!r}")
        if not self.min <= value <= self.max:
            raise InstructionError(f"{op}: field {self.name} = {value} outside [{self.min}, {self.max}] "
                                   f"({self.bits}-bit {self.kind})")
        return value


@dataclass(frozen=True)
class OpSpec:
    name: str
    opcode: int
    slot: str
    fields: tuple[FieldSpec, ...]
    doc: str
    # Memory the instruction touches, from its fields alone (see `Region`); the
    # binary reader checks these statically and the simulator's hazard checks use them.
    region_fn: Callable[["Instruction"], tuple["Region", ...]] | None = field(default=None, compare=False, repr=False)
    # The cost column (isa.costs): cycles the op holds its unit or the DDR channel, from its fields and the
    # target; and the target parameter holding the further cycles until its results are complete (None: 0).
    occupancy: Callable[["Instruction", object], int] | None = field(default=None, compare=False, repr=False)
    latency_param: str | None = None

    def __post_init__(self) -> None:
        if self.slot not in SLOTS:
            raise ValueError(f"op {self.name}: unknown slot {self.slot!r}")
        if not 0 < self.opcode < (1 << OPCODE_BITS):
            raise ValueError(f"op {self.name}: opcode {self.opcode} out of range")
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"op {self.name}: duplicate field names")

    @cached_property
    def field_map(self) -> Mapping[str, FieldSpec]:
        return MappingProxyType({f.name: f for f in self.fields})

    @cached_property
    def field_values(self) -> dict[str, tuple[str, ...]]:
        """Each field's enum value names (empty for other kinds), for `Instruction.enum`."""
        return {f.name: f.values for f in self.fields}

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

    def regions(self) -> tuple["Region", ...]:
        """The memory this instruction reads and writes, from its fields.

        Computed on first use and kept in the instance (an Instruction is immutable; the
        simulator asks for every operation's regions several times per issue).
        """
        cached = self.__dict__.get(_REGIONS_ATTR)
        if cached is None:
            fn = OPS[self.op].region_fn
            cached = fn(self) if fn is not None else ()
            object.__setattr__(self, _REGIONS_ATTR, cached)
        return cached

    def enum(self, name: str) -> str:
        """The named value of an enum field."""
        return OPS[self.op].field_values[name][int(self.args[name])]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Instruction) and self.op == other.op and dict(self.args) == dict(other.args)

    def __hash__(self) -> int:
        return hash((self.op, tuple(self.args.items())))


_REGIONS_ATTR = "_regions"  # where Instruction.regions() keeps its result


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
        if isinstance(self.delay, bool) or not isinstance(self.delay,
                                                          int) or not 0 <= self.delay < (1 << BUNDLE_DELAY_BITS):
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
# Element types and operand regions.
# ---------------------------------------------------------------------------
DTYPES: tuple[str, ...] = MACHINE_TYPES  # the operand element types (isa.dtypes, the one table)
DTYPE_BYTES: Mapping[str, int] = MappingProxyType({name: itemsize(name) for name in DTYPES})


@dataclass(frozen=True)
class Region:
    """A 2-D block of memory an instruction touches: `rows` rows of `row_bytes`, `stride` bytes apart."""

    space: str  # "buf" or "ddr"
    field: str  # the address field it is based on
    base: int
    rows: int
    row_bytes: int
    stride: int
    access: str  # "r", "w" or "rw"
    align: int = 1  # required alignment of `base` (the element size)

    @property
    def span(self) -> tuple[int, int]:
        """[start, stop) of the bytes between the first and the last touched byte."""
        if self.rows == 0 or self.row_bytes == 0:
            return (self.base, self.base)
        return (self.base, self.base + (self.rows - 1) * self.stride + self.row_bytes)


def _dense(space: str, fld: str, instr: "Instruction", rows: int, cols: int, dtype: str, access: str,
           ld: int | None = None) -> Region:
    size = DTYPE_BYTES[dtype]
    pitch = cols if ld is None else ld
    return Region(space, fld, int(instr[fld]), rows, cols * size, pitch * size, access, size)


def _regions_ld(i: "Instruction") -> tuple[Region, ...]:
    return (
        Region("ddr", "ddr", i["ddr"], i["rows"], i["row_bytes"], i["ddr_stride"], "r"),
        Region("buf", "buf", i["buf"], i["rows"], i["row_bytes"], i["buf_stride"], "w"),
    )


def _regions_ldg(i: "Instruction") -> tuple[Region, ...]:
    # The DDR rows read depend on the index values: the static region is the whole table.
    return (
        Region("ddr", "ddr", i["ddr"], i["limit"], i["row_bytes"], i["ddr_stride"], "r"),
        _dense("buf", "idx", i, i["rows"], 1, "i32", "r"),
        Region("buf", "buf", i["buf"], i["rows"], i["row_bytes"], i["buf_stride"], "w"),
    )


def _regions_st(i: "Instruction") -> tuple[Region, ...]:
    return (
        Region("buf", "buf", i["buf"], i["rows"], i["row_bytes"], i["buf_stride"], "r"),
        Region("ddr", "ddr", i["ddr"], i["rows"], i["row_bytes"], i["ddr_stride"], "w"),
    )


def _regions_lin(i: "Instruction") -> tuple[Region, ...]:
    src_type = i.enum("src_type")
    dst_access = "rw" if i["acc"] else "w"
    regions = [
        _dense("buf", "src", i, i["m"], i["k"], src_type, "r", i["src_ld"]),
        _dense("buf", "wgt", i, i["n"], i["k"], "i8", "r"),
        _dense("buf", "dst", i, i["m"], i["n"], "i32", dst_access, i["dst_ld"]),
    ]
    if i.enum("out") == "f32":
        regions.append(_dense("buf", "scale", i, 1, i["n"], "f32", "r"))
    return tuple(regions)


def _regions_conv(i: "Instruction") -> tuple[Region, ...]:
    return (
        _dense("buf", "src", i, i["t"], i["c"], "i16", "r", i["src_ld"]),
        _dense("buf", "state", i, i["kw"] - 1, i["c"], "i16", "rw" if i["upd"] else "r"),
        _dense("buf", "wgt", i, i["kw"], i["c"], "i16", "r"),
        _dense("buf", "bias", i, 1, i["c"], "i32", "r"),
        _dense("buf", "dst", i, i["t"], i["c"], i.enum("out_type"), "w", i["dst_ld"]),
    )


def _regions_ssm(i: "Instruction") -> tuple[Region, ...]:
    h, p, n, t = i["h"], i["p"], i["n"], i["t"]
    groups = -(-h // max(1, i["hpg"]))
    xbc_cols = max(h * p, i["b_off"] + groups * n, i["c_off"] + groups * n)
    return (
        _dense("buf", "xbc", i, t, xbc_cols, "i16", "r", i["xbc_ld"]),
        _dense("buf", "dt", i, t, h, "i16", "r", i["dt_ld"]),
        _dense("buf", "params", i, h, 4, "i32", "r"),
        _dense("buf", "state", i, h * p, n, "i32", "rw"),
        _dense("buf", "y", i, t, h * p, "i32", "w", i["y_ld"]),
    )


def _regions_vec(i: "Instruction") -> tuple[Region, ...]:
    rows, cols = i["rows"], i["cols"]
    regions = [_dense("buf", "a", i, rows, cols, i.enum("a_type"), "r", i["a_ld"])]
    b_mode = i.enum("b_mode")
    if b_mode == "full":
        regions.append(_dense("buf", "b", i, rows, cols, i.enum("b_type"), "r", i["b_ld"]))
    elif b_mode == "row":
        regions.append(_dense("buf", "b", i, 1, cols, i.enum("b_type"), "r"))
    regions.append(_dense("buf", "dst", i, rows, cols, i.enum("out_type"), "w", i["dst_ld"]))
    return tuple(regions)


def _regions_argmax(i: "Instruction") -> tuple[Region, ...]:
    return (
        _dense("buf", "a", i, i["rows"], i["cols"], "f32", "r"),
        _dense("buf", "dst", i, i["rows"], 1, "i32", "w"),
    )


def _no_regions(i: "Instruction") -> tuple[Region, ...]:
    return ()


# Field-spec helpers: one definition of each recurring operand kind.
def _buf(name: str, what: str) -> FieldSpec:
    return _f(name, 24, f"BUF byte address of {what}")


def _ddr(name: str, what: str) -> FieldSpec:
    return _f(name, 40, f"DDR byte address of {what}")


def _count(name: str, what: str, bits: int = 16) -> FieldSpec:
    return _f(name, bits, what)


def _dtype(name: str, what: str, values: tuple[str, ...] = DTYPES) -> FieldSpec:
    return _f(name, 2 if len(values) > 2 else 1, what, "enum", values)


def _shift(name: str, what: str) -> FieldSpec:
    return _f(name, 7, f"right shift (bits, rounding per NUMERICS.md) {what}")


_SEM = _f("sem", 8, "semaphore incremented when the transfer completes; 0 = none")
MICRO_OPS: tuple[str, ...] = ("none", "add", "mul", "silu", "gate", "rmsnorm", "softplus")

# ---------------------------------------------------------------------------
# The table.  Opcode ranges by slot: LD 0x10-0x1f, ST 0x20-0x2f, LIN 0x30-0x3f,
# CONV 0x40-0x4f, SSM 0x50-0x5f, VEC 0x60-0x6f, CTL 0x70-0x7f.
# ---------------------------------------------------------------------------
OPS: Mapping[str, OpSpec] = _table(
    OpSpec(
        "ld", 0x10, "LD",
        (
            _buf("buf", "the first destination row"),
            _ddr("ddr", "the first source row"),
            _count("rows", "rows to copy"),
            _f("row_bytes", 24, "bytes per row"),
            _f("ddr_stride", 40, "bytes between source rows in DDR"),
            _f("buf_stride", 24, "bytes between destination rows in BUF"),
            _SEM,
        ),
        "2-D strided copy DDR -> BUF: `rows` rows of `row_bytes` bytes; signals `sem` on completion.",
        _regions_ld,
        occupancy=costs.transfer_cycles, latency_param="dma_latency",
    ),
    OpSpec(
        "ldg", 0x11, "LD",
        (
            _buf("buf", "the first destination row"),
            _ddr("ddr", "row 0 of the table"),
            _buf("idx", "the int32 row indices (`rows` of them)"),
            _count("rows", "rows to gather"),
            _f("row_bytes", 24, "bytes per row"),
            _f("ddr_stride", 40, "bytes between table rows in DDR"),
            _f("buf_stride", 24, "bytes between destination rows in BUF"),
            _f("limit", 32, "rows in the table; an index outside [0, limit) is an error"),
            _SEM,
        ),
        "Row gather DDR -> BUF (embedding lookup): destination row r = table row idx[r]; signals `sem` on completion.",
        _regions_ldg,
        occupancy=costs.transfer_cycles, latency_param="dma_latency",
    ),
    OpSpec(
        "st", 0x20, "ST",
        (
            _ddr("ddr", "the first destination row"),
            _buf("buf", "the first source row"),
            _count("rows", "rows to copy"),
            _f("row_bytes", 24, "bytes per row"),
            _f("ddr_stride", 40, "bytes between destination rows in DDR"),
            _f("buf_stride", 24, "bytes between source rows in BUF"),
            _SEM,
        ),
        "2-D strided copy BUF -> DDR: `rows` rows of `row_bytes` bytes; signals `sem` on completion.",
        _regions_st,
        occupancy=costs.transfer_cycles, latency_param="dma_latency",
    ),
    OpSpec(
        "lin", 0x30, "LIN",
        (
            _buf("dst", "the [m, n] int32 accumulators / f32 results"),
            _buf("src", "the [m, k] activations"),
            _buf("wgt", "the [n, k] int8 weight tile (PyTorch out x in layout, contiguous)"),
            _buf("scale", "the [n] f32 per-output-channel rescale (used when out = f32)"),
            _count("m", "rows (tokens)"),
            _count("k", "reduction length"),
            _count("n", "output channels"),
            _count("src_ld", "elements between src rows"),
            _count("dst_ld", "elements between dst rows"),
            _dtype("src_type", "activation element type", ("i8", "i16")),
            _f("hlog2", 4, "online Hadamard block 2^hlog2 along k (0 = none; at most the target's hadamard_max_block)"),
            _f("qmul", 16, "requantization multiplier (activation -> int8)"),
            _f("qshift", 6, "requantization right shift"),
            _f("acc", 1, "1: add to the int32 accumulators at dst; 0: overwrite them"),
            _dtype("out", "result type: i32 accumulators, or f32 = f32(acc) * scale[n]", ("i32", "f32")),
        ),
        "int8 tile matmul: a = src, Hadamard-rotated in blocks of 2^hlog2 along k, requantized to int8 "
        "q = sat8(rshift_round(a * qmul, qshift)); acc = [dst +] q @ wgt^T (int32, saturating); "
        "dst = acc, or f32(acc) * scale[n] when out = f32.",
        _regions_lin,
        occupancy=costs.lin_cycles, latency_param="lin_latency",
    ),
    OpSpec(
        "conv", 0x40, "CONV",
        (
            _buf("dst", "the [t, c] output"),
            _buf("src", "the [t, c] int16 input"),
            _buf("state", "the [kw-1, c] int16 state, oldest row first"),
            _buf("wgt", "the [kw, c] int16 taps"),
            _buf("bias", "the [c] int32 bias, at accumulator scale"),
            _count("t", "tokens"),
            _count("c", "channels"),
            _f("kw", 4, "kernel width (2 .. the target's conv_kernel_max)"),
            _count("src_ld", "elements between src rows"),
            _count("dst_ld", "elements between dst rows"),
            _shift("shift", "from the accumulator to the output"),
            _dtype("out_type", "output element type", ("i16", "i32")),
            _f("upd", 1, "1: write the last kw-1 input rows back to state"),
        ),
        "Causal depthwise conv1d with state: xx = concat(state, src); "
        "dst[t, c] = sat(rshift_round(sum_j wgt[j, c] * xx[t + j, c] + bias[c], shift)); "
        "upd: state = the last kw-1 rows of xx.",
        _regions_conv,
        occupancy=costs.conv_cycles, latency_param="conv_latency",
    ),
    OpSpec(
        "ssm", 0x50, "SSM",
        (
            _buf("y", "the [t, h*p] int32 output"),
            _buf("xbc", "x of this op's first head in the [t, *] int16 conv output (B and C in the same rows)"),
            _buf("dt", "the [t, h] int16 raw dt (before dt_bias and softplus)"),
            _buf("params", "the [h, 4] int32 per-head parameters (A, D, dt_bias, 0)"),
            _buf("state", "the [h, p, n] int32 state, read and written back"),
            _count("t", "tokens"),
            _count("h", "heads in this op", 8),
            _count("p", "head dimension"),
            _count("n", "state size (d_state)"),
            _count("hpg", "heads per B/C group", 8),
            _count("xbc_ld", "elements between xbc rows"),
            _count("b_off", "element offset of this op's first B group from xbc"),
            _count("c_off", "element offset of this op's first C group from xbc"),
            _count("dt_ld", "elements between dt rows"),
            _count("y_ld", "elements between y rows"),
            _f("dt_frac", 5, "fraction bits of dt, dt_bias and the NLA's softplus output"),
            _f("a_frac", 6, "fraction bits of A"),
            _shift("dbx_shift", "of dt*x*B to the state's format"),
            _shift("y_shift", "of C.h to y's format"),
            _shift("d_shift", "of D*x to y's format"),
        ),
        "Selective scan over t tokens: dt = softplus~(dt_raw + dt_bias), dA = exp~(dt * A) on the NLA "
        "(first-order tables), state = dA * state + dt * x * B, y = C . state + D * x, in power-of-two "
        "fixed point (NUMERICS.md).",
        _regions_ssm,
        occupancy=costs.ssm_cycles, latency_param="ssm_latency",
    ),
    OpSpec(
        "vec", 0x60, "VEC",
        (
            _buf("dst", "the [rows, cols] output (row pitch dst_ld)"),
            _buf("a", "the [rows, cols] input (row pitch a_ld)"),
            _buf("b", "the second operand ([rows, cols] with row pitch b_ld, or [cols] broadcast over rows)"),
            _count("rows", "rows"),
            _count("cols", "columns"),
            _count("a_ld", "elements between a rows"),
            _count("b_ld", "elements between b rows (b_mode = full; ignored for row and none)"),
            _count("dst_ld", "elements between dst rows"),
            _dtype("a_type", "element type of a"),
            _f("a_exp", 8, "power-of-two scale of an integer a: value = a * 2^a_exp", "s"),
            _dtype("b_type", "element type of b"),
            _f("b_exp", 8, "power-of-two scale of an integer b", "s"),
            _f("b_mode", 2, "second operand: none, full [rows, cols], row [cols] broadcast", "enum", ("none", "full",
                                                                                                      "row")),
            _f("op0", 4, "first micro-op", "enum", MICRO_OPS),
            _f("op1", 4, "second micro-op", "enum", MICRO_OPS),
            _f("op2", 4, "third micro-op", "enum", MICRO_OPS),
            _f("op3", 4, "fourth micro-op", "enum", MICRO_OPS),
            _count("group", "rmsnorm group size in columns (divides cols)"),
            _f("eps", 32, "rmsnorm epsilon", "f32"),
            _dtype("out_type", "output element type"),
            _f("out_scale", 32, "quantization scale for integer outputs: q = sat(rne(x * out_scale))", "f32"),
        ),
        "Fused element-wise chain in IEEE binary32: x = dequant(a); x = op3(op2(op1(op0(x)))) with "
        "add/mul/gate taking b; dst = x, or an integer quantization of it.",  # isa.numerics.MICRO_OPS_WITH_B
        _regions_vec,
        occupancy=costs.vec_cycles, latency_param="vec_latency",
    ),
    OpSpec(
        "vec.argmax", 0x61, "VEC",
        (
            _buf("dst", "the [rows] int32 indices"),
            _buf("a", "the [rows, cols] f32 input"),
            _count("rows", "rows"),
            _count("cols", "columns"),
        ),
        "Per row, the index of the largest element (the first one on ties).",
        _regions_argmax,
        occupancy=costs.argmax_cycles, latency_param="vec_latency",
    ),
    OpSpec(
        "ctl.wait", 0x70, "CTL",
        (_f("sem", 8, "semaphore index"), _f("count", 16, "completions to wait for; subtracted once satisfied")),
        "Hold this bundle (and every later one) until semaphore `sem` is at least `count`, then subtract `count`.",
        _no_regions,
        occupancy=costs.no_cycles,
    ),
    OpSpec("ctl.halt", 0x71, "CTL", (), "End of program: completes once every operation in flight has completed.",
           _no_regions, occupancy=costs.no_cycles),
)

_UNCOSTED = [s.name for s in OPS.values() if s.occupancy is None]
if _UNCOSTED:
    raise ValueError(f"op(s) {', '.join(_UNCOSTED)}: no occupancy formula (the cost column, isa.costs)")

BY_OPCODE: Mapping[int, OpSpec] = MappingProxyType({s.opcode: s for s in OPS.values()})
