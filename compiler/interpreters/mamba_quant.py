"""Interpreter for the `mamba_quant` dialect on xDSL's framework, beside the `mamba` one.

Place in the flow: the semantics of the ops the quantization passes create, written
on compiler.quant.fixed (docs/NUMERICS.md) and compiler.quant.offline.  Integer
tensors are int64 numpy arrays holding values of the IR's width; f32 tensors are
float32.  `run_function` runs a module with both dialects' implementations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.interpreter import Interpreter, InterpreterFunctions, PythonValues, impl, register_impls
from xdsl.interpreters.func import FuncFunctions
from xdsl.utils.exceptions import InterpretationError

from compiler.dialects import mamba_quant as mq
from compiler.interpreters.mamba import MambaFunctions, numpy_dtype
from compiler.quant import fixed, offline
from compiler.quant.hadamard import rotate_blocks

__all__ = ["MambaQuantFunctions", "run_function"]


def _out_type(value) -> str:
    name = mq.int_type_name(value.type.element_type)
    assert name is not None
    return name


@register_impls
class MambaQuantFunctions(InterpreterFunctions):
    """numpy implementations of the `mamba_quant` ops."""

    @impl(mq.FillOp)
    def run_fill(self, interpreter: Interpreter, op: mq.FillOp, args: PythonValues) -> PythonValues:
        return (np.full(op.result.type.get_shape(), op.value.value.data, numpy_dtype(op.result.type)),)

    @impl(mq.ScaleColumnsOp)
    def run_scale_columns(self, interpreter: Interpreter, op: mq.ScaleColumnsOp, args: PythonValues) -> PythonValues:
        return (offline.scale_columns(*args),)

    @impl(mq.RotateColumnsOp)
    def run_rotate_columns(self, interpreter: Interpreter, op: mq.RotateColumnsOp, args: PythonValues) -> PythonValues:
        return (offline.rotate_columns(args[0], op.block.value.data),)

    @impl(mq.QuantizeWeightOp)
    def run_quantize_weight(self, interpreter: Interpreter, op: mq.QuantizeWeightOp, args: PythonValues) -> PythonValues:
        wq, scale = offline.quantize_weight(args[0], op.granularity.data)
        return wq.astype(np.int64), scale

    @impl(mq.HadamardOp)
    def run_hadamard(self, interpreter: Interpreter, op: mq.HadamardOp, args: PythonValues) -> PythonValues:
        return (rotate_blocks(args[0], op.block.value.data),)

    @impl(mq.QuantizeOp)
    def run_quantize(self, interpreter: Interpreter, op: mq.QuantizeOp, args: PythonValues) -> PythonValues:
        x = np.asarray(args[0], np.float32) * np.float32(op.out_scale.value.data)
        return (fixed.quantize_float(x, _out_type(op.result)),)

    @impl(mq.DequantizeOp)
    def run_dequantize(self, interpreter: Interpreter, op: mq.DequantizeOp, args: PythonValues) -> PythonValues:
        return (fixed.dequant(args[0], op.exp.value.data),)

    @impl(mq.QLinearOp)
    def run_qlinear(self, interpreter: Interpreter, op: mq.QLinearOp, args: PythonValues) -> PythonValues:
        a, wq, wscale = args
        scale = (np.float64(op.act_scale.value.data) * np.asarray(wscale, np.float64)).astype(np.float32)
        return (fixed.lin_f32(a, wq, scale, hlog2=op.hlog2.value.data, qmul=op.qmul.value.data,
                              qshift=op.qshift.value.data),)


def run_function(module: ModuleOp, weights: Mapping[str, Any], name: str, *inputs: Any) -> tuple[np.ndarray, ...]:
    """Call function `name` of a module of `mamba` and `mamba_quant` ops on numpy `inputs`."""
    from xdsl.dialects import func

    fn = next((op for op in module.body.block.ops if isinstance(op, func.FuncOp) and op.sym_name.data == name), None)
    if fn is None:
        raise InterpretationError(f"the module has no function @{name}")
    arg_types = fn.function_type.inputs.data
    if len(inputs) != len(arg_types):
        raise InterpretationError(f"@{name} takes {len(arg_types)} inputs, got {len(inputs)}")
    values = []
    for i, (value, typ) in enumerate(zip(inputs, arg_types)):
        array = np.asarray(value, dtype=numpy_dtype(typ))
        if array.shape != tuple(typ.get_shape()):
            raise InterpretationError(f"input {i} of @{name} has shape {list(array.shape)}, expected {typ}")
        values.append(array)
    interpreter = Interpreter(module)
    interpreter.register_implementations(FuncFunctions())
    interpreter.register_implementations(MambaFunctions(weights))
    interpreter.register_implementations(MambaQuantFunctions())
    return tuple(interpreter.call_op(name, tuple(values)))
