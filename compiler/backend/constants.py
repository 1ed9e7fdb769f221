"""The constant image: the lowered programs' constant blocks, evaluated from the weights and packed.

Place in the flow: the emitter's data half, after plan-memory gave every
block its DDR address.  A block names its constants function
(`@<program>_constants`, the offline weight expressions kept by
lower-to-accel) and which of its results it packs:
- `lin_tile` (wq, wscale) rows [r0, r1): int8 weights of those output
  channels, zero padding to 4 bytes, then f32(act_scale * wscale) per channel
  (as the qlinear op defines its rescale);
- `conv_w` (w [C, 1, K]): i16 taps as [K, C] (the CONV unit's layout);
- `array` (v) {dtype}: the tensor as is, row-major, of that dtype.
`conv_w` and `array` take an optional `rows` [r0, r1) too: only those
channels (conv_w) or first-axis rows (array), for an op on a channel range.
Blocks are evaluated one at a time (results shared by consecutive blocks,
such as one linear's quantized weight, are kept until a block needs other
ones), so a large model's image is built without holding every weight's
intermediate forms at once.  An image of IMAGE_FILE_BYTES or more (a 2.7B
model's 3.2 GB) is assembled in an unlinked temporary file and read back once
into the returned bytes: it is held in memory once, not as a buffer and its
copy.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, ModuleOp
from xdsl.ir import Operation, SSAValue

from fastmamba.compiler.dialects import mamba_quant as mq
from fastmamba.compiler.dialects.accel import ProgramOp
from fastmamba.compiler.backend.lowering import CONSTS_ATTR
from fastmamba.compiler.backend.memory import IMAGE_ATTR
from fastmamba.compiler.interpreters.mamba import single_threaded
from fastmamba.compiler.interpreters.mamba_quant import MambaQuantFunctions, make_interpreter
from fastmamba.compiler.quant import offline
from fastmamba.compiler.weights import NumpyWeights
from fastmamba.isa.dtypes import numpy_dtype
from fastmamba.isa.errors import InputError

__all__ = ["build_image", "pack_block", "IMAGE_FILE_BYTES"]

IMAGE_FILE_BYTES = 256 << 20  # images from this size on are assembled in a temporary file

def pack_block(kind: str, arrays: list[np.ndarray], params: Mapping[str, Any]) -> bytes:
    """The bytes of one constant block."""
    if kind == "lin_tile":
        wq, wscale = (_rows(np.asarray(a), params) for a in arrays)
        body = wq.astype(np.int8).tobytes()
        body += bytes(-len(body) % 4)
        scale = (np.float64(params["act_scale"]) * wscale.astype(np.float64)).astype(np.float32)
        return body + scale.astype("<f4").tobytes()
    if kind == "conv_w":
        (w,) = arrays
        return np.ascontiguousarray(_rows(np.asarray(w), params)[:, 0, :].T).astype("<i2").tobytes()
    if kind == "array":
        (v,) = arrays
        return _rows(np.asarray(v), params).astype(numpy_dtype(params["dtype"])).tobytes()  # row-major
    raise InputError(f"unknown constant block kind {kind!r}")


def _rows(array: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
    if "rows" not in params:
        return array
    r0, r1 = params["rows"]
    return array[r0:r1]


class _Evaluator:
    """Evaluates results of constants functions op by op, keeping only what the current block needs."""

    def __init__(self, module: ModuleOp, weights: Mapping[str, Any], target):
        # offline values calibration computed (the weights' derived values) are taken, not computed again
        self.quant = MambaQuantFunctions(target, derived=weights.derived if isinstance(weights, NumpyWeights) else None)
        self.interpreter = make_interpreter(module, weights, target, quant=self.quant)
        self.memo: dict[SSAValue, np.ndarray] = {}

    def values(self, wanted: list[SSAValue]) -> list[np.ndarray]:
        keep: dict[SSAValue, np.ndarray] = {}
        for value in wanted:
            keep[value] = self._eval(value, keep)
        self.memo = keep  # drop what the previous block needed and this one does not
        return [keep[v] for v in wanted]

    def _eval(self, value: SSAValue, keep: dict) -> np.ndarray:
        if value in keep:
            return keep[value]
        if value in self.memo:
            keep[value] = self.memo[value]
            return keep[value]
        op = value.owner
        assert isinstance(op, Operation)
        results = self.quant.kept(op)
        if results is None and isinstance(op, mq.QuantizeWeightOp) and _returned_only(op):
            # int8 as quantize_weight makes it (the interpreter widens integer tensors to int64: 8x the bytes)
            (w,) = (self._eval(o, keep) for o in op.operands)
            results = offline.quantize_weight(w, op.granularity.data)
        elif results is None:
            args = tuple(self._eval(o, keep) for o in op.operands)
            results = self.interpreter.run_op(op, args)
        for r, v in zip(op.results, results):
            keep[r] = v
        return keep[value]


def _returned_only(op: Operation) -> bool:
    """Whether every use of `op`'s results is the constants function's return (the values packed)."""
    return all(isinstance(use.operation, func.ReturnOp) for r in op.results for use in r.uses)


def build_image(module: ModuleOp, weights: Mapping[str, Any], target, progress=None) -> bytes:
    """The constant image of a planned module (every program's blocks, each once, at its DDR address)."""
    programs = [p for p in module.walk() if isinstance(p, ProgramOp)]
    sizes = {int(p.attributes[IMAGE_ATTR].value.data) for p in programs if IMAGE_ATTR in p.attributes}
    if len(sizes) > 1:
        raise InputError(f"programs disagree on the constant image size: {sorted(sizes)}")
    size = sizes.pop() if sizes else 0
    functions = {f.sym_name.data: f for f in module.body.block.ops if isinstance(f, func.FuncOp)}
    evaluator = _Evaluator(module, weights, target)
    blocks = [c.data for p in programs for c in (p.attributes.get(CONSTS_ATTR) or ArrayAttr([])).data]
    if size < IMAGE_FILE_BYTES:
        image = bytearray(size)

        def put(addr: int, data: bytes) -> None:
            image[addr:addr + len(data)] = data

        _pack_all(blocks, functions, evaluator, put, progress)
        return bytes(image)
    with tempfile.TemporaryFile() as file:  # unlinked: nothing is left behind
        def write(addr: int, data: bytes) -> None:
            file.seek(addr)
            file.write(data)

        _pack_all(blocks, functions, evaluator, write, progress)
        file.truncate(size)  # the bytes no block covers read as zeros
        file.seek(0)
        data = file.read(size)
    if len(data) != size:
        raise InputError(f"the constant image's temporary file gave back {len(data)} of its {size} bytes")
    return data


def _pack_all(blocks, functions, evaluator: _Evaluator, put: Callable[[int, bytes], None], progress) -> None:
    seen: set[str] = set()
    with single_threaded():
        for n, block in enumerate(blocks):
            _pack_block_at(block, functions, evaluator, seen, put)
            if progress is not None:
                progress(n + 1, len(blocks))


def _pack_block_at(block, functions, evaluator: _Evaluator, seen: set[str], put: Callable[[int, bytes], None]) \
        -> None:
    """Evaluate and pack one constant block, and put it at its address (once per block name)."""
    name = block["name"].data
    if name in seen:
        return
    seen.add(name)
    fn = functions.get(block["function"].data)
    if fn is None:
        raise InputError(f"constant block {name}: no function @{block['function'].data} in the module")
    ret = fn.body.block.last_op
    sources = [ret.operands[s.value.data] for s in block["sources"].data]
    params = {k: _plain(v) for k, v in block.items() if k not in ("name", "kind", "bytes", "function", "sources",
                                                                  "ddr")}
    data = pack_block(block["kind"].data, evaluator.values(sources), params)
    nbytes, addr = block["bytes"].value.data, block["ddr"].value.data
    if len(data) != nbytes:
        raise InputError(f"constant block {name}: packed {len(data)} bytes, the plan says {nbytes}")
    put(addr, data)


def _plain(attr):
    from xdsl.dialects.builtin import FloatAttr, IntegerAttr, StringAttr

    if isinstance(attr, StringAttr):
        return attr.data
    if isinstance(attr, FloatAttr):
        return float(attr.value.data)
    if isinstance(attr, IntegerAttr):
        return int(attr.value.data)
    if isinstance(attr, ArrayAttr):
        return [_plain(a) for a in attr.data]
    raise InputError(f"unexpected constant block parameter {attr}")
