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
from xdsl.ir import Operation

from fastmamba.compiler.dialects import mamba
from fastmamba.compiler.dialects import mamba_quant as mq
from fastmamba.compiler.interpreters.mamba import MambaFunctions, checked_inputs, numpy_dtype
from fastmamba.compiler.quant import fixed, offline
from fastmamba.compiler.quant.hadamard import rotate_blocks
from fastmamba.compiler.weights import NumpyWeights
from fastmamba.isa.target import Target, load_target

__all__ = ["MambaQuantFunctions", "run_function", "make_interpreter", "offline_key"]

# Ops whose value is a function of the weights alone, and those of them whose values are worth keeping (the
# float64 Hadamard GEMM of rotate_columns, and scale_columns feeding anything but a rotation).
_PURE = (mamba.WeightOp, mq.FillOp, mq.ScaleColumnsOp, mq.RotateColumnsOp, mq.QuantizeWeightOp)
_KEPT = (mq.ScaleColumnsOp, mq.RotateColumnsOp)


def offline_key(op: Operation, keys: dict[Operation, tuple | None]) -> tuple | None:
    """What `op` computes, as a key equal for equal computations on the same weights wherever they stand (in a
    function being calibrated, in a program's constants function): its name, properties, attributes and result
    types, and its operands' keys; None unless it is a function of the weights alone.  `keys` memoizes."""
    if op in keys:
        return keys[op]
    key: tuple | None = None
    if isinstance(op, _PURE):
        operands = []
        for value in op.operands:
            owner = value.owner
            sub = offline_key(owner, keys) if isinstance(owner, Operation) else None
            if sub is None:
                break
            operands.append((sub, value.index))  # type: ignore[attr-defined]
        else:
            key = (op.name, tuple(sorted((k, str(v)) for k, v in op.properties.items())),
                   tuple(sorted((k, str(v)) for k, v in op.attributes.items())),
                   tuple(str(r.type) for r in op.results), tuple(operands))
    keys[op] = key
    return key


def _out_type(value) -> str:
    name = mq.int_type_name(value.type.element_type)
    assert name is not None
    return name


@register_impls
class MambaQuantFunctions(InterpreterFunctions):
    """numpy implementations of the `mamba_quant` ops; hardware facts (NLA table, state width) from `target`."""

    def __init__(self, target: str | Target = "vc709", memo_offline: bool = False, derived=None):
        super().__init__()
        self.target = load_target(target)
        # memo_offline: offline weight expressions (pure functions of the weights) are computed once per op and
        # reused by later calls of the same module (calibration runs a function on several windows).
        self._memo: dict | None = {} if memo_offline else None
        # derived (a compiler.weights.DerivedValues of the weights): offline values kept by offline_key, shared
        # with every interpreter of the same weights (calibration's, then the constant image's)
        self.derived = derived
        self._keys: dict[Operation, tuple | None] = {}

    def _kept_key(self, op: Operation) -> tuple | None:
        if self.derived is None or not isinstance(op, _KEPT):
            return None
        return offline_key(op, self._keys)

    def kept(self, op: Operation) -> tuple | None:
        """`op`'s results when the weights' derived values hold them."""
        key = self._kept_key(op)
        return None if key is None or self.derived is None else self.derived.get(key)

    def _offline(self, op, compute):
        if self.derived is not None and (key := offline_key(op, self._keys)) is not None:
            values = self.derived.get(key)
            if values is None:
                users = [u.operation for r in op.results for u in r.uses]
                rotated = bool(users) and all(isinstance(u, mq.RotateColumnsOp) for u in users)
                if rotated and all((k := self._kept_key(u)) is not None and k in self.derived for u in users):
                    return (None,) * len(op.results)  # read by kept rotations only: by nothing
                values = compute()
                if not rotated:  # (a value only rotated is not needed again: its rotation is)
                    self.derived.put(key, values)
            return values
        if self._memo is None:
            return compute()
        if op not in self._memo:
            self._memo[op] = compute()
        return self._memo[op]

    @impl(mq.FillOp)
    def run_fill(self, interpreter: Interpreter, op: mq.FillOp, args: PythonValues) -> PythonValues:
        return (np.full(op.result.type.get_shape(), op.value.value.data, numpy_dtype(op.result.type)),)

    @impl(mq.ScaleColumnsOp)
    def run_scale_columns(self, interpreter: Interpreter, op: mq.ScaleColumnsOp, args: PythonValues) -> PythonValues:
        return self._offline(op, lambda: (offline.scale_columns(*args),))

    @impl(mq.RotateColumnsOp)
    def run_rotate_columns(self, interpreter: Interpreter, op: mq.RotateColumnsOp, args: PythonValues) -> PythonValues:
        return self._offline(op, lambda: (offline.rotate_columns(args[0], op.block.value.data),))

    @impl(mq.QuantizeWeightOp)
    def run_quantize_weight(self, interpreter: Interpreter, op: mq.QuantizeWeightOp,
                            args: PythonValues) -> PythonValues:
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

    @impl(mq.QLinearDynamicOp)
    def run_qlinear_dynamic(self, interpreter: Interpreter, op: mq.QLinearDynamicOp,
                            args: PythonValues) -> PythonValues:
        a, wq, wscale = args
        return (fixed.lin_dynamic_f32(a, wq, wscale, hlog2=op.hlog2.value.data, in_scale=op.in_scale.value.data),)

    @impl(mq.ToFixedOp)
    def run_to_fixed(self, interpreter: Interpreter, op: mq.ToFixedOp, args: PythonValues) -> PythonValues:
        value = np.rint(np.asarray(args[0], np.float64) * 2.0 ** op.frac.value.data)
        return (fixed.saturate(value, _out_type(op.result)),)

    @impl(mq.SSMParamsOp)
    def run_ssm_params(self, interpreter: Interpreter, op: mq.SSMParamsOp, args: PythonValues) -> PythonValues:
        A_log, D, dt_bias = (np.asarray(a, np.float64) for a in args)
        cols = [np.rint(-np.exp(A_log) * 2.0 ** op.a_frac.value.data), np.rint(D * 2.0 ** op.fd.value.data),
                np.rint(dt_bias * 2.0 ** op.dt_frac.value.data), np.zeros_like(A_log)]
        return (fixed.saturate(np.stack(cols, axis=1), "i32"),)

    @impl(mq.QConv1dOp)
    def run_qconv1d(self, interpreter: Interpreter, op: mq.QConv1dOp, args: PythonValues) -> PythonValues:
        x, weight, bias, *rest = args
        channels, _, kernel = weight.shape
        state = rest[0].T if op.state is not None else np.zeros((kernel - 1, channels), np.int64)
        y, new_state = fixed.conv_q(x, state, np.asarray(weight)[:, 0, :].T, bias, op.shift.value.data,
                                    _out_type(op.result))
        return y, new_state.T.copy()

    @impl(mq.QSSMScanOp)
    def run_qssm_scan(self, interpreter: Interpreter, op: mq.QSSMScanOp, args: PythonValues) -> PythonValues:
        x, dt_raw, params, B, C, *rest = args
        h, p, n = op.new_state.type.get_shape()
        t = x.shape[0]
        state = rest[0] if op.state is not None else np.zeros((h, p, n), np.int64)
        g = B.shape[1] // n
        target = self.target
        y, new_state = fixed.ssm_scan_q(
            x.reshape(t, h, p), B.reshape(t, g, n), C.reshape(t, g, n), dt_raw, params[:, 0], params[:, 1], params[:,
                                                                                                                   2],
            state, hpg=h // g, dt_frac=op.dt_frac.value.data, a_frac=op.a_frac.value.data,
            dbx_shift=op.dbx_shift.value.data, y_shift=op.y_shift.value.data, d_shift=op.d_shift.value.data,
            segments=target.nla_segments, bits=target.nla_bits, state_bits=target.ssm_state_bits,
            nonlinear=op.nonlinear.data)
        return y.reshape(t, h * p), new_state

    @impl(mq.SoftplusApproxOp)
    def run_softplus_approx(self, interpreter: Interpreter, op: mq.SoftplusApproxOp,
                            args: PythonValues) -> PythonValues:
        return (fixed.softplus_approx_f32(args[0], self.target.nla_segments),)

    @impl(mq.VecOp)
    def run_vec(self, interpreter: Interpreter, op: mq.VecOp, args: PythonValues) -> PythonValues:
        b = args[1] if op.b is not None else None
        out = mq.int_type_name(op.result.type.element_type) or "f32"
        return (fixed.vec(args[0], b, op.micro_ops, a_exp=op.a_exp.value.data, b_exp=op.b_exp.value.data,
                          group=op.group.value.data, eps=op.eps.value.data, out_type=out,
                          out_scale=op.out_scale.value.data),)


def make_interpreter(module: ModuleOp, weights: Mapping[str, Any], target: str | Target = "vc709",
                     listeners: tuple = (),
                     memo_offline: bool = False, quant: MambaQuantFunctions | None = None) -> Interpreter:
    """An interpreter of `module` with the func, mamba and mamba_quant implementations (`quant`: the mamba_quant
    ones, when the caller keeps them; by default new ones, which keep offline values in the weights' derived
    values when `weights` is a NumpyWeights)."""
    if quant is None:
        derived = weights.derived if isinstance(weights, NumpyWeights) else None
        quant = MambaQuantFunctions(target, memo_offline, derived)
    interpreter = Interpreter(module, listeners=tuple(listeners))
    interpreter.register_implementations(FuncFunctions())
    interpreter.register_implementations(MambaFunctions(weights))
    interpreter.register_implementations(quant)
    return interpreter


def run_function(module: ModuleOp, weights: Mapping[str, Any], name: str, *inputs: Any, target: str | Target = "vc709",
                 listeners: tuple = (), interpreter: Interpreter | None = None) -> tuple[np.ndarray, ...]:
    """Call function `name` of a module of `mamba` and `mamba_quant` ops on numpy `inputs`.

    `listeners` are xDSL `Interpreter.Listener`s (the calibrate pass records values with one); `interpreter`
    (from make_interpreter) is reused instead of a new one, keeping its memo of offline weight expressions."""
    values = checked_inputs(module, name, inputs)
    interpreter = interpreter or make_interpreter(module, weights, target, listeners)
    return tuple(interpreter.call_op(name, tuple(values)))
