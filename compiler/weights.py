"""A numpy view of a checkpoint's WeightStore: what the `mamba` interpreter reads weights from.

Place in the flow: between compiler.checkpoint (torch tensors, read lazily,
memory-mapped) and compiler.interpreters.mamba (numpy).  Each tensor is read
and converted to float32 on first access and kept while the kept ones take
at most `cache_bytes` (CACHE_BYTES: all of a 130M model's); beyond that a
tensor is read again on each access, so a 2.7B model's 10.8 GB of float32
weights are never all held (calibration, then the constant image, read each
weight in turn).  `derived` keeps values computed from the weights (the
offline weight expressions, compiler.interpreters.mamba_quant) within
DERIVED_BYTES, so that the constant image reuses what calibration computed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

__all__ = ["NumpyWeights", "DerivedValues", "CACHE_BYTES", "DERIVED_BYTES"]

CACHE_BYTES = 1 << 30  # float32 arrays kept for later accesses, in bytes
DERIVED_BYTES = 1 << 30  # values derived from the weights kept for later uses, in bytes


class DerivedValues:
    """Values computed from one weight store, by a key naming the computation; each kept while the kept ones
    take at most `limit_bytes` (beyond that a value is computed again where it is needed)."""

    def __init__(self, limit_bytes: int = DERIVED_BYTES):
        self._values: dict[Any, tuple[np.ndarray, ...]] = {}
        self._room = limit_bytes

    def get(self, key: Any) -> tuple[np.ndarray, ...] | None:
        return self._values.get(key)

    def put(self, key: Any, values: tuple[np.ndarray, ...]) -> None:
        nbytes = sum(np.asarray(v).nbytes for v in values)
        if key not in self._values and nbytes <= self._room:
            self._values[key] = values
            self._room -= nbytes


class NumpyWeights(Mapping[str, np.ndarray]):
    """name -> float32 numpy array over a mapping of torch tensors (a WeightStore)."""

    def __init__(self, store: Mapping[str, Any], cache_bytes: int = CACHE_BYTES, derived_bytes: int = DERIVED_BYTES):
        self._store = store
        self._cache: dict[str, np.ndarray] = {}
        self._room = cache_bytes
        self.derived = DerivedValues(derived_bytes)

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
