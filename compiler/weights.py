"""A numpy view of a checkpoint's WeightStore: what the `mamba` interpreter reads weights from.

Place in the flow: between compiler.checkpoint (torch tensors, read lazily,
memory-mapped) and compiler.interpreters.mamba (numpy).  Each tensor is read
and converted to float32 on first access and kept while the kept ones take
at most `cache_bytes` (CACHE_BYTES: all of a 130M model's); beyond that a
tensor is read again on each access, so a 2.7B model's 10.8 GB of float32
weights are never all held (calibration, then the constant image, read each
weight in turn).  `derived` keeps values computed from the weights (the
offline weight expressions, compiler.interpreters.mamba_quant) within
DERIVED_BYTES of memory and beyond that up to SPILL_BYTES in an unlinked
temporary file, so that the constant image reuses what calibration computed
(a 2.7B model's rotated weights: their float64 Hadamard GEMMs are not run
a second time).
"""

from __future__ import annotations

import tempfile
import weakref
from collections.abc import Iterator, Mapping
from typing import IO, Any

import numpy as np

__all__ = ["NumpyWeights", "DerivedValues", "CACHE_BYTES", "DERIVED_BYTES", "SPILL_BYTES"]

CACHE_BYTES = 1 << 30  # float32 arrays kept for later accesses, in bytes
DERIVED_BYTES = 1 << 30  # values derived from the weights kept in memory for later uses, in bytes
SPILL_BYTES = 16 << 30  # and beyond those, kept in a temporary file


class DerivedValues:
    """Values computed from one weight store, by a key naming the computation; each kept in memory while the
    kept ones take at most `limit_bytes`, else written to an unlinked temporary file while those take at most
    `spill_bytes` and read back when asked for (beyond both, a value is computed again where it is needed)."""

    def __init__(self, limit_bytes: int = DERIVED_BYTES, spill_bytes: int = SPILL_BYTES):
        self._values: dict[Any, tuple[np.ndarray, ...]] = {}
        self._room = limit_bytes
        self._spilled: dict[Any, list[tuple[int, np.dtype, tuple[int, ...]]]] = {}  # key -> (offset, dtype, shape)
        self._spill_room = spill_bytes
        self._file: IO[bytes] | None = None

    def __contains__(self, key: Any) -> bool:
        return key in self._values or key in self._spilled

    def get(self, key: Any) -> tuple[np.ndarray, ...] | None:
        if key in self._spilled:
            assert self._file is not None
            out = []
            for offset, dtype, shape in self._spilled[key]:
                self._file.seek(offset)
                out.append(np.fromfile(self._file, dtype, int(np.prod(shape))).reshape(shape))
            return tuple(out)
        return self._values.get(key)

    def put(self, key: Any, values: tuple[np.ndarray, ...]) -> None:
        if key in self:
            return
        arrays = [np.asarray(v) for v in values]
        nbytes = sum(a.nbytes for a in arrays)
        if nbytes <= self._room:
            self._values[key] = values
            self._room -= nbytes
        elif nbytes <= self._spill_room and not any(a.dtype.hasobject for a in arrays):
            if self._file is None:
                self._file = tempfile.TemporaryFile()  # unlinked: nothing is left behind
                weakref.finalize(self, self._file.close)  # closed with its values
            entries = []
            for a in arrays:
                offset = self._file.seek(0, 2)
                np.ascontiguousarray(a).tofile(self._file)
                entries.append((offset, a.dtype, a.shape))
            self._spilled[key] = entries
            self._spill_room -= nbytes


class NumpyWeights(Mapping[str, np.ndarray]):
    """name -> float32 numpy array over a mapping of torch tensors (a WeightStore)."""

    def __init__(self, store: Mapping[str, Any], cache_bytes: int = CACHE_BYTES, derived_bytes: int = DERIVED_BYTES,
                 spill_bytes: int = SPILL_BYTES):
        self._store = store
        self._cache: dict[str, np.ndarray] = {}
        self._room = cache_bytes
        self.derived = DerivedValues(derived_bytes, spill_bytes)

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self._cache:
            return self._cache[name]
        import torch

        array = self._store[name].detach().to(torch.float32).cpu().numpy()
        if array.nbytes <= self._room:
            self._cache[name] = array
            self._room -= array.nbytes
        return array

    def __contains__(self, name: object) -> bool:
        return name in self._store

    def __iter__(self) -> Iterator[str]:
        return iter(self._store)

    def __len__(self) -> int:
        return len(self._store)
