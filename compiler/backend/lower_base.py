"""What both parts of the accelerator lowering share: its error, tensor views and shape helpers.

Place in the flow: under compiler/backend/lowering.py (linears, element-wise
work, the program) and compiler/backend/lower_mixer.py (conv and scan).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from xdsl.ir import SSAValue

from fastmamba.compiler.dialects import mamba_quant as mq
from fastmamba.isa.errors import InputError
from fastmamba.isa.instructions import DTYPE_BYTES

__all__ = ["LoweringError", "ELEMENT_BYTES", "View", "dtype_of", "shape_of", "as2d", "layer_of", "pow2_exp",
           "contiguous_dma"]

ELEMENT_BYTES = DTYPE_BYTES  # of the machine's element types (isa.dtypes, the one table)
_LAYER = re.compile(r"layers\.(\d+)\.")


class LoweringError(InputError):
    """IR the accelerator lowering does not support (names the op)."""


def dtype_of(typ) -> str:
    """The element type name (i8, i16, i32, f32) of a tensor type."""
    name = mq.int_type_name(typ.element_type)
    if name is not None:
        return name
    if str(typ.element_type) == "f32":
        return "f32"
    raise LoweringError(f"unsupported element type {typ.element_type}")


@dataclass(frozen=True)
class View:
    """A 2-D row-major tensor in a buffer: block, byte offset, row pitch (elements), element type."""

    block: str
    offset: int
    ld: int
    dtype: str
    rows: int
    cols: int

    @property
    def esize(self) -> int:
        return ELEMENT_BYTES[self.dtype]

    def at(self, row: int = 0, col: int = 0, rows: int | None = None, cols: int | None = None) -> "View":
        return View(self.block, self.offset + (row * self.ld + col) * self.esize, self.ld, self.dtype,
                    self.rows - row if rows is None else rows, self.cols - col if cols is None else cols)


def shape_of(value: SSAValue) -> tuple[int, ...]:
    """The static shape of a tensor value."""
    return tuple(value.type.get_shape())


def as2d(value: SSAValue) -> tuple[int, int]:
    """(rows, cols) of a 1-D (one row) or 2-D tensor value."""
    shape = shape_of(value)
    if len(shape) == 1:
        return 1, shape[0]
    if len(shape) != 2:
        raise LoweringError(f"expected a 1-D or 2-D tensor, got shape {list(shape)}")
    return shape


def layer_of(name: str | None) -> int:
    """The layer index in a weight name (`...layers.{i}....`)."""
    m = _LAYER.search(name or "")
    if m is None:
        raise LoweringError(f"cannot tell the layer of weight {name!r}")
    return int(m.group(1))


def pow2_exp(scale: float) -> int:
    """log2 of a power-of-two scale."""
    e = math.log2(scale)
    if e != round(e):
        raise LoweringError(f"a fixed-point format needs a power-of-two scale, got {scale}")
    return int(round(e))


def contiguous_dma(nbytes: int, ddr: int = 0, buf: int = 0) -> dict:
    """The fields of an `ld`/`st` moving `nbytes` contiguous bytes (one row) between `ddr` and `buf`."""
    return dict(buf=buf, ddr=ddr, rows=1, row_bytes=nbytes, ddr_stride=nbytes, buf_stride=nbytes, sem=0)
