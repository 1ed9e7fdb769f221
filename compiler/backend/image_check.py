"""An independent check of the constant image's int8 weights against the checkpoint's FP32 weights.

Place in the flow: after `build_image` (compiler/backend/constants.py), as a
second route to the same numbers.  The golden model behind `fastmamba run
--check` and the image take their int8 weights from the same
`compiler.quant.offline.quantize_weight`, so a bug there (rounding toward
-inf, say) is invisible to the check.  This module re-derives every linear
weight another way: the FP32 tensors read straight from the checkpoint's
safetensors files, the norm fold and the block Hadamard rotation written here
from docs/NUMERICS.md §2 in float64 (H_b as a Kronecker power of
[[1, 1], [1, -1]], scaled by 1/sqrt(b)), and then checks each `lin_tile` block
of the image, channel by channel:

- its scale: f32(act_scale * wscale) in the image gives wscale, which must be
  max|w'| / 127 of that output channel ('channel' granularity) or of the whole
  tensor ('tensor');
- its int8 weights: q = the image's byte, |q - w' / wscale| <= 1/2 for every
  element (the error of rounding to nearest), |q| <= 127.

Only the block layout (which rows of which tensor lie where, with which
act_scale) and the chain of weight expressions (which checkpoint tensors,
which fold, which rotation block) come from the compiled module; no value
does.  `check_image` returns one `TensorCheck` per weight tensor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import safe_open
from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, FloatAttr, IntegerAttr, ModuleOp, StringAttr
from xdsl.ir import Attribute, SSAValue

from fastmamba.compiler.backend.lowering import CONSTS_ATTR
from fastmamba.compiler.dialects.accel import ProgramOp
from fastmamba.compiler.dialects.mamba import WeightOp
from fastmamba.compiler.dialects.mamba_quant import QuantizeWeightOp, RotateColumnsOp, ScaleColumnsOp
from fastmamba.isa.errors import FastmambaError

ROUNDING_SLACK = 1e-4  # in units of the scale: the f32 rescale and float32 intermediates move w' by ~1e-5 of it
SCALE_RTOL = 1e-6  # f32(act_scale * wscale) / act_scale recovers wscale to a few float32 ulps
WEIGHT_ALIGN = 4  # the int8 rows are padded to 4 bytes before the f32 scales


class ImageCheckError(FastmambaError):
    """The constant image's weights do not follow from the checkpoint (names the tensor and the channel)."""


@dataclass
class TensorCheck:
    name: str  # the checkpoint tensor
    channels: int  # output channels checked (over all its tiles)
    max_error: float  # max |q - w' / wscale| over its elements, in units of the scale (<= 0.5 when correct)
    max_scale_error: float  # max relative error of wscale against amax / 127


def hadamard(b: int) -> np.ndarray:
    """H_b, b a power of two: the Kronecker power of [[1, 1], [1, -1]] (docs/NUMERICS.md §2)."""
    h = np.ones((1, 1))
    while h.shape[0] < b:
        h = np.kron(np.array([[1.0, 1.0], [1.0, -1.0]]), h)
    if h.shape[0] != b:
        raise ImageCheckError(f"Hadamard block {b} is not a power of two")
    return h


class _Checkpoint:
    """FP32 tensors read by name from a checkpoint directory's safetensors files (one or sharded)."""

    def __init__(self, model_dir: str | Path):
        files = sorted(Path(model_dir).glob("*.safetensors"))
        if not files:
            raise ImageCheckError(f"{model_dir}: no .safetensors file")
        self.where: dict[str, Path] = {}
        for path in files:
            with safe_open(str(path), framework="numpy") as f:
                self.where.update((k, path) for k in f.keys())

    def tensor(self, name: str) -> np.ndarray:
        if name not in self.where:
            raise ImageCheckError(f"the checkpoint has no tensor {name}")
        with safe_open(str(self.where[name]), framework="numpy") as f:
            return np.asarray(f.get_tensor(name), dtype=np.float64)


def _derive(value: SSAValue, checkpoint: _Checkpoint) -> tuple[np.ndarray, str]:
    """The float64 value of a weight expression, computed here; and the checkpoint tensor it starts from."""
    op = value.owner
    if isinstance(op, WeightOp):
        tensor = op.weight_name.data
        return checkpoint.tensor(tensor), tensor
    if isinstance(op, ScaleColumnsOp):
        w, source = _derive(op.w, checkpoint)
        s, _ = _derive(op.s, checkpoint)
        return w * s[None, :], source
    if isinstance(op, RotateColumnsOp):
        w, source = _derive(op.w, checkpoint)
        b = op.block.value.data
        if w.shape[-1] % b:
            raise ImageCheckError(f"{source}: rotation block {b} does not divide {w.shape[-1]} columns")
        rotated = (w.reshape(-1, b) @ (hadamard(b) / math.sqrt(b))).reshape(w.shape)
        return rotated, source
    raise ImageCheckError(f"weight expression op {getattr(op, 'name', op)} is not one this check re-derives")


def _quantized_weight(value: SSAValue) -> tuple[SSAValue, str]:
    op = value.owner
    if not isinstance(op, QuantizeWeightOp):
        raise ImageCheckError(f"a lin_tile block's weights come from {getattr(op, 'name', op)}, not quantize_weight")
    return op.w, op.granularity.data


def _plain(attr: Attribute) -> Any:
    """A block parameter as a Python value (strings, integers, floats, lists of them)."""
    if isinstance(attr, StringAttr):
        return attr.data
    if isinstance(attr, (IntegerAttr, FloatAttr)):
        return attr.value.data
    if isinstance(attr, ArrayAttr):
        return [_plain(a) for a in attr.data]
    raise ImageCheckError(f"unexpected constant block parameter {attr}")


def _blocks(module: ModuleOp) -> list[dict[str, Any]]:
    """The lin_tile blocks of every program (each once), their parameters as Python values."""
    seen, out = set(), []
    for p in module.walk():
        if not isinstance(p, ProgramOp):
            continue
        consts = p.attributes.get(CONSTS_ATTR)
        for c in consts.data if isinstance(consts, ArrayAttr) else ():
            block = {k: _plain(v) for k, v in c.data.items()}
            if block["name"] not in seen and block["kind"] == "lin_tile":
                seen.add(block["name"])
                out.append(block)
    return out


def check_image(module: ModuleOp, image: bytes, model_dir: str | Path) -> list[TensorCheck]:
    """Check every lin_tile block of `image` (built from the planned `module`) against the checkpoint at
    `model_dir`; raise ImageCheckError at the first channel out of bounds, else return the per-tensor figures."""
    checkpoint = _Checkpoint(model_dir)
    functions = {f.sym_name.data: f for f in module.body.block.ops if isinstance(f, func.FuncOp)}
    derived: dict[SSAValue, tuple[np.ndarray, str]] = {}
    checks: dict[str, TensorCheck] = {}
    for block in _blocks(module):
        ret = functions[block["function"]].body.block.last_op
        assert ret is not None, "a constants function ends with its return"
        wq_value = ret.operands[block["sources"][0]]
        source, granularity = _quantized_weight(wq_value)
        if source not in derived:
            derived.clear()  # one tensor at a time: its tiles follow one another
            derived[source] = _derive(source, checkpoint)
        w, name = derived[source]
        r0, r1 = block.get("rows", (0, w.shape[0]))
        act_scale = float(block["act_scale"])
        ddr, n, k = int(block["ddr"]), r1 - r0, w.shape[1]
        q = np.frombuffer(image, np.int8, n * k, ddr).reshape(n, k).astype(np.float64)
        scale_at = ddr + n * k + (-(n * k) % WEIGHT_ALIGN)
        wscale = np.frombuffer(image, "<f4", n, scale_at).astype(np.float64) / act_scale
        amax = np.abs(w).max(axis=1) if granularity == "channel" else np.full(w.shape[0], np.abs(w).max())
        want_scale = np.where(amax > 0, amax / 127.0, 1.0)[r0:r1]
        scale_error = np.abs(wscale / want_scale - 1.0)
        error = np.abs(q - w[r0:r1] / wscale[:, None]).max(axis=1)
        for r in range(n):
            if scale_error[r] > SCALE_RTOL:
                raise ImageCheckError(f"{name} channel {r0 + r} (block {block['name']}): scale {wscale[r]:.9g} "
                                      f"in the image, max|w| / 127 = {want_scale[r]:.9g}")
            if error[r] > 0.5 + ROUNDING_SLACK or np.abs(q[r]).max() > 127:
                col = int(np.argmax(np.abs(q[r] - w[r0 + r] / wscale[r])))
                raise ImageCheckError(
                    f"{name} channel {r0 + r} (block {block['name']}): int8 weight {int(q[r, col])} at column "
                    f"{col}, but w' / scale = {w[r0 + r, col] / wscale[r]:.4f}: {error[r]:.4f} of a step away "
                    f"(round to nearest keeps within 0.5)")
        check = checks.setdefault(name, TensorCheck(name, 0, 0.0, 0.0))
        check.channels += n
        check.max_error = max(check.max_error, float(error.max()))
        check.max_scale_error = max(check.max_scale_error, float(scale_error.max()))
    return list(checks.values())
