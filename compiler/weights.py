"""A numpy view of a checkpoint's WeightStore: what the `mamba` interpreter reads weights from.

Place in the flow: between compiler.checkpoint (torch tensors, read lazily,
memory-mapped) and compiler.interpreters.mamba (numpy).  Each tensor is read
and converted to float32 on first access and kept.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

__all__ = ["NumpyWeights"]


class NumpyWeights(Mapping[str, np.ndarray]):
    """name -> float32 numpy array over a mapping of torch tensors (a WeightStore)."""

    def __init__(self, store: Mapping[str, Any]):
        self._store = store
        self._cache: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._cache:
            import torch

            self._cache[name] = self._store[name].detach().to(torch.float32).cpu().numpy()
        return self._cache[name]

    def __contains__(self, name: object) -> bool:
        return name in self._store

    def __iter__(self) -> Iterator[str]:
        return iter(self._store)

    def __len__(self) -> int:
        return len(self._store)
