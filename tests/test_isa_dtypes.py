"""isa.dtypes, the one element-type table, against the documents, and its readers reading it.

The sizes, ranges and .fmb codes below are written out from docs/NUMERICS.md §1
(sat_T ranges), docs/ACCELERATOR.md (element types) and docs/FMB.md (codes):
the table may not change them without the documents and the file format.
"""

from __future__ import annotations

import struct

import numpy as np

from fastmamba.compiler.backend import lower_base
from fastmamba.compiler.dialects import mamba_quant
from fastmamba.isa import container, dtypes, instructions, numerics
from fastmamba.simulator import runtime


def test_table_against_the_documents():
    want = {  # name: (code, bytes, range or None for floats)
        "u8": (0, 1, (0, 255)), "i8": (1, 1, (-128, 127)), "i16": (2, 2, (-32768, 32767)),
        "i32": (3, 4, (-(1 << 31), (1 << 31) - 1)), "i64": (4, 8, (-(1 << 63), (1 << 63) - 1)), "f32": (5, 4, None),
    }
    assert list(dtypes.DTYPES) == list(want)
    for name, (code, size, rng) in want.items():
        d = dtypes.DTYPES[name]
        assert (d.code, d.size, struct.calcsize(d.struct_format)) == (code, size, size)
        assert d.numpy == d.numpy.newbyteorder("<")
        if rng is None:
            assert d.is_float and d.numpy == np.dtype("<f4")
        else:
            assert d.range == rng and d.signed == (rng[0] < 0)
    assert dtypes.MACHINE_TYPES == ("i8", "i16", "i32", "f32")
    assert dtypes.INT_MACHINE_TYPES == ("i8", "i16", "i32")


def test_the_readers_read_the_table():
    for name in dtypes.MACHINE_TYPES:
        assert instructions.DTYPE_BYTES[name] == lower_base.ELEMENT_BYTES[name] == dtypes.itemsize(name)
        assert numerics.NUMPY_DTYPES[name] is dtypes.DTYPES[name].numpy
    for name in dtypes.INT_MACHINE_TYPES:
        assert numerics.INT_RANGE[name] == dtypes.int_range(name)
    for name, d in dtypes.DTYPES.items():
        assert container.TENSOR_DTYPES[name] == (d.code, d.struct_format)
        assert container.dtype_itemsize(name) == d.size
        assert runtime.numpy_dtype(name) is d.numpy


def test_micro_ops_with_b_listed_once():
    assert set(numerics.MICRO_OPS_WITH_B) < set(instructions.MICRO_OPS)
    assert mamba_quant.VEC_MICRO_OPS == tuple(o for o in instructions.MICRO_OPS if o != "none")
    assert "/".join(numerics.MICRO_OPS_WITH_B) + " taking b" in instructions.OPS["vec"].doc
