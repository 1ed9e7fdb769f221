"""The `mamba_quant` dialect: what the quantization passes add to `mamba` IR.

Place in the flow: between the `mamba` dialect (which the frontend produces) and the
accelerator lowering.  passes/ (fold-norm-weights, insert-hadamard, calibrate,
assign-scales, approximate-nonlinear, fuse-elementwise) create these ops; their
semantics are written once, in compiler.interpreters.mamba_quant, on the arithmetic of
docs/NUMERICS.md (compiler.quant.fixed).

Offline weight expressions (operands are weights; evaluated when the weight store is
built, never on the accelerator):
    fill {value}                         -> a constant tensor (the unit scale left by folding)
    scale_columns(w [M,K], s [K])        -> w * s[None, :]           (a folded RMSNorm weight)
    rotate_columns(w [M,K]) {block}      -> w @ blockdiag(H_b/sqrt(b))  (offline Hadamard)
    quantize_weight(w [M,K]) {granularity} -> (wq i8 [M,K], scale f32 [M]): symmetric round to nearest
    to_fixed(w) {frac}                   -> sat(rint(w * 2^frac)) as i16/i32 (conv weight and bias)
    ssm_params(A_log [H], D [H], dt_bias [H]) {a_frac, fd, dt_frac} -> i32 [H,4]: (-exp(A_log), D, dt_bias, 0)
Activations:
    hadamard(x [T,K]) {block}            -> x @ blockdiag(H_b/sqrt(b))  (online, in the LIN unit)
    quantize(x f32) {out_scale}          -> i8/i16/i32: quant(f32(x * out_scale))   (VEC output)
    dequantize(x int) {exp}              -> f32(x) * 2^exp                          (VEC input)
    qlinear(a int [T,K], wq i8 [M,K], wscale f32 [M]) {hlog2, qmul, qshift, act_scale}
        -> f32 [T,M]: LIN with Hadamard 2^hlog2, requantization, int8 matmul, f32(total) * f32(act_scale*wscale)
    qlinear_dynamic(a i16 [T,K], wq, wscale) {hlog2, in_scale}
        -> f32 [T,M]: as qlinear, but each row requantized by its own largest |a @ H| (per-token scales)
    qconv1d(x i16 [T,C], w i16 [C,1,K], bias i32 [C], state i16 [C,K-1]?) {shift} -> (i16/i32 [T,C], i16 state)
    qssm_scan(x i16 [T,H*P], dt_raw i16 [T,H], params i32 [H,4] (A, D, dt_bias, 0), B i16, C i16, state i32?)
        {dt_frac, a_frac, dbx_shift, y_shift, d_shift, nonlinear} -> (y i32 [T,H*P], state' i32 [H,P,N])
    softplus_approx(x f32)               -> the first-order softplus of the NLA, in float
    vec(a, b?) {ops, a_exp, b_exp, group, eps, out_scale} -> one VEC pass (fused element-wise chain)
"""

from __future__ import annotations

from xdsl.dialects.builtin import (
    AnyFloat,
    ArrayAttr,
    FloatAttr,
    Float32Type,
    Float64Type,
    IntegerAttr,
    IntegerType,
    StringAttr,
    TensorType,
    f32,
    i8,
    i16,
    i32,
    i64,
)
from xdsl.ir import Attribute, Dialect, SSAValue
from xdsl.irdl import (
    AttrSizedOperandSegments,
    IRDLOperation,
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

from fastmamba.compiler.dialects.mamba import tensor_type
from fastmamba.isa.instructions import MICRO_OPS
from fastmamba.isa.instructions import OPS as ISA_OPS
from fastmamba.isa.numerics import MICRO_OPS_WITH_B

__all__ = [
    "MambaQuant", "FillOp", "ScaleColumnsOp", "RotateColumnsOp", "QuantizeWeightOp", "HadamardOp", "QuantizeOp",
    "DequantizeOp", "QLinearOp", "QLinearDynamicOp", "ToFixedOp", "SSMParamsOp", "QConv1dOp", "QSSMScanOp",
           "SoftplusApproxOp", "VecOp",
    "INT_TYPES", "int_type_name", "VEC_MICRO_OPS", "NONLINEAR_MODES",
]

_CALL_FORMAT = "operands attr-dict `:` functional-type(operands, results)"
INT_TYPES = {"i8": i8, "i16": i16, "i32": i32}
VEC_MICRO_OPS = tuple(op for op in MICRO_OPS if op != "none")  # the ISA's micro-ops (isa.instructions)
NONLINEAR_MODES = ("exact", "table")


def int_type_name(typ: Attribute) -> str | None:
    """'i8', 'i16' or 'i32' for a signless integer element type of those widths, else None."""
    if isinstance(typ, IntegerType) and typ.width.data in (8, 16, 32):
        return f"i{typ.width.data}"
    return None


def _shape(op: IRDLOperation, value: SSAValue, what: str, rank: int | None = None) -> tuple[int, ...]:
    typ = value.type
    if not isinstance(typ, TensorType) or any(d < 0 for d in typ.get_shape()):
        raise VerifyException(f"{op.name}: {what} must be a static tensor, got {typ}")
    shape = tuple(typ.get_shape())
    if rank is not None and len(shape) != rank:
        raise VerifyException(f"{op.name}: {what} must have rank {rank}, got shape {list(shape)}")
    return shape


def _elem(value: SSAValue) -> Attribute:
    return value.type.element_type  # type: ignore[attr-defined]


def _want(op: IRDLOperation, what: str, value: SSAValue, shape, elem: str | None = None) -> None:
    got = _shape(op, value, what)
    if shape is not None and tuple(got) != tuple(shape):
        raise VerifyException(f"{op.name}: {what} has shape {list(got)}, expected {list(shape)}")
    e = _elem(value)
    if elem == "float" and not isinstance(e, AnyFloat):
        raise VerifyException(f"{op.name}: {what} must be floating point, got {e}")
    if elem == "f32" and e != f32:
        raise VerifyException(f"{op.name}: {what} must be f32, got {e}")
    if elem == "int" and int_type_name(e) is None:
        raise VerifyException(f"{op.name}: {what} must be i8, i16 or i32, got {e}")
    if elem in INT_TYPES and e != INT_TYPES[elem]:
        raise VerifyException(f"{op.name}: {what} must be {elem}, got {e}")


def _int(attr: IntegerAttr) -> int:
    return attr.value.data


def _range(op: IRDLOperation, what: str, value: int, lo: int, hi: int) -> None:
    if not lo <= value <= hi:
        raise VerifyException(f"{op.name}: {what} must lie in [{lo}, {hi}], got {value}")


def _isa_range(op: IRDLOperation, what: str, value: int, isa_op: str) -> None:
    """`value` must fit the field of the same name of instruction `isa_op` (its range from the ISA table)."""
    spec = ISA_OPS[isa_op].field_map[what]
    _range(op, what, value, spec.min, spec.max)


def _block(op: IRDLOperation, block: int, k: int) -> None:
    if block < 1 or block & (block - 1):
        raise VerifyException(f"{op.name}: block must be a power of two, got {block}")
    if k % block:
        raise VerifyException(f"{op.name}: block {block} does not divide the dimension {k}")


def _i64(v: int) -> IntegerAttr:
    return IntegerAttr(v, i64)


class _QuantOp(IRDLOperation):
    irdl_options = (ParsePropInAttrDict(),)
    traits = traits_def(Pure())


# --- offline weight expressions -------------------------------------------------------------------------------------


@irdl_op_definition
class FillOp(_QuantOp):
    """A tensor whose every element is `value` (1.0 where a folded norm weight was)."""

    name = "mamba_quant.fill"
    value = prop_def(FloatAttr)
    result = result_def(TensorType)
    assembly_format = "attr-dict `:` type($result)"

    def __init__(self, value: float, result_type: TensorType):
        super().__init__(properties={"value": FloatAttr(value, Float64Type())}, result_types=[result_type])

    def verify_(self) -> None:
        _want(self, "the result", self.result, None, "float")


@irdl_op_definition
class ScaleColumnsOp(_QuantOp):
    name = "mamba_quant.scale_columns"
    w = operand_def(TensorType)
    s = operand_def(TensorType)
    result = result_def(TensorType)
    assembly_format = _CALL_FORMAT

    def __init__(self, w: SSAValue, s: SSAValue):
        super().__init__(operands=[w, s], result_types=[w.type])

    def verify_(self) -> None:
        m, k = _shape(self, self.w, "the weight", 2)
        _want(self, "the scale", self.s, (k,), "float")
        _want(self, "the result", self.result, (m, k), "float")


@irdl_op_definition
class RotateColumnsOp(_QuantOp):
    name = "mamba_quant.rotate_columns"
    w = operand_def(TensorType)
    block = prop_def(IntegerAttr)
    result = result_def(TensorType)
    assembly_format = "$w attr-dict `:` type($w) `->` type($result)"

    def __init__(self, w: SSAValue, block: int):
        super().__init__(operands=[w], properties={"block": _i64(block)}, result_types=[w.type])

    def verify_(self) -> None:
        m, k = _shape(self, self.w, "the weight", 2)
        _want(self, "the result", self.result, (m, k), "float")
        _block(self, _int(self.block), k)


@irdl_op_definition
class QuantizeWeightOp(_QuantOp):
    """Symmetric int8 round-to-nearest of a weight: per output channel (row) or per tensor."""

    name = "mamba_quant.quantize_weight"
    w = operand_def(TensorType)
    granularity = prop_def(StringAttr)
    wq = result_def(TensorType)
    scale = result_def(TensorType)
    assembly_format = "$w attr-dict `:` type($w) `->` type($wq) `,` type($scale)"

    def __init__(self, w: SSAValue, granularity: str):
        m, k = w.type.get_shape()
        super().__init__(operands=[w], properties={"granularity": StringAttr(granularity)},
                         result_types=[tensor_type((m, k), i8), tensor_type((m,), f32)])

    def verify_(self) -> None:
        m, k = _shape(self, self.w, "the weight", 2)
        _want(self, "the weight", self.w, None, "float")
        _want(self, "the quantized weight", self.wq, (m, k), "i8")
        _want(self, "the scale", self.scale, (m,), "f32")
        if self.granularity.data not in ("channel", "tensor"):
            raise VerifyException(f"{self.name}: granularity must be 'channel' or 'tensor', got "
                                  f"{self.granularity.data!r}")


# --- activations -----------------------------------------------------------------------------------------------------


@irdl_op_definition
class HadamardOp(_QuantOp):
    """The online rotation of a linear layer's input (the LIN unit's adder trees)."""

    name = "mamba_quant.hadamard"
    x = operand_def(TensorType)
    block = prop_def(IntegerAttr)
    result = result_def(TensorType)
    assembly_format = "$x attr-dict `:` type($x) `->` type($result)"

    def __init__(self, x: SSAValue, block: int):
        super().__init__(operands=[x], properties={"block": _i64(block)}, result_types=[x.type])

    def verify_(self) -> None:
        t, k = _shape(self, self.x, "x", 2)
        _want(self, "x", self.x, None, "float")
        _want(self, "the result", self.result, (t, k), "float")
        if _elem(self.result) != _elem(self.x):
            raise VerifyException(f"{self.name}: element types differ")
        _block(self, _int(self.block), k)


@irdl_op_definition
class QuantizeOp(_QuantOp):
    """quant_T(f32(x * out_scale)): round half to even, saturate (the VEC unit's integer output)."""

    name = "mamba_quant.quantize"
    x = operand_def(TensorType)
    out_scale = prop_def(FloatAttr)
    result = result_def(TensorType)
    assembly_format = "$x attr-dict `:` type($x) `->` type($result)"

    def __init__(self, x: SSAValue, out_scale: float, dtype: str):
        super().__init__(operands=[x], properties={"out_scale": FloatAttr(out_scale, Float32Type())},
                         result_types=[tensor_type(x.type.get_shape(), INT_TYPES[dtype])])

    def verify_(self) -> None:
        shape = _shape(self, self.x, "x")
        _want(self, "x", self.x, None, "f32")
        _want(self, "the result", self.result, shape, "int")
        if not self.out_scale.value.data > 0:
            raise VerifyException(f"{self.name}: out_scale must be positive, got {self.out_scale.value.data}")


@irdl_op_definition
class DequantizeOp(_QuantOp):
    """f32(x) * 2^exp (the VEC unit's integer input)."""

    name = "mamba_quant.dequantize"
    x = operand_def(TensorType)
    exp = prop_def(IntegerAttr)
    result = result_def(TensorType)
    assembly_format = "$x attr-dict `:` type($x) `->` type($result)"

    def __init__(self, x: SSAValue, exp: int):
        super().__init__(operands=[x], properties={"exp": _i64(exp)},
                         result_types=[tensor_type(x.type.get_shape(), f32)])

    def verify_(self) -> None:
        shape = _shape(self, self.x, "x")
        _want(self, "x", self.x, None, "int")
        _want(self, "the result", self.result, shape, "f32")
        _range(self, "exp", _int(self.exp), -128, 127)


@irdl_op_definition
class QLinearOp(_QuantOp):
    """The LIN unit: W8A8 with online Hadamard and requantization, f32 output."""

    name = "mamba_quant.qlinear"
    a = operand_def(TensorType)
    wq = operand_def(TensorType)
    wscale = operand_def(TensorType)
    hlog2 = prop_def(IntegerAttr)
    qmul = prop_def(IntegerAttr)
    qshift = prop_def(IntegerAttr)
    act_scale = prop_def(FloatAttr)
    result = result_def(TensorType)
    assembly_format = _CALL_FORMAT

    def __init__(self, a: SSAValue, wq: SSAValue, wscale: SSAValue, hlog2: int, qmul: int, qshift: int,
                 act_scale: float):
        (t, _), (m, _) = a.type.get_shape(), wq.type.get_shape()
        super().__init__(operands=[a, wq, wscale],
                         properties={"hlog2": _i64(hlog2), "qmul": _i64(qmul), "qshift": _i64(qshift),
                                     "act_scale": FloatAttr(act_scale, Float64Type())},
                         result_types=[tensor_type((t, m), f32)])

    def verify_(self) -> None:
        t, k = _shape(self, self.a, "the activation", 2)
        if int_type_name(_elem(self.a)) not in ("i8", "i16"):
            raise VerifyException(f"{self.name}: the activation must be i8 or i16, got {_elem(self.a)}")
        m, k_w = _shape(self, self.wq, "the weight", 2)
        if k_w != k:
            raise VerifyException(f"{self.name}: the activation has {k} columns but the weight [{m}, {k_w}] expects "
                                  f"{k_w}")
        _want(self, "the weight", self.wq, None, "i8")
        _want(self, "the weight scale", self.wscale, (m,), "f32")
        _want(self, "the result", self.result, (t, m), "f32")
        _isa_range(self, "hlog2", _int(self.hlog2), "lin")
        _isa_range(self, "qmul", _int(self.qmul), "lin")
        _isa_range(self, "qshift", _int(self.qshift), "lin")
        _block(self, 1 << _int(self.hlog2), k)
        if not self.act_scale.value.data > 0:
            raise VerifyException(f"{self.name}: act_scale must be positive, got {self.act_scale.value.data}")


@irdl_op_definition
class QLinearDynamicOp(_QuantOp):
    """W8A8 with per-token activation scales chosen at run time (compiler.quant.fixed.lin_dynamic_f32)."""

    name = "mamba_quant.qlinear_dynamic"
    a = operand_def(TensorType)
    wq = operand_def(TensorType)
    wscale = operand_def(TensorType)
    hlog2 = prop_def(IntegerAttr)
    in_scale = prop_def(FloatAttr)
    result = result_def(TensorType)
    assembly_format = _CALL_FORMAT

    def __init__(self, a: SSAValue, wq: SSAValue, wscale: SSAValue, hlog2: int, in_scale: float):
        (t, _), (m, _) = a.type.get_shape(), wq.type.get_shape()
        super().__init__(operands=[a, wq, wscale], result_types=[tensor_type((t, m), f32)],
                         properties={"hlog2": _i64(hlog2), "in_scale": FloatAttr(in_scale, Float64Type())})

    def verify_(self) -> None:
        t, k = _shape(self, self.a, "the activation", 2)
        _want(self, "the activation", self.a, None, "i16")
        m, k_w = _shape(self, self.wq, "the weight", 2)
        if k_w != k:
            raise VerifyException(f"{self.name}: the activation has {k} columns but the weight [{m}, {k_w}] expects "
                                  f"{k_w}")
        _want(self, "the weight", self.wq, None, "i8")
        _want(self, "the weight scale", self.wscale, (m,), "f32")
        _want(self, "the result", self.result, (t, m), "f32")
        _isa_range(self, "hlog2", _int(self.hlog2), "lin")
        _block(self, 1 << _int(self.hlog2), k)
        if not self.in_scale.value.data > 0:
            raise VerifyException(f"{self.name}: in_scale must be positive, got {self.in_scale.value.data}")


@irdl_op_definition
class ToFixedOp(_QuantOp):
    """An offline fixed-point weight: sat_T(rint(w * 2^frac))."""

    name = "mamba_quant.to_fixed"
    w = operand_def(TensorType)
    frac = prop_def(IntegerAttr)
    result = result_def(TensorType)
    assembly_format = "$w attr-dict `:` type($w) `->` type($result)"

    def __init__(self, w: SSAValue, frac: int, dtype: str):
        super().__init__(operands=[w], properties={"frac": _i64(frac)},
                         result_types=[tensor_type(w.type.get_shape(), INT_TYPES[dtype])])

    def verify_(self) -> None:
        shape = _shape(self, self.w, "the weight")
        _want(self, "the weight", self.w, None, "float")
        _want(self, "the result", self.result, shape, "int")
        _range(self, "frac", _int(self.frac), -64, 64)


@irdl_op_definition
class SSMParamsOp(_QuantOp):
    """The SSM unit's per-head i32 parameters (A = -exp(A_log), D, dt_bias, 0) in fixed point, offline."""

    name = "mamba_quant.ssm_params"
    A_log = operand_def(TensorType)
    D = operand_def(TensorType)
    dt_bias = operand_def(TensorType)
    a_frac = prop_def(IntegerAttr)
    fd = prop_def(IntegerAttr)
    dt_frac = prop_def(IntegerAttr)
    result = result_def(TensorType)
    assembly_format = _CALL_FORMAT

    def __init__(self, A_log: SSAValue, D: SSAValue, dt_bias: SSAValue, a_frac: int, fd: int, dt_frac: int):
        (h,) = A_log.type.get_shape()
        super().__init__(operands=[A_log, D, dt_bias], result_types=[tensor_type((h, 4), i32)],
                         properties={"a_frac": _i64(a_frac), "fd": _i64(fd), "dt_frac": _i64(dt_frac)})

    def verify_(self) -> None:
        (h,) = _shape(self, self.A_log, "A_log", 1)
        for what, v in (("A_log", self.A_log), ("D", self.D), ("dt_bias", self.dt_bias)):
            _want(self, what, v, (h,), "float")
        _want(self, "the result", self.result, (h, 4), "i32")
        for what, a in (("a_frac", self.a_frac), ("fd", self.fd), ("dt_frac", self.dt_frac)):
            _range(self, what, _int(a), 0, 62)


@irdl_op_definition
class QConv1dOp(_QuantOp):
    """The CONV unit: causal depthwise conv in fixed point; state [C, K-1] i16, oldest first."""

    name = "mamba_quant.qconv1d"
    x = operand_def(TensorType)
    weight = operand_def(TensorType)
    bias = operand_def(TensorType)
    state = opt_operand_def(TensorType)
    shift = prop_def(IntegerAttr)
    result = result_def(TensorType)
    new_state = result_def(TensorType)
    irdl_options = (AttrSizedOperandSegments(as_property=True), ParsePropInAttrDict())
    assembly_format = ("$x `,` $weight `,` $bias (`state` $state^)? attr-dict `:` type($x) `,` type($weight) `,` "
                       "type($bias) (`state` type($state)^)? `->` type($result) `,` type($new_state)")

    def __init__(self, x: SSAValue, weight: SSAValue, bias: SSAValue, state: SSAValue | None, shift: int,
                 out_type: str = "i16"):
        channels, _, kernel = weight.type.get_shape()
        super().__init__(operands=[x, weight, bias, state], properties={"shift": _i64(shift)},
                         result_types=[tensor_type(x.type.get_shape(), INT_TYPES[out_type]),
                                       tensor_type((channels, kernel - 1), i16)])

    def verify_(self) -> None:
        t, c = _shape(self, self.x, "x", 2)
        _want(self, "x", self.x, None, "i16")
        c_w, one, k = _shape(self, self.weight, "the weight", 3)
        if c_w != c or one != 1:
            raise VerifyException(f"{self.name}: the weight has shape {[c_w, one, k]}, expected [{c}, 1, K]")
        _want(self, "the weight", self.weight, None, "i16")
        _want(self, "the bias", self.bias, (c,), "i32")
        if self.state is not None:
            _want(self, "the state", self.state, (c, k - 1), "i16")
        _want(self, "the new state", self.new_state, (c, k - 1), "i16")
        _want(self, "the result", self.result, (t, c), "int")
        if int_type_name(_elem(self.result)) not in ("i16", "i32"):
            raise VerifyException(f"{self.name}: the result must be i16 or i32, got {_elem(self.result)}")
        if k < 2:
            raise VerifyException(f"{self.name}: the kernel must have at least 2 taps, got {k}")
        _range(self, "shift", _int(self.shift), 0, 63)


@irdl_op_definition
class QSSMScanOp(_QuantOp):
    """The SSM unit: softplus, exp and the selective scan in fixed point (docs/NUMERICS.md §5)."""

    name = "mamba_quant.qssm_scan"
    x = operand_def(TensorType)
    dt_raw = operand_def(TensorType)
    params = operand_def(TensorType)
    B = operand_def(TensorType)
    C = operand_def(TensorType)
    state = opt_operand_def(TensorType)
    dt_frac = prop_def(IntegerAttr)
    a_frac = prop_def(IntegerAttr)
    dbx_shift = prop_def(IntegerAttr)
    y_shift = prop_def(IntegerAttr)
    d_shift = prop_def(IntegerAttr)
    nonlinear = prop_def(StringAttr)
    y = result_def(TensorType)
    new_state = result_def(TensorType)
    irdl_options = (AttrSizedOperandSegments(as_property=True), ParsePropInAttrDict())
    assembly_format = ("$x `,` $dt_raw `,` $params `,` $B `,` $C (`state` $state^)? attr-dict `:` type($x) `,` "
                       "type($dt_raw) `,` type($params) `,` type($B) `,` type($C) (`state` type($state)^)? `->` "
                       "type($y) `,` type($new_state)")

    def __init__(self, x: SSAValue, dt_raw: SSAValue, params: SSAValue, B: SSAValue, C: SSAValue,
                 state: SSAValue | None, state_shape, *, dt_frac: int, a_frac: int, dbx_shift: int, y_shift: int,
                 d_shift: int, nonlinear: str = "exact"):
        props = {"dt_frac": _i64(dt_frac), "a_frac": _i64(a_frac), "dbx_shift": _i64(dbx_shift),
                 "y_shift": _i64(y_shift), "d_shift": _i64(d_shift), "nonlinear": StringAttr(nonlinear)}
        super().__init__(operands=[x, dt_raw, params, B, C, state], properties=props,
                         result_types=[tensor_type(x.type.get_shape(), i32), tensor_type(state_shape, i32)])

    def verify_(self) -> None:
        h, p, n = _shape(self, self.new_state, "the new state", 3)
        t, hp = _shape(self, self.x, "x", 2)
        if hp != h * p:
            raise VerifyException(f"{self.name}: x has {hp} columns, expected nheads*headdim = {h}*{p}")
        _want(self, "x", self.x, None, "i16")
        _want(self, "dt_raw", self.dt_raw, (t, h), "i16")
        _want(self, "the parameters", self.params, (h, 4), "i32")
        _, gn = _shape(self, self.B, "B", 2)
        if not gn or gn % n or h % (gn // n):
            raise VerifyException(f"{self.name}: B has {gn} columns, not ngroups*d_state with ngroups dividing {h} "
                                  "heads")
        _want(self, "B", self.B, (t, gn), "i16")
        _want(self, "C", self.C, (t, gn), "i16")
        if self.state is not None:
            _want(self, "the state", self.state, (h, p, n), "i32")
        _want(self, "the new state", self.new_state, (h, p, n), "i32")
        _want(self, "y", self.y, (t, hp), "i32")
        for what in ("dt_frac", "a_frac"):
            _range(self, what, _int(getattr(self, what)), 0, 127)
        for what in ("dbx_shift", "y_shift", "d_shift"):
            _isa_range(self, what, _int(getattr(self, what)), "ssm")
        if self.nonlinear.data not in NONLINEAR_MODES:
            raise VerifyException(f"{self.name}: nonlinear must be one of {', '.join(NONLINEAR_MODES)}, got "
                                  f"{self.nonlinear.data!r}")


@irdl_op_definition
class SoftplusApproxOp(_QuantOp):
    """softplus by the NLA's first-order approximation, in float: e^x (x <= 0), x + e^-x (x > 0), e^x = 2^(1.4375 x)."""

    name = "mamba_quant.softplus_approx"
    x = operand_def(TensorType)
    result = result_def(TensorType)
    assembly_format = "$x attr-dict `:` type($x) `->` type($result)"

    def __init__(self, x: SSAValue):
        super().__init__(operands=[x], result_types=[x.type])

    def verify_(self) -> None:
        shape = _shape(self, self.x, "x")
        _want(self, "x", self.x, None, "f32")
        _want(self, "the result", self.result, shape, "f32")


@irdl_op_definition
class VecOp(_QuantOp):
    """One pass of the VEC unit: dequantize a (and b), up to 4 micro-ops, f32 or quantized output."""

    name = "mamba_quant.vec"
    a = operand_def(TensorType)
    b = opt_operand_def(TensorType)
    ops = prop_def(ArrayAttr)
    a_exp = prop_def(IntegerAttr)
    b_exp = prop_def(IntegerAttr)
    group = prop_def(IntegerAttr)
    eps = prop_def(FloatAttr)
    out_scale = prop_def(FloatAttr)
    result = result_def(TensorType)
    assembly_format = "$a (`,` $b^)? attr-dict `:` type($a) (`,` type($b)^)? `->` type($result)"

    def __init__(self, a: SSAValue, b: SSAValue | None, ops, *, a_exp: int = 0, b_exp: int = 0, group: int = 1,
                 eps: float = 0.0, out_type: str = "f32", out_scale: float = 1.0):
        rows_cols = a.type.get_shape()
        elem = f32 if out_type == "f32" else INT_TYPES[out_type]
        super().__init__(operands=[a, b], result_types=[tensor_type(rows_cols, elem)],
                         properties={"ops": ArrayAttr([StringAttr(o) for o in ops]), "a_exp": _i64(a_exp),
                                     "b_exp": _i64(b_exp), "group": _i64(group), "eps": FloatAttr(eps, Float64Type()),
                                     "out_scale": FloatAttr(out_scale, Float32Type())})

    @property
    def micro_ops(self) -> tuple[str, ...]:
        return tuple(o.data for o in self.ops.data)  # type: ignore[attr-defined]

    def verify_(self) -> None:
        rows, cols = _shape(self, self.a, "a", 2)
        a_elem = _elem(self.a)
        if a_elem != f32 and int_type_name(a_elem) is None:
            raise VerifyException(f"{self.name}: a must be f32 or an integer type, got {a_elem}")
        if self.b is not None:
            b_shape = _shape(self, self.b, "b")
            if b_shape not in ((rows, cols), (cols,)):
                raise VerifyException(f"{self.name}: b has shape {list(b_shape)}, expected {[rows, cols]} or {[cols]}")
        ops = self.micro_ops
        if len(ops) > 4 or any(not isinstance(o, StringAttr) or o.data not in VEC_MICRO_OPS for o in self.ops.data):
            raise VerifyException(f"{self.name}: at most 4 micro-ops from {', '.join(VEC_MICRO_OPS)}, got {list(ops)}")
        if self.b is None and any(o in MICRO_OPS_WITH_B for o in ops):
            raise VerifyException(f"{self.name}: {', '.join(MICRO_OPS_WITH_B)} need a b operand")
        g = _int(self.group)
        if "rmsnorm" in ops and (g < 1 or cols % g):
            raise VerifyException(f"{self.name}: group {g} does not divide the {cols} columns")
        _isa_range(self, "a_exp", _int(self.a_exp), "vec")
        _isa_range(self, "b_exp", _int(self.b_exp), "vec")
        _shape(self, self.result, "the result")
        out = _elem(self.result)
        if out != f32 and int_type_name(out) is None:
            raise VerifyException(f"{self.name}: the result must be f32 or an integer type, got {out}")
        if tuple(self.result.type.get_shape()) != (rows, cols):  # type: ignore[attr-defined]
            raise VerifyException(f"{self.name}: the result must have shape {[rows, cols]}")
        if not self.out_scale.value.data > 0:
            raise VerifyException(f"{self.name}: out_scale must be positive")


MambaQuant = Dialect(
    "mamba_quant",
    [FillOp, ScaleColumnsOp, RotateColumnsOp, QuantizeWeightOp, HadamardOp, QuantizeOp, DequantizeOp, QLinearOp,
     QLinearDynamicOp, ToFixedOp, SSMParamsOp, QConv1dOp, QSSMScanOp, SoftplusApproxOp, VecOp],
    [],
)
