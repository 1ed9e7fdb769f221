"""Interpreter for the `mamba` dialect on xDSL's interpreter framework: runs the IR on numpy arrays.

Place in the flow: beside compiler.dialects.mamba, whose ops' semantics it
defines.  The frontend's tests check raised IR against the FP32 reference
with it, and each later pass checks its transformation with it.  Values are
numpy arrays in the element type of the IR (float32 for f32); weights come
from a mapping name -> array (see compiler.weights.NumpyWeights).

    run_function(module, weights, "prefill", tokens) -> tuple of arrays
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
from xdsl.dialects.builtin import IntegerType, ModuleOp, TensorType, bf16, f16, f32, f64
from xdsl.interpreter import Interpreter, InterpreterFunctions, PythonValues, impl, register_impls
from xdsl.interpreters.func import FuncFunctions
from xdsl.utils.exceptions import InterpretationError

from fastmamba.compiler.dialects import mamba

__all__ = ["MambaFunctions", "run_function", "numpy_dtype", "single_threaded"]

_DTYPES = {f32: np.float32, f64: np.float64, f16: np.float16, bf16: np.float32}


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run numpy's BLAS and torch's kernels on one thread inside (restored after).

    The interpreters' tensors are small (a window of tokens, one weight at a time): a second thread gains
    little on them, and on a loaded machine its barriers cost far more than the work (torch's addcmul_ on
    one SSM state: 27 ms with 2 threads, 1.3 ms with one, under load 20 on 2 cores).  The results are the
    same bits: elementwise kernels do not depend on the thread count, and OpenBLAS divides a GEMM's rows
    and columns among its threads, not the sums (the compiled binaries are byte for byte the same)."""
    import torch
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(before)


def numpy_dtype(typ: TensorType) -> Any:
    element = typ.element_type
    if isinstance(element, IntegerType):
        return np.int64
    if element not in _DTYPES:
        raise InterpretationError(f"no numpy type for element type {element}")
    return _DTYPES[element]


def _silu(x: np.ndarray) -> np.ndarray:
    return x / (1 + np.exp(-x))


def _rmsnorm(x: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt(np.mean(np.square(x), axis=-1, keepdims=True) + x.dtype.type(eps))


def _ssm(x, dt, A_log, B, C, D, state, new_state_type) -> tuple[np.ndarray, np.ndarray]:
    """The recurrence of mamba.ssm_scan / ssm_step, one token at a time."""
    nheads, headdim, d_state = new_state_type.get_shape()
    length = x.shape[0]
    ngroups = B.shape[1] // d_state
    xh = x.reshape(length, nheads, headdim)
    group = np.arange(nheads) // (nheads // ngroups)  # head h reads group h // (H/G)
    Bh = B.reshape(length, ngroups, d_state)[:, group]  # [T, H, N]
    Ch = C.reshape(length, ngroups, d_state)[:, group]
    decay = np.exp(dt * -np.exp(A_log))  # [T, H]
    state = np.zeros((nheads, headdim, d_state), x.dtype) if state is None else state.copy()
    y = np.empty_like(xh)
    for t in range(length):
        state = decay[t, :, None, None] * state + (dt[t, :, None] * xh[t])[:, :, None] * Bh[t, :, None, :]
        y[t] = np.einsum("hpn,hn->hp", state, Ch[t]) + D[:, None] * xh[t]
    return y.reshape(length, nheads * headdim), state


@register_impls
class MambaFunctions(InterpreterFunctions):
    """numpy implementations of the `mamba` ops; `weights` maps weight names to arrays."""

    def __init__(self, weights: Mapping[str, Any]):
        super().__init__()
        self.weights = weights

    @impl(mamba.WeightOp)
    def run_weight(self, interpreter: Interpreter, op: mamba.WeightOp, args: PythonValues) -> PythonValues:
        name = op.weight_name.data
        if name not in self.weights:
            raise InterpretationError(f"no weight named {name}")
        value = np.asarray(self.weights[name], dtype=numpy_dtype(op.result.type))
        if value.shape != tuple(op.result.type.get_shape()):
            raise InterpretationError(f"weight {name} has shape {list(value.shape)}, the IR says {op.result.type}")
        return (value,)

    @impl(mamba.EmbeddingOp)
    def run_embedding(self, interpreter: Interpreter, op: mamba.EmbeddingOp, args: PythonValues) -> PythonValues:
        tokens, table = args
        if tokens.size and (tokens.min() < 0 or tokens.max() >= table.shape[0]):
            raise InterpretationError(f"token ids must lie in [0, {table.shape[0]})")
        return (table[tokens],)

    @impl(mamba.RMSNormOp)
    def run_rmsnorm(self, interpreter: Interpreter, op: mamba.RMSNormOp, args: PythonValues) -> PythonValues:
        x, w = args
        return (_rmsnorm(x, op.eps.value.data) * w,)

    @impl(mamba.LinearOp)
    def run_linear(self, interpreter: Interpreter, op: mamba.LinearOp, args: PythonValues) -> PythonValues:
        return (args[0] @ args[1].T,)

    @impl(mamba.LMHeadOp)
    def run_lm_head(self, interpreter: Interpreter, op: mamba.LMHeadOp, args: PythonValues) -> PythonValues:
        return (args[0] @ args[1].T,)

    @impl(mamba.SliceOp)
    def run_slice(self, interpreter: Interpreter, op: mamba.SliceOp, args: PythonValues) -> PythonValues:
        start = op.start.value.data
        return (np.take(args[0], range(start, start + op.size.value.data), axis=op.axis.value.data),)

    @impl(mamba.Conv1dOp)
    def run_conv1d(self, interpreter: Interpreter, op: mamba.Conv1dOp, args: PythonValues) -> PythonValues:
        x, weight, *rest = args
        bias = rest.pop(0) if op.bias is not None else None
        state = rest.pop(0) if op.state is not None else None
        channels, _, kernel = weight.shape
        if state is None:
            state = np.zeros((channels, kernel - 1), x.dtype)
        window = np.concatenate([state, x.T], axis=1)  # [C, K-1+T], oldest first
        length = x.shape[0]
        y = np.zeros((channels, length), x.dtype)
        for k in range(kernel):  # out[t] = sum_k w[k] * window[t + k]
            y += weight[:, 0, k:k + 1] * window[:, k:k + length]
        if bias is not None:
            y += bias[:, None]
        return y.T.copy(), window[:, window.shape[1] - (kernel - 1):].copy()

    @impl(mamba.SSMScanOp)
    def run_ssm_scan(self, interpreter: Interpreter, op: mamba.SSMScanOp, args: PythonValues) -> PythonValues:
        state = args[6] if op.state is not None else None
        return _ssm(*args[:6], state, op.new_state.type)

    @impl(mamba.SSMStepOp)
    def run_ssm_step(self, interpreter: Interpreter, op: mamba.SSMStepOp, args: PythonValues) -> PythonValues:
        return _ssm(*args, op.new_state.type)

    @impl(mamba.GatedRMSNormOp)
    def run_gated_rmsnorm(self, interpreter: Interpreter, op: mamba.GatedRMSNormOp, args: PythonValues) -> PythonValues:
        y, z, w = args
        g = y * _silu(z)
        size = op.group_size.value.data
        grouped = _rmsnorm(g.reshape(g.shape[0], -1, size), op.eps.value.data)
        return (grouped.reshape(g.shape) * w,)

    @impl(mamba.SiluOp)
    def run_silu(self, interpreter: Interpreter, op: mamba.SiluOp, args: PythonValues) -> PythonValues:
        return (_silu(args[0]),)

    @impl(mamba.SoftplusOp)
    def run_softplus(self, interpreter: Interpreter, op: mamba.SoftplusOp, args: PythonValues) -> PythonValues:
        x = args[0]
        return (np.where(x > 20, x, np.log1p(np.exp(np.minimum(x, 20)))).astype(x.dtype),)

    @impl(mamba.AddOp)
    def run_add(self, interpreter: Interpreter, op: mamba.AddOp, args: PythonValues) -> PythonValues:
        return (args[0] + args[1],)

    @impl(mamba.MulOp)
    def run_mul(self, interpreter: Interpreter, op: mamba.MulOp, args: PythonValues) -> PythonValues:
        return (args[0] * args[1],)


def checked_inputs(module: ModuleOp, name: str, inputs: tuple) -> list[np.ndarray]:
    """`inputs` as numpy arrays checked against the argument types of function `name` of `module`."""
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
    return values


def run_function(module: ModuleOp, weights: Mapping[str, Any], name: str, *inputs: Any) -> tuple[np.ndarray, ...]:
    """Call function `name` of `module` on numpy `inputs` (checked against its argument types)."""
    values = checked_inputs(module, name, inputs)
    interpreter = Interpreter(module)
    interpreter.register_implementations(FuncFunctions())
    interpreter.register_implementations(MambaFunctions(weights))
    return tuple(interpreter.call_op(name, tuple(values)))
