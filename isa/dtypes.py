"""The element types, written once: name, numpy dtype, size, signedness, range and .fmb code of each.

Place in the flow: the bottom of `isa/` (imports numpy and the standard library only).  The
instruction table's type fields (`isa.instructions`), the arithmetic's
saturation ranges (`isa.numerics`), the .fmb tensor records
(`isa.container`), the simulator's memory views and the runtime's tensors,
and the compiler's constant blocks and buffer sizes all read this table.

- `DTYPES`: every element type a binary's tensor may have (`u8`, `i8`, `i16`,
  `i32`, `i64`, `f32`), by name.  All are little-endian.
- `MACHINE_TYPES`: the element types of the machine's operands in BUF
  (docs/ACCELERATOR.md: `i8`, `i16`, `i32`, `f32`); `INT_MACHINE_TYPES` the
  integer ones, the types of `sat_T` (docs/NUMERICS.md §1).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

import numpy as np


@dataclass(frozen=True)
class DType:
    name: str
    code: int  # in a .fmb tensor record
    numpy: np.dtype  # little-endian
    struct_format: str  # little-endian `struct` format of one element

    @property
    def size(self) -> int:
        """Bytes per element."""
        return self.numpy.itemsize

    @property
    def is_float(self) -> bool:
        return self.numpy.kind == "f"

    @property
    def signed(self) -> bool:
        return self.numpy.kind in "if"

    @property
    def range(self) -> tuple[int, int]:
        """[min, max] of an integer type."""
        if self.is_float:
            raise ValueError(f"{self.name} is not an integer type")
        info = np.iinfo(self.numpy)
        return int(info.min), int(info.max)


def _table(*types: DType) -> Mapping[str, DType]:
    for t in types:
        if struct.calcsize(t.struct_format) != t.size or t.numpy != t.numpy.newbyteorder("<"):
            raise ValueError(f"dtype {t.name}: struct format and numpy dtype disagree, or not little-endian")
    if len({t.code for t in types}) != len(types):
        raise ValueError("dtype codes must be unique")
    return MappingProxyType({t.name: t for t in types})


DTYPES: Mapping[str, DType] = _table(
    DType("u8", 0, np.dtype("<u1"), "<B"),
    DType("i8", 1, np.dtype("<i1"), "<b"),
    DType("i16", 2, np.dtype("<i2"), "<h"),
    DType("i32", 3, np.dtype("<i4"), "<i"),
    DType("i64", 4, np.dtype("<i8"), "<q"),
    DType("f32", 5, np.dtype("<f4"), "<f"),
)

MACHINE_TYPES: tuple[str, ...] = ("i8", "i16", "i32", "f32")
INT_MACHINE_TYPES: tuple[str, ...] = tuple(n for n in MACHINE_TYPES if not DTYPES[n].is_float)


def itemsize(name: str) -> int:
    """Bytes per element of the type `name`."""
    return DTYPES[name].size


def numpy_dtype(name: str) -> np.dtype:
    """The little-endian numpy dtype of the type `name`."""
    return DTYPES[name].numpy


def int_range(name: str) -> tuple[int, int]:
    """[min, max] of the integer type `name`."""
    return DTYPES[name].range
