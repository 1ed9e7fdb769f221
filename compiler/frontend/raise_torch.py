"""Raising torch-mlir's torch dialect (parsed by xDSL as unregistered ops) to the `mamba` dialect.

Place in the flow: last step of the frontend.  `parse_torch_module` reads the
generic text compiler.frontend.export prints; `raise_to_mamba` walks each
function once and emits one `mamba` op per model operation:

    torch.operator "fastmamba.weight"           -> mamba.weight (the parameter's name)
    torch.aten.embedding                        -> mamba.embedding
    torch.aten.linear (no bias)                 -> mamba.linear
    torch.aten.slice.Tensor (step 1)            -> mamba.slice (dropped when it keeps everything)
    torch.aten.silu / softplus (beta 1, threshold 20) -> mamba.silu / mamba.softplus
    torch.aten.add.Tensor (alpha 1), mul.Tensor -> mamba.add / mamba.mul
    torch.operator "torch.fastmamba.<op>"       -> mamba.rmsnorm, gated_rmsnorm, conv1d, ssm_scan, ssm_step, lm_head
    torch.constant.*                            -> folded into the attributes of their users

Anything else is a `ModelError` naming the op and its source location; every
raised op's result type is checked against the type torch-mlir inferred.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import Builtin, IntegerType, ModuleOp, TensorType, f16, f32, f64, i64, bf16
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue
from xdsl.parser import Parser
from xdsl.utils.exceptions import ParseError, VerifyException

from fastmamba.compiler.dialects import mamba
from fastmamba.compiler.frontend.export import WEIGHT_ATTR, WEIGHT_OP
from fastmamba.isa.errors import InputError
from fastmamba.compiler.errors import ModelError

__all__ = ["parse_torch_module", "raise_to_mamba", "weight_value_name"]

_ELEMENT_TYPES: dict[str, Attribute] = {"f32": f32, "f64": f64, "f16": f16, "bf16": bf16, "si64": i64,
                                        "si32": IntegerType(32)}
_INT64_MAX = 2**63 - 1


def parse_torch_module(text: str) -> ModuleOp:
    """xDSL's view of torch-mlir's generic text: builtin/func registered, torch ops unregistered."""
    ctx = Context(allow_unregistered=True)
    ctx.load_dialect(Builtin)
    ctx.load_dialect(func.Func)
    try:
        return Parser(ctx, text).parse_module()
    except ParseError as exc:
        raise InputError(f"cannot parse torch-mlir output: {str(exc).splitlines()[0]}") from None


def weight_value_name(weight: str) -> str:
    """A short SSA name for a weight: backbone.layers.3.mixer.in_proj.weight -> l3_in_proj."""
    short = weight.removeprefix("backbone.").replace("layers.", "l").replace("mixer.", "")
    short = short.removesuffix(".weight")
    return re.sub(r"[^A-Za-z0-9_]", "_", short)


class _Raiser:
    def __init__(self) -> None:
        self.values: dict[SSAValue, Any] = {}  # torch value -> mamba SSAValue or Python constant
        self.block: Block | None = None

    # --- helpers --------------------------------------------------------------------------------------------------
    @staticmethod
    def op_name(op: Operation) -> str:
        name = op.op_name.data if hasattr(op, "op_name") else op.name
        if name == "torch.operator":
            return str(op.properties["name"].data)
        return name

    @staticmethod
    def where(op: Operation) -> str:
        loc = getattr(op, "location", None)
        text = str(loc) if loc is not None else "unknown location"
        match = re.fullmatch(r'loc\("([^"]*)":(\d+):\d+\)', text)
        return f"{match.group(1)} (line {match.group(2)})" if match else text

    def error(self, op: Operation, why: str) -> ModelError:
        return ModelError(f"cannot raise {self.op_name(op)} at {self.where(op)}: {why}")

    def tensor_type(self, op: Operation, typ: Attribute) -> TensorType:
        if getattr(typ, "attr_name", None) is not None and typ.attr_name.data == "torch.vtensor":
            match = re.fullmatch(r"\[([0-9,]*)\],(\w+)", typ.value.data)
            if match and match.group(2) in _ELEMENT_TYPES:
                shape = [int(d) for d in match.group(1).split(",") if d]
                return mamba.tensor_type(shape, _ELEMENT_TYPES[match.group(2)])
        raise self.error(op, f"unsupported type !{getattr(getattr(typ, 'attr_name', None), 'data', typ)}"
                             f"<{getattr(getattr(typ, 'value', None), 'data', '')}>")

    def arg(self, op: Operation, i: int, kind: type | tuple = object) -> Any:
        if i >= len(op.operands):
            raise self.error(op, f"expected at least {i + 1} operands")
        value = self.values.get(op.operands[i], _MISSING)
        if value is _MISSING:
            raise self.error(op, f"operand {i} comes from an op that was not raised")
        if not isinstance(value, kind):
            raise self.error(op, f"operand {i} must be {getattr(kind, '__name__', kind)}, got {value!r}")
        return value

    def tensor(self, op: Operation, i: int) -> SSAValue:
        return self.arg(op, i, SSAValue)

    def opt_tensor(self, op: Operation, i: int) -> SSAValue | None:
        return self.arg(op, i, (SSAValue, type(None)))

    def emit(self, torch_op: Operation, new: Operation) -> None:
        """Insert `new`, check its result types against torch's, and map the torch results to it."""
        if len(new.results) != len(torch_op.results):
            raise self.error(torch_op, f"{new.name} has {len(new.results)} results, torch has {len(torch_op.results)}")
        for mine, theirs in zip(new.results, torch_op.results):
            want = self.tensor_type(torch_op, theirs.type)
            if mine.type != want:
                raise self.error(torch_op, f"{new.name} gives {mine.type}, torch-mlir inferred {want}")
            self.values[theirs] = mine
        assert self.block is not None
        self.block.add_op(new)

    # --- op handlers ----------------------------------------------------------------------------------------------
    def constant(self, op: Operation) -> None:
        name = self.op_name(op)
        if name == "torch.constant.none":
            value = None
        else:
            attr = op.properties.get("value")
            if attr is None:
                raise self.error(op, "constant without a value")
            value = attr.value.data if hasattr(attr, "value") else attr.data
            if name == "torch.constant.bool":
                value = bool(value)
            elif name == "torch.constant.int":
                value = int(value)
            elif name == "torch.constant.float":
                value = float(value)
        self.values[op.results[0]] = value

    def weight(self, op: Operation) -> None:
        name = op.attributes.get(WEIGHT_ATTR)
        if name is None:
            raise self.error(op, f"no {WEIGHT_ATTR} attribute")
        new = mamba.WeightOp(name.data, self.tensor_type(op, op.results[0].type))
        new.result.name_hint = weight_value_name(name.data)
        self.emit(op, new)

    def embedding(self, op: Operation) -> None:
        self.emit(op, mamba.EmbeddingOp(self.tensor(op, 1), self.tensor(op, 0)))

    def linear(self, op: Operation) -> None:
        if self.opt_tensor(op, 2) is not None:
            raise self.error(op, "linear layers with a bias are not supported")
        self.emit(op, mamba.LinearOp(self.tensor(op, 0), self.tensor(op, 1)))

    def slice(self, op: Operation) -> None:
        x = self.tensor(op, 0)
        dim, start, end, step = (self.arg(op, i, (int, type(None))) for i in range(1, 5))
        shape = x.type.get_shape()
        dim = dim + len(shape) if dim < 0 else dim
        if step != 1:
            raise self.error(op, f"slices with step {step} are not supported")
        size = shape[dim]
        start = 0 if start is None else (start + size if start < 0 else start)
        end = size if end is None or end >= _INT64_MAX else (end + size if end < 0 else end)
        start, end = max(0, min(start, size)), max(0, min(end, size))
        if start == 0 and end == size:
            self.values[op.results[0]] = x
            return
        self.emit(op, mamba.SliceOp(x, dim, start, end - start))

    def unary(self, cls: type[Operation]) -> Callable[[Operation], None]:
        return lambda op: self.emit(op, cls(self.tensor(op, 0)))

    def softplus(self, op: Operation) -> None:
        beta, threshold = self.arg(op, 1, (int, float)), self.arg(op, 2, (int, float))
        if beta != 1 or threshold != 20:
            raise self.error(op, f"only softplus with beta 1 and threshold 20 is supported, got {beta} and {threshold}")
        self.emit(op, mamba.SoftplusOp(self.tensor(op, 0)))

    def binary(self, cls: type[Operation]) -> Callable[[Operation], None]:
        def handle(op: Operation) -> None:
            lhs, rhs = self.tensor(op, 0), self.tensor(op, 1)
            if len(op.operands) > 2 and self.arg(op, 2, (int, float)) != 1:
                raise self.error(op, "only alpha 1 is supported")
            if len(rhs.type.get_shape()) > len(lhs.type.get_shape()):
                lhs, rhs = rhs, lhs  # both ops commute; the broadcast operand goes right
            self.emit(op, cls(lhs, rhs))
        return handle

    def rmsnorm(self, op: Operation) -> None:
        self.emit(op, mamba.RMSNormOp(self.tensor(op, 0), self.tensor(op, 1), self.arg(op, 2, float)))

    def gated_rmsnorm(self, op: Operation) -> None:
        self.emit(op, mamba.GatedRMSNormOp(self.tensor(op, 0), self.tensor(op, 1), self.tensor(op, 2),
                                           self.arg(op, 3, int), self.arg(op, 4, float)))

    def conv1d(self, op: Operation) -> None:
        self.emit(op, mamba.Conv1dOp(self.tensor(op, 0), self.tensor(op, 1), self.opt_tensor(op, 2),
                                     self.opt_tensor(op, 3)))

    def ssm_scan(self, op: Operation) -> None:
        ins = [self.tensor(op, i) for i in range(6)]
        state_type = self.tensor_type(op, op.results[1].type)
        self.emit(op, mamba.SSMScanOp(*ins, self.opt_tensor(op, 6), state_type))

    def ssm_step(self, op: Operation) -> None:
        self.emit(op, mamba.SSMStepOp(*[self.tensor(op, i) for i in range(7)]))

    def lm_head(self, op: Operation) -> None:
        self.emit(op, mamba.LMHeadOp(self.tensor(op, 0), self.tensor(op, 1)))

    def handlers(self) -> dict[str, Callable[[Operation], None]]:
        return {
            "torch.constant.int": self.constant, "torch.constant.float": self.constant,
            "torch.constant.bool": self.constant, "torch.constant.none": self.constant,
            WEIGHT_OP: self.weight,
            "torch.aten.embedding": self.embedding,
            "torch.aten.linear": self.linear,
            "torch.aten.slice.Tensor": self.slice,
            "torch.aten.silu": self.unary(mamba.SiluOp),
            "torch.aten.softplus": self.softplus,
            "torch.aten.add.Tensor": self.binary(mamba.AddOp),
            "torch.aten.mul.Tensor": self.binary(mamba.MulOp),
            "torch.fastmamba.rmsnorm": self.rmsnorm,
            "torch.fastmamba.gated_rmsnorm": self.gated_rmsnorm,
            "torch.fastmamba.causal_conv1d": self.conv1d,
            "torch.fastmamba.ssm_scan": self.ssm_scan,
            "torch.fastmamba.ssm_step": self.ssm_step,
            "torch.fastmamba.lm_head": self.lm_head,
        }

    # --- functions ------------------------------------------------------------------------------------------------
    def raise_function(self, fn: func.FuncOp) -> func.FuncOp:
        handlers = self.handlers()
        old_block = fn.body.block
        arg_types = [self.tensor_type(fn, a.type) for a in old_block.args]
        self.block = Block(arg_types=arg_types)
        names = _argument_names(fn.sym_name.data, len(arg_types))
        for old, new, name in zip(old_block.args, self.block.args, names):
            new.name_hint = name
            self.values[old] = new
        results: list[SSAValue] = []
        for op in old_block.ops:
            if isinstance(op, func.ReturnOp):
                results = [self.tensor(op, i) for i in range(len(op.operands))]
                self.block.add_op(func.ReturnOp(*results))
                continue
            handler = handlers.get(self.op_name(op))
            if handler is None:
                raise self.error(op, "the mamba dialect has no op for it")
            handler(op)
        return func.FuncOp(fn.sym_name.data, ([a.type for a in self.block.args], [r.type for r in results]),
                           Region(self.block))


_MISSING = object()


def _argument_names(program: str, count: int) -> list[str]:
    first = "tokens" if program == "prefill" else "token"
    names = [first]
    for i in range((count - 1) // 2):
        names += [f"conv{i}", f"ssm{i}"]
    return names[:count] + [f"arg{i}" for i in range(len(names), count)]


def raise_to_mamba(torch_module: ModuleOp) -> ModuleOp:
    """A new module: each torch-level func.func raised to `mamba` ops; verified."""
    functions = []
    for op in torch_module.body.block.ops:
        if not isinstance(op, func.FuncOp):
            raise ModelError(f"cannot raise {op.name}: only func.func is expected at the top level")
        functions.append(_Raiser().raise_function(op))
    module = ModuleOp(functions)
    try:
        module.verify()
    except VerifyException as exc:
        raise ModelError(f"raised IR does not verify: {str(exc).splitlines()[0]}") from None
    return module
