"""The `mamba` dialect: tensor-level Mamba2 model operations, one op per model operation.

Place in the flow: the frontend raises torch-mlir's torch dialect to these
ops (compiler.frontend.raise_torch); the passes rewrite them (Hadamard,
quantization, fusion) and lower them to the accelerator.  The tensors carry no
batch dimension (the accelerator runs one sequence); T is the number of
tokens of the program (L in prefill, 1 in a decode step).

Weights are not in the IR: `mamba.weight "name"` stands for the checkpoint
tensor of that name (its type says the shape) and the interpreter or a later
pass reads the value from a weight store.  Each op's verifier checks shapes,
element types and attribute ranges; the semantics are written once, in
compiler.interpreters.mamba:
    embedding(tokens [T] int, table [V,D])            -> [T,D]
    rmsnorm(x [T,D], w [D]) {eps}                      -> x / sqrt(mean(x^2) + eps) * w
    linear(x [T,K], w [M,K]), lm_head(x [T,K], w [M,K])-> x @ w^T  [T,M]
    slice(x) {axis, start, size}                       -> x[..., start:start+size, ...]
    conv1d(x [T,C], w [C,1,K], bias [C]?, state [C,K-1]?) -> (y [T,C], state' [C,K-1])  causal, depthwise
    ssm_scan(x [T,H*P], dt [T,H], A_log [H], B [T,G*N], C [T,G*N], D [H], state [H,P,N]?)
                                                       -> (y [T,H*P], state' [H,P,N])
    ssm_step: as ssm_scan with T = 1 and the state required
    gated_rmsnorm(y [T,E], z [T,E], w [E]) {eps, group_size}
    silu, softplus (torch's: x for x > 20): elementwise
    add, mul: elementwise; rhs may have fewer (trailing) dimensions and is broadcast
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from xdsl.dialects.builtin import (
    AnyFloatConstr,
    FloatAttr,
    Float64Type,
    IntegerAttr,
    IntegerType,
    StringAttr,
    TensorType,
    i64,
)
from xdsl.ir import Attribute, Dialect, Operation, SSAValue
from xdsl.irdl import (
    AnyAttr,
    AttrSizedOperandSegments,
    IRDLOperation,
    MessageConstraint,
    VarConstraint,
    base,
    ParsePropInAttrDict,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    prop_def,
    result_def,
    traits_def,
)
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

__all__ = [
    "Mamba", "WeightOp", "EmbeddingOp", "RMSNormOp", "LinearOp", "LMHeadOp", "SliceOp", "Conv1dOp",
    "SSMScanOp", "SSMStepOp", "GatedRMSNormOp", "SiluOp", "SoftplusOp", "AddOp", "MulOp", "tensor_type",
]

_BINARY_FORMAT = "$lhs `,` $rhs attr-dict `:` functional-type(operands, results)"
_CALL_FORMAT = "operands attr-dict `:` functional-type(operands, results)"


def tensor_type(shape: Sequence[int], element_type: Attribute | None = None) -> TensorType:
    """A static tensor type (f32 unless told)."""
    from xdsl.dialects.builtin import f32

    return TensorType(element_type or f32, list(shape))


# --- verifier helpers -------------------------------------------------------------------------------------------


def _shape(op: Operation, value: SSAValue | None, what: str, rank: int | None = None) -> tuple[int, ...]:
    typ = value.type if value is not None else None
    if not isinstance(typ, TensorType):
        raise VerifyException(f"{op.name}: {what} must be a tensor, got {typ}")
    shape = tuple(typ.get_shape())
    if any(d < 0 for d in shape):
        raise VerifyException(f"{op.name}: {what} must have a static shape, got {typ}")
    if rank is not None and len(shape) != rank:
        raise VerifyException(f"{op.name}: {what} must have rank {rank}, got shape {list(shape)}")
    return shape


def _element(value: SSAValue) -> Attribute:
    assert isinstance(value.type, TensorType)
    return value.type.element_type


# IRDL constraints of the operand and result types: a float tensor whose element type all of the op's float
# tensors share (the variable E), a tensor of integers (token ids), a tensor whose element type the op's other
# such tensors share (a slice).  Shapes and their relations stay in each op's verify_.
_FLOAT = VarConstraint("E", AnyFloatConstr)
FLOAT_TENSOR = MessageConstraint(TensorType.constr(element_type=_FLOAT),
                                 "element types differ or are not floating-point")
INT_TENSOR = MessageConstraint(TensorType.constr(element_type=base(IntegerType)), "tokens must be integers")
SAME_TENSOR = MessageConstraint(TensorType.constr(element_type=VarConstraint("E", AnyAttr())),
                                "element types differ")


def _expect(op: Operation, what: str, got: Sequence[int], want: Sequence[int]) -> None:
    if tuple(got) != tuple(want):
        raise VerifyException(f"{op.name}: {what} has shape {list(got)}, expected {list(want)}")


def _eps(op: Operation, eps: FloatAttr) -> None:
    if not 0.0 < eps.value.data < 1.0:
        raise VerifyException(f"{op.name}: eps must lie in (0, 1), got {eps.value.data}")


class _MambaOp(IRDLOperation):
    irdl_options = (ParsePropInAttrDict(),)
    traits = traits_def(Pure())


# --- ops ----------------------------------------------------------------------------------------------------------


@irdl_op_definition
class WeightOp(_MambaOp):
    """A checkpoint tensor, by name: its value lives in the weight store, never in the IR."""

    name = "mamba.weight"
    weight_name = prop_def(StringAttr, prop_name="name")
    result = result_def(TensorType)
    assembly_format = "$name attr-dict `:` type($result)"

    def __init__(self, weight_name: str, result_type: TensorType):
        super().__init__(properties={"name": StringAttr(weight_name)}, result_types=[result_type])

    def verify_(self) -> None:
        if not self.weight_name.data:
            raise VerifyException(f"{self.name}: the weight name is empty")
        _shape(self, self.result, "the weight")


@irdl_op_definition
class EmbeddingOp(_MambaOp):
    name = "mamba.embedding"
    tokens = operand_def(INT_TENSOR)
    table = operand_def(FLOAT_TENSOR)
    result = result_def(FLOAT_TENSOR)
    assembly_format = _CALL_FORMAT

    def __init__(self, tokens: SSAValue, table: SSAValue):
        (t,), (_, d) = tokens.type.get_shape(), table.type.get_shape()
        super().__init__(operands=[tokens, table], result_types=[tensor_type((t, d), _element(table))])

    def verify_(self) -> None:
        (t,) = _shape(self, self.tokens, "tokens", 1)
        _, d = _shape(self, self.table, "the table", 2)
        _expect(self, "the result", _shape(self, self.result, "the result"), (t, d))


@irdl_op_definition
class RMSNormOp(_MambaOp):
    name = "mamba.rmsnorm"
    x = operand_def(FLOAT_TENSOR)
    weight = operand_def(FLOAT_TENSOR)
    eps = prop_def(FloatAttr)
    result = result_def(FLOAT_TENSOR)
    assembly_format = _CALL_FORMAT

    def __init__(self, x: SSAValue, weight: SSAValue, eps: float):
        super().__init__(operands=[x, weight], properties={"eps": FloatAttr(eps, Float64Type())}, result_types=[x.type])

    def verify_(self) -> None:
        t, d = _shape(self, self.x, "x", 2)
        _expect(self, "the weight", _shape(self, self.weight, "the weight"), (d,))
        _expect(self, "the result", _shape(self, self.result, "the result"), (t, d))
        _eps(self, self.eps)


class _MatmulOp(_MambaOp):
    x = operand_def(FLOAT_TENSOR)
    weight = operand_def(FLOAT_TENSOR)
    result = result_def(FLOAT_TENSOR)
    assembly_format = _CALL_FORMAT

    def __init__(self, x: SSAValue, weight: SSAValue):
        (t, _), (m, _) = x.type.get_shape(), weight.type.get_shape()
        super().__init__(operands=[x, weight], result_types=[tensor_type((t, m), _element(x))])

    def verify_(self) -> None:
        t, k = _shape(self, self.x, "x", 2)
        m, k_w = _shape(self, self.weight, "the weight", 2)
        if k != k_w:
            raise VerifyException(f"{self.name}: x has {k} columns but the weight [{m}, {k_w}] expects {k_w}")
        _expect(self, "the result", _shape(self, self.result, "the result"), (t, m))


@irdl_op_definition
class LinearOp(_MatmulOp):
    """x @ weight^T: in_proj and out_proj."""

    name = "mamba.linear"


@irdl_op_definition
class LMHeadOp(_MatmulOp):
    """x @ weight^T for the vocabulary head (quantized apart from the projections)."""

    name = "mamba.lm_head"


@irdl_op_definition
class SliceOp(_MambaOp):
    name = "mamba.slice"
    x = operand_def(SAME_TENSOR)
    axis = prop_def(IntegerAttr)
    start = prop_def(IntegerAttr)
    size = prop_def(IntegerAttr)
    result = result_def(SAME_TENSOR)
    assembly_format = "$x attr-dict `:` type($x) `->` type($result)"

    def __init__(self, x: SSAValue, axis: int, start: int, size: int):
        shape = list(x.type.get_shape())
        shape[axis] = size
        super().__init__(operands=[x], result_types=[tensor_type(shape, _element(x))],
                         properties={"axis": IntegerAttr(axis, i64), "start": IntegerAttr(start, i64),
                                     "size": IntegerAttr(size, i64)})

    def verify_(self) -> None:
        shape = _shape(self, self.x, "x")
        axis, start, size = self.axis.value.data, self.start.value.data, self.size.value.data
        if not 0 <= axis < len(shape):
            raise VerifyException(f"{self.name}: axis {axis} is out of range for rank {len(shape)}")
        if start < 0 or size < 1 or start + size > shape[axis]:
            raise VerifyException(f"{self.name}: [{start}, {start + size}) is out of range for size {shape[axis]}")
        want = list(shape)
        want[axis] = size
        _expect(self, "the result", _shape(self, self.result, "the result"), want)


@irdl_op_definition
class Conv1dOp(_MambaOp):
    """Causal depthwise conv1d with its state (the last K-1 inputs, oldest first; zeros if absent)."""

    name = "mamba.conv1d"
    x = operand_def(FLOAT_TENSOR)
    weight = operand_def(FLOAT_TENSOR)
    bias = opt_operand_def(FLOAT_TENSOR)
    state = opt_operand_def(FLOAT_TENSOR)
    result = result_def(FLOAT_TENSOR)
    new_state = result_def(FLOAT_TENSOR)
    irdl_options = (AttrSizedOperandSegments(as_property=True), ParsePropInAttrDict())
    assembly_format = ("$x `,` $weight (`bias` $bias^)? (`state` $state^)? attr-dict `:` type($x) `,` type($weight) "
                       "(`bias` type($bias)^)? (`state` type($state)^)? `->` type($result) `,` type($new_state)")

    def __init__(self, x: SSAValue, weight: SSAValue, bias: SSAValue | None, state: SSAValue | None):
        channels, _, kernel = weight.type.get_shape()
        super().__init__(operands=[x, weight, bias, state],
                         result_types=[x.type, tensor_type((channels, kernel - 1), _element(x))])

    def verify_(self) -> None:
        t, c = _shape(self, self.x, "x", 2)
        c_w, one, k = _shape(self, self.weight, "the weight", 3)
        if c_w != c or one != 1:
            raise VerifyException(f"{self.name}: the weight has shape {[c_w, one, k]}, expected [{c}, 1, K]")
        if self.bias is not None:
            _expect(self, "the bias", _shape(self, self.bias, "the bias"), (c,))
        if self.state is not None:
            _expect(self, "the state", _shape(self, self.state, "the state"), (c, k - 1))
        _expect(self, "the result", _shape(self, self.result, "the result"), (t, c))
        _expect(self, "the new state", _shape(self, self.new_state, "the new state"), (c, k - 1))


class _SSMOp(_MambaOp):
    """Shared verifier of ssm_scan and ssm_step (each declares its operands, in order)."""

    def dims(self) -> tuple[int, int, int, int, int]:
        """(T, nheads H, headdim P, d_state N, ngroups G), checked against every operand and result."""
        h, p, n = _shape(self, self.new_state, "the new state", 3)
        t, hp = _shape(self, self.x, "x", 2)
        if hp != h * p:
            raise VerifyException(f"{self.name}: x has {hp} columns, expected nheads*headdim = {h}*{p}")
        _expect(self, "dt", _shape(self, self.dt, "dt"), (t, h))
        for what, v in (("A_log", self.A_log), ("D", self.D)):
            _expect(self, what, _shape(self, v, what), (h,))
        _, gn = _shape(self, self.B, "B", 2)
        if gn % n or not gn or h % (gn // n):
            raise VerifyException(f"{self.name}: B has {gn} columns, not ngroups*d_state with ngroups dividing {h} "
                                  "heads")
        for what, v in (("B", self.B), ("C", self.C)):
            _expect(self, what, _shape(self, v, what), (t, gn))
        _expect(self, "y", _shape(self, self.y, "y"), (t, hp))
        state = self.state
        if state is not None:
            _expect(self, "the state", _shape(self, state, "the state"), (h, p, n))
        return t, h, p, n, gn // n


@irdl_op_definition
class SSMScanOp(_SSMOp):
    """The selective scan over T tokens from `state` (zeros if absent)."""

    name = "mamba.ssm_scan"
    x = operand_def(FLOAT_TENSOR)
    dt = operand_def(FLOAT_TENSOR)
    A_log = operand_def(FLOAT_TENSOR)
    B = operand_def(FLOAT_TENSOR)
    C = operand_def(FLOAT_TENSOR)
    D = operand_def(FLOAT_TENSOR)
    state = opt_operand_def(FLOAT_TENSOR)
    y = result_def(FLOAT_TENSOR)
    new_state = result_def(FLOAT_TENSOR)
    irdl_options = (AttrSizedOperandSegments(as_property=True), ParsePropInAttrDict())
    assembly_format = ("$x `,` $dt `,` $A_log `,` $B `,` $C `,` $D (`state` $state^)? attr-dict `:` type($x) `,` "
                       "type($dt) `,` type($A_log) `,` type($B) `,` type($C) `,` type($D) (`state` type($state)^)? "
                       "`->` "
                       "type($y) `,` type($new_state)")

    def __init__(self, x: SSAValue, dt: SSAValue, A_log: SSAValue, B: SSAValue, C: SSAValue, D: SSAValue,
                 state: SSAValue | None, state_type: TensorType):
        super().__init__(operands=[x, dt, A_log, B, C, D, state], result_types=[x.type, state_type])

    def verify_(self) -> None:
        self.dims()


@irdl_op_definition
class SSMStepOp(_SSMOp):
    """One token of the selective scan (the decode step)."""

    name = "mamba.ssm_step"
    x = operand_def(FLOAT_TENSOR)
    dt = operand_def(FLOAT_TENSOR)
    A_log = operand_def(FLOAT_TENSOR)
    B = operand_def(FLOAT_TENSOR)
    C = operand_def(FLOAT_TENSOR)
    D = operand_def(FLOAT_TENSOR)
    state = operand_def(FLOAT_TENSOR)
    y = result_def(FLOAT_TENSOR)
    new_state = result_def(FLOAT_TENSOR)
    assembly_format = _CALL_FORMAT

    def __init__(self, x: SSAValue, dt: SSAValue, A_log: SSAValue, B: SSAValue, C: SSAValue, D: SSAValue,
                 state: SSAValue):
        super().__init__(operands=[x, dt, A_log, B, C, D, state], result_types=[x.type, state.type])

    def verify_(self) -> None:
        t, *_ = self.dims()
        if t != 1:
            raise VerifyException(f"{self.name}: a step takes one token, got {t}")


@irdl_op_definition
class GatedRMSNormOp(_MambaOp):
    """RMSNorm(y * silu(z)) over groups of group_size channels, times the weight."""

    name = "mamba.gated_rmsnorm"
    y = operand_def(FLOAT_TENSOR)
    z = operand_def(FLOAT_TENSOR)
    weight = operand_def(FLOAT_TENSOR)
    eps = prop_def(FloatAttr)
    group_size = prop_def(IntegerAttr)
    result = result_def(FLOAT_TENSOR)
    assembly_format = _CALL_FORMAT

    def __init__(self, y: SSAValue, z: SSAValue, weight: SSAValue, group_size: int, eps: float):
        super().__init__(operands=[y, z, weight], result_types=[y.type],
                         properties={"eps": FloatAttr(eps, Float64Type()), "group_size": IntegerAttr(group_size, i64)})

    def verify_(self) -> None:
        t, e = _shape(self, self.y, "y", 2)
        _expect(self, "z", _shape(self, self.z, "z"), (t, e))
        _expect(self, "the weight", _shape(self, self.weight, "the weight"), (e,))
        _expect(self, "the result", _shape(self, self.result, "the result"), (t, e))
        _eps(self, self.eps)
        g = self.group_size.value.data
        if g < 1 or e % g:
            raise VerifyException(f"{self.name}: group_size {g} does not divide the {e} channels")


class _UnaryOp(_MambaOp):
    T: ClassVar = VarConstraint("T", TensorType.constr(element_type=AnyFloatConstr))
    x = operand_def(T)
    result = result_def(T)
    assembly_format = "$x attr-dict `:` type($result)"

    def __init__(self, x: SSAValue):
        super().__init__(operands=[x], result_types=[x.type])

    def verify_(self) -> None:
        _expect(self, "the result", _shape(self, self.result, "the result"), _shape(self, self.x, "x"))  # static


@irdl_op_definition
class SiluOp(_UnaryOp):
    name = "mamba.silu"


@irdl_op_definition
class SoftplusOp(_UnaryOp):
    """log(1 + exp(x)), and x itself for x > 20 (torch's threshold)."""

    name = "mamba.softplus"


class _BinaryOp(_MambaOp):
    lhs = operand_def(FLOAT_TENSOR)
    rhs = operand_def(FLOAT_TENSOR)
    result = result_def(FLOAT_TENSOR)
    assembly_format = _BINARY_FORMAT

    def __init__(self, lhs: SSAValue, rhs: SSAValue):
        super().__init__(operands=[lhs, rhs], result_types=[lhs.type])

    def verify_(self) -> None:
        lhs, rhs = _shape(self, self.lhs, "lhs"), _shape(self, self.rhs, "rhs")
        if len(rhs) > len(lhs) or tuple(lhs[len(lhs) - len(rhs):]) != tuple(rhs):
            raise VerifyException(f"{self.name}: rhs shape {list(rhs)} does not broadcast to lhs shape {list(lhs)}")
        _expect(self, "the result", _shape(self, self.result, "the result"), lhs)


@irdl_op_definition
class AddOp(_BinaryOp):
    name = "mamba.add"


@irdl_op_definition
class MulOp(_BinaryOp):
    name = "mamba.mul"


Mamba = Dialect(
    "mamba",
    [WeightOp, EmbeddingOp, RMSNormOp, LinearOp, LMHeadOp, SliceOp, Conv1dOp, SSMScanOp, SSMStepOp, GatedRMSNormOp,
     SiluOp, SoftplusOp, AddOp, MulOp],
    [],
)
