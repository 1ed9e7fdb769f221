"""The `accel` dialect: one op per accelerator instruction, generated from the ISA table, plus programs and bundles.

Place in the flow: the lowest IR of the compiler.  lower-to-accel
produces an `accel.program` holding instruction ops in program order;
schedule-vliw (passes/schedule_vliw.py) groups them into `accel.bundle`s with
delays, assigns DMA semaphores and inserts `accel.ctl.wait`s; the emitter
(compiler/backend/emit.py) turns the scheduled program into an
`isa.container.Program`.

- Instruction ops: `accel.<mnemonic>` for every entry of
  `isa.instructions.OPS` (`accel.ld`, `accel.lin`, `accel.vec.argmax`,
  `accel.ctl.wait`, ...), generated from the table: one property per field
  (integers as i64 `IntegerAttr`, `f32` fields as f32 `FloatAttr`, enums by
  their value name as `StringAttr`, each an IRDL constraint of the property),
  the value verified by the table's `FieldSpec.check`; an optional `debug` string names the IR op it came from
  (ASCII: xDSL 0.75 parses non-ASCII string escapes back as bytes).
  No operands or results: instructions act on memory, their order is the
  program order.  Before plan-memory an op's optional `mem` property maps
  address fields to the blocks they are offsets into, each a typed
  `#accel.mem<SPACE, "NAME">` (MemAttr): `buf` an on-chip buffer, `const` a
  constant block of the DDR image, `tensor` a DDR tensor of the program; the
  verifier checks that each names an address field of the op, and that an
  on-chip block is named only by a field addressing the buffer and a DDR
  block only by one addressing DDR.
- `accel.program`: a named program (`sym_name`), its DDR size and tensor
  descriptors (`tensors`: an array of dictionaries with the fields of
  `isa.container.TensorDesc`), and one block holding either instruction ops
  (unscheduled) or bundles (scheduled), never both.
- `accel.bundle`: the ops issued in one cycle (at most one per slot) and the
  idle `delay` after them.

- `#accel.target<"vc709", "<sha-256>">` (TargetAttr): the hardware a module
  is compiled for, as the module attribute `accel.target`: a preset name or a
  target file's absolute path, and the digest of its parameters
  (`Target.digest()`).  set-target (or `--target`) writes it once; every pass
  that needs hardware facts reads it with `module_target`, which reloads the
  target and refuses a file whose parameters changed since.

`instruction_of(op)` / `op_of(instr, debug)` convert between ops and
`isa.instructions.Instruction`; `tensor_attr` / `tensor_of` between
descriptors and their dictionaries.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import ClassVar

from xdsl.dialects.builtin import (
    ArrayAttr,
    DenseArrayBase,
    DictionaryAttr,
    I64,
    Float32Type,
    FloatAttr,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    i64,
)
from xdsl.dialects.utils import EnumAttribute
from xdsl.ir import Attribute, Block, Dialect, Operation, ParametrizedAttribute, Region
from xdsl.irdl import (
    AttrConstraint,
    AttrSetConstraint,
    IRDLOperation,
    MessageConstraint,
    ParsePropInAttrDict,
    irdl_attr_definition,
    irdl_op_definition,
    param_def,
    opt_prop_def,
    prop_def,
    region_def,
    traits_def,
)
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.traits import NoTerminator
from xdsl.utils.exceptions import VerifyException
from xdsl.utils.str_enum import StrEnum

from fastmamba.isa.container import TENSOR_DTYPES, TENSOR_ROLES, TensorDesc
from fastmamba.isa.errors import InputError
from fastmamba.isa.instructions import OPS, SLOTS, FieldSpec, Instruction, InstructionError, OpSpec
from fastmamba.isa.target import PRESETS, Target, load_target

__all__ = [
    "Accel", "AccelInstructionOp", "ProgramOp", "BundleOp", "INSTRUCTION_OPS", "instruction_of", "op_of",
    "tensor_attr", "tensor_of", "MemSpace", "MemSpaceAttr", "MemAttr", "MEM_PROP", "buf_ref", "const_ref",
    "tensor_ref", "TargetAttr", "TARGET_ATTR", "target_attr", "module_target",
]

DIALECT = "accel"
DEBUG_PROP = "debug"
MEM_PROP = "mem"  # before plan-memory: address field -> MemAttr
_f32 = Float32Type()


# --- symbolic memory ----------------------------------------------------------------------------------------------


class MemSpace(StrEnum):
    """Where a symbolic block lives: the on-chip buffer, or DDR as a constant block or a program tensor."""

    BUF = "buf"
    CONST = "const"
    TENSOR = "tensor"


@irdl_attr_definition
class MemSpaceAttr(EnumAttribute[MemSpace]):
    name = "accel.space"


@irdl_attr_definition
class MemAttr(ParametrizedAttribute):
    """`#accel.mem<buf, "NAME">`: the block an address field is an offset into (lower-to-accel to plan-memory)."""

    name = "accel.mem"
    space: MemSpaceAttr = param_def()
    block: StringAttr = param_def()

    def print_parameters(self, printer: Printer) -> None:
        with printer.in_angle_brackets():
            printer.print_string(f"{self.space.data.value}, ")
            printer.print_string_literal(self.block.data)

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        with parser.in_angle_brackets():
            space = parser.parse_str_enum(MemSpace)
            parser.parse_punctuation(",")
            block = parser.parse_str_literal()
        return MemSpaceAttr(space), StringAttr(block)

    @property
    def on_chip(self) -> bool:
        return self.space.data == MemSpace.BUF

    def __str__(self) -> str:
        return f"{self.space.data.value}:{self.block.data}"


def buf_ref(name: str) -> MemAttr:
    """An on-chip buffer block (plan-memory places it by lifetime)."""
    return MemAttr(MemSpaceAttr(MemSpace.BUF), StringAttr(name))


def const_ref(name: str) -> MemAttr:
    """A constant block of the DDR image (plan-memory places each name once per module)."""
    return MemAttr(MemSpaceAttr(MemSpace.CONST), StringAttr(name))


def tensor_ref(name: str) -> MemAttr:
    """A DDR tensor of the program (its descriptor's address after plan-memory)."""
    return MemAttr(MemSpaceAttr(MemSpace.TENSOR), StringAttr(name))


# --- instruction ops, generated from the table ------------------------------------------------------------------


_ATTRS: dict[tuple[str, tuple[str, ...] | None, int], Attribute] = {}  # integer and enum properties, made once
_ATTRS_MAX = 1 << 16  # entries kept (sizes, strides, codes repeat; the rest are made each time)


def _attr_of(spec: FieldSpec, value: int | float) -> Attribute:
    """The property holding a canonical field value (integer and enum ones shared: attributes are immutable, and
    building one (verified) costs more than the rest of an op's construction)."""
    if spec.kind == "f32":
        return FloatAttr(float(value), _f32)
    key = (spec.kind, tuple(spec.values) if spec.kind == "enum" else None, int(value))
    attr = _ATTRS.get(key)
    if attr is None:
        attr = StringAttr(spec.values[int(value)]) if spec.kind == "enum" else IntegerAttr(int(value), i64)
        if len(_ATTRS) < _ATTRS_MAX:
            _ATTRS[key] = attr
    return attr


def _value_of(spec: FieldSpec, attr: Attribute) -> int | float | str:
    if spec.kind == "f32":
        assert isinstance(attr, FloatAttr)
        return float(attr.value.data)
    if spec.kind == "enum":
        assert isinstance(attr, StringAttr)
        return attr.data
    assert isinstance(attr, IntegerAttr)
    return int(attr.value.data)


def _prop_constraint(spec: FieldSpec) -> AttrConstraint:
    """The IRDL constraint of a field's property: an i64 integer, an f32 float, or one of the enum's names (the
    value's range, from the field's width, is the table's FieldSpec.check in verify_)."""
    if spec.kind == "f32":
        return MessageConstraint(FloatAttr[Float32Type], f"field {spec.name} must be an f32 float")
    if spec.kind == "enum":
        return MessageConstraint(AttrSetConstraint(frozenset(StringAttr(v) for v in spec.values)),
                                 f"field {spec.name} must be one of {', '.join(spec.values)}")
    return MessageConstraint(IntegerAttr[I64], f"field {spec.name} must be an i64 integer")


class AccelInstructionOp(IRDLOperation):
    """Base of the generated instruction ops; `SPEC` is the op's entry of the instruction table."""

    SPEC: ClassVar[OpSpec]
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "attr-dict"

    @property
    def mnemonic(self) -> str:
        return self.SPEC.name

    @property
    def slot(self) -> str:
        return self.SPEC.slot

    @property
    def debug_text(self) -> str:
        attr = self.properties.get(DEBUG_PROP)
        return attr.data if isinstance(attr, StringAttr) else ""

    def field(self, name: str) -> int | float | str:
        """A field's value as written in the IR (enums by name)."""
        return _value_of(self.SPEC.field_map[name], self.properties[name])

    def set_field(self, name: str, value: int | float) -> None:
        """Set a field in place, checked as Instruction checks it (an InstructionError when out of range)."""
        spec = self.SPEC.field_map[name]
        self.properties[name] = _attr_of(spec, spec.check(self.SPEC.name, value))

    @property
    def mem(self) -> dict[str, MemAttr]:
        """Address field -> the symbolic block it is an offset into (empty once plan-memory placed them)."""
        attr = self.properties.get(MEM_PROP)
        if not isinstance(attr, DictionaryAttr):
            return {}
        return {k: v for k, v in attr.data.items() if isinstance(v, MemAttr)}

    def verify_(self) -> None:
        for spec in self.SPEC.fields:
            attr = self.properties.get(spec.name)
            try:
                spec.check(self.SPEC.name, _value_of(spec, attr))
            except InstructionError as exc:
                raise VerifyException(f"{self.name}: {exc}") from None
        mem = self.properties.get(MEM_PROP)
        if isinstance(mem, DictionaryAttr):
            spaces = {r.field: r.space for r in instruction_of(self).regions()}
            for fname, ref in mem.data.items():
                if not isinstance(ref, MemAttr):
                    raise VerifyException(f"{self.name}: mem maps {fname} to {ref}, not an #accel.mem")
                if fname not in spaces:
                    raise VerifyException(f"{self.name}: mem names {fname}, not an address field of the op "
                                          f"({', '.join(sorted(spaces)) or 'none'})")
                if (spaces[fname] == "buf") != ref.on_chip:
                    raise VerifyException(f"{self.name}: field {fname} addresses {spaces[fname]}, mem puts it in "
                                          f"{ref.space.data.value} block {ref.block.data!r}")


def _class_name(mnemonic: str) -> str:
    return "".join(part.capitalize() for part in mnemonic.split(".")) + "Op"


def _make_op(spec: OpSpec) -> type[AccelInstructionOp]:
    body: dict[str, object] = {
        "name": f"{DIALECT}.{spec.name}",
        "SPEC": spec,
        "__annotations__": {"SPEC": ClassVar[OpSpec]},
        "__doc__": spec.doc,
        "__module__": __name__,
        "__qualname__": _class_name(spec.name),
        "debug": opt_prop_def(StringAttr, prop_name=DEBUG_PROP),
        "mem_blocks": opt_prop_def(DictionaryAttr, prop_name=MEM_PROP),
    }
    for f in spec.fields:
        body[f"field_{f.name}"] = prop_def(_prop_constraint(f), prop_name=f.name)
    return irdl_op_definition(type(_class_name(spec.name), (AccelInstructionOp,), body))


INSTRUCTION_OPS: dict[str, type[AccelInstructionOp]] = {name: _make_op(spec) for name, spec in OPS.items()}
"""mnemonic -> op class, for every operation of the instruction table."""

globals().update({cls.__name__: cls for cls in INSTRUCTION_OPS.values()})
__all__ += [cls.__name__ for cls in INSTRUCTION_OPS.values()]


def op_of(instr: Instruction, debug: str | None = None) -> AccelInstructionOp:
    """The `accel` op of an instruction, with optional debug text."""
    spec = instr.spec
    props: dict[str, Attribute] = {f.name: _attr_of(f, instr[f.name]) for f in spec.fields}
    if debug:
        props[DEBUG_PROP] = StringAttr(debug)
    return INSTRUCTION_OPS[instr.op].create(properties=props)


def instruction_of(op: Operation) -> Instruction:
    """The instruction an `accel` instruction op stands for (validated by the table)."""
    if not isinstance(op, AccelInstructionOp):
        raise InstructionError(f"{op.name} is not an accel instruction op")
    return Instruction(op.SPEC.name, {f.name: op.field(f.name) for f in op.SPEC.fields})


# --- tensor descriptors -----------------------------------------------------------------------------------------

_TENSOR_KEYS = ("name", "role", "ddr", "shape", "dtype", "scale", "exp")


def tensor_attr(t: TensorDesc) -> DictionaryAttr:
    """A tensor descriptor as the dictionary an `accel.program` stores."""
    return DictionaryAttr({
        "name": StringAttr(t.name), "role": StringAttr(t.role), "ddr": IntegerAttr(t.ddr, i64),
        "shape": DenseArrayBase.from_list(i64, list(t.shape)), "dtype": StringAttr(t.dtype),
        "scale": FloatAttr(float(t.scale), _f32), "exp": IntegerAttr(int(t.exp), i64),
    })


def tensor_of(attr: DictionaryAttr) -> TensorDesc:
    """The descriptor a program's tensor dictionary stands for; a malformed one is a VerifyException."""
    d = attr.data
    if sorted(d) != sorted(_TENSOR_KEYS):
        raise VerifyException(f"a tensor descriptor has the keys {', '.join(_TENSOR_KEYS)}, got {', '.join(sorted(d))}")
    kinds = {"name": StringAttr, "role": StringAttr, "dtype": StringAttr, "ddr": IntegerAttr, "exp": IntegerAttr,
             "scale": FloatAttr, "shape": DenseArrayBase}
    for key, kind in kinds.items():
        if not isinstance(d[key], kind):
            raise VerifyException(f"tensor descriptor key {key}: expected {kind.__name__}, got {d[key]}")
    name, role, dtype = d["name"].data, d["role"].data, d["dtype"].data
    if role not in TENSOR_ROLES:
        raise VerifyException(f"tensor {name}: role {role!r} is not one of {', '.join(TENSOR_ROLES)}")
    if dtype not in TENSOR_DTYPES:
        raise VerifyException(f"tensor {name}: dtype {dtype!r} is not one of {', '.join(TENSOR_DTYPES)}")
    shape = tuple(int(v) for v in d["shape"].get_values())
    if any(s < 0 for s in shape) or d["ddr"].value.data < 0:
        raise VerifyException(f"tensor {name}: negative address or dimension")
    return TensorDesc(name, role, int(d["ddr"].value.data), shape, dtype, float(d["scale"].value.data),
                      int(d["exp"].value.data))


# --- the target ------------------------------------------------------------------------------------------------

TARGET_ATTR = "accel.target"  # the module attribute holding the TargetAttr


@irdl_attr_definition
class TargetAttr(ParametrizedAttribute):
    """`#accel.target<"vc709", "<sha-256 hex>">`: a target preset's name or a target file's path, and the digest
    of the parameters it named when it was set."""

    name = "accel.target"
    spec: StringAttr = param_def()
    digest: StringAttr = param_def()

    def verify(self) -> None:
        d = self.digest.data
        if len(d) != 64 or any(c not in "0123456789abcdef" for c in d):
            raise VerifyException(f"#{self.name}: the digest is 64 lowercase hex digits (SHA-256), got {d!r}")


def target_attr(spec: str) -> TargetAttr:
    """The attribute naming target `spec` (a preset, or a .toml/.json file: recorded by its absolute path)."""
    target = load_target(spec)
    name = spec if spec in PRESETS else str(Path(spec).resolve())
    return TargetAttr(StringAttr(name), StringAttr(target.digest().hex()))


def module_target(module: ModuleOp, who: str) -> Target:
    """The target `module` is compiled for; `who` (a pass) names itself in the error when there is none."""
    attr = module.attributes.get(TARGET_ATTR)
    if attr is None:
        raise InputError(f"{who}: the module has no target ({TARGET_ATTR}): run set-target{{target=NAME|FILE}} "
                         "before it (fastmamba compile does, from --target)")
    if not isinstance(attr, TargetAttr):
        raise InputError(f"{who}: the module attribute {TARGET_ATTR} is not an #accel.target, got {attr}")
    target = load_target(attr.spec.data)
    if target.digest().hex() != attr.digest.data:
        raise InputError(f"{who}: target {attr.spec.data} has other parameters than when set-target recorded it "
                         f"(digest {target.digest().hex()[:16]}…, recorded {attr.digest.data[:16]}…)")
    return target


# --- structure --------------------------------------------------------------------------------------------------


@irdl_op_definition
class BundleOp(IRDLOperation):
    """The operations issued together (at most one per slot) and the idle cycles the schedule wants after them."""

    name = "accel.bundle"
    delay = prop_def(IntegerAttr)
    body = region_def("single_block")
    irdl_options = (ParsePropInAttrDict(),)
    traits = traits_def(NoTerminator())
    assembly_format = "attr-dict-with-keyword $body"

    def __init__(self, ops: Iterable[Operation] = (), delay: int = 0):
        attr = _ATTRS.get(("delay", None, delay))  # (shared as the instruction ops' integer properties are)
        if attr is None:
            attr = IntegerAttr(delay, i64)
            if len(_ATTRS) < _ATTRS_MAX:
                _ATTRS["delay", None, delay] = attr
        super().__init__(properties={"delay": attr}, regions=[Region(Block(list(ops)))])

    @property
    def delay_cycles(self) -> int:
        return int(self.delay.value.data)

    @property
    def instruction_ops(self) -> list[AccelInstructionOp]:
        return [op for op in self.body.block.ops if isinstance(op, AccelInstructionOp)]

    def verify_(self) -> None:
        from fastmamba.isa.instructions import BUNDLE_DELAY_BITS

        if not 0 <= self.delay_cycles < (1 << BUNDLE_DELAY_BITS):
            raise VerifyException(f"{self.name}: delay {self.delay_cycles} outside [0, {(1 << BUNDLE_DELAY_BITS) - 1}]")
        if not isinstance(self.parent_op(), ProgramOp):
            raise VerifyException(f"{self.name}: must be directly inside an accel.program")
        seen: dict[str, str] = {}
        for op in self.body.block.ops:
            if not isinstance(op, AccelInstructionOp):
                raise VerifyException(f"{self.name}: holds only instruction ops, got {op.name}")
            if op.slot in seen:
                raise VerifyException(f"{self.name}: {seen[op.slot]} and {op.name} both issue in slot {op.slot}")
            seen[op.slot] = op.name


@irdl_op_definition
class ProgramOp(IRDLOperation):
    """A named program: DDR size, tensor descriptors and its instructions (unscheduled) or bundles (scheduled)."""

    name = "accel.program"
    sym_name = prop_def(StringAttr)
    ddr_size = prop_def(IntegerAttr)
    tensors = prop_def(ArrayAttr)
    body = region_def("single_block")
    irdl_options = (ParsePropInAttrDict(),)
    traits = traits_def(NoTerminator())
    assembly_format = "attr-dict-with-keyword $body"

    def __init__(self, name: str, ddr_size: int, tensors: Sequence[TensorDesc] = (), ops: Iterable[Operation] = ()):
        super().__init__(
            properties={"sym_name": StringAttr(name), "ddr_size": IntegerAttr(ddr_size, i64),
                        "tensors": ArrayAttr([tensor_attr(t) for t in tensors])},
            regions=[Region(Block(list(ops)))])

    @property
    def program_name(self) -> str:
        return self.sym_name.data

    @property
    def ddr_bytes(self) -> int:
        return int(self.ddr_size.value.data)

    @property
    def tensor_descs(self) -> tuple[TensorDesc, ...]:
        return tuple(tensor_of(t) for t in self.tensors.data)

    @property
    def is_scheduled(self) -> bool:
        return any(isinstance(op, BundleOp) for op in self.body.block.ops)

    def verify_(self) -> None:
        if self.ddr_bytes < 0:
            raise VerifyException(f"{self.name} {self.program_name}: negative ddr_size")
        names = []
        for t in self.tensors.data:
            if not isinstance(t, DictionaryAttr):
                raise VerifyException(f"{self.name} {self.program_name}: tensors holds dictionaries, got {t}")
            names.append(tensor_of(t).name)
        if len(set(names)) != len(names):
            raise VerifyException(f"{self.name} {self.program_name}: duplicate tensor names")
        kinds = {isinstance(op, BundleOp) for op in self.body.block.ops}
        if len(kinds) > 1:
            raise VerifyException(f"{self.name} {self.program_name}: holds bundles and loose instructions at once")
        for op in self.body.block.ops:
            if not isinstance(op, (BundleOp, AccelInstructionOp)):
                raise VerifyException(f"{self.name} {self.program_name}: holds only accel ops, got {op.name}")


assert set(SLOTS) >= {s.slot for s in OPS.values()}

Accel = Dialect(DIALECT, [ProgramOp, BundleOp, *INSTRUCTION_OPS.values()], [MemSpaceAttr, MemAttr, TargetAttr])
