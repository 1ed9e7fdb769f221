"""compiler.weights.NumpyWeights: float32 arrays of a checkpoint's tensors, kept up to a byte budget."""

from __future__ import annotations

import numpy as np
import torch

from fastmamba.compiler.weights import NumpyWeights


class _CountingStore(dict):
    """A store of torch tensors that counts how often each is read."""

    def __init__(self, tensors):
        super().__init__(tensors)
        self.reads: dict[str, int] = {}

    def __getitem__(self, name):
        self.reads[name] = self.reads.get(name, 0) + 1
        return super().__getitem__(name)


def test_tensors_are_kept_up_to_the_budget_and_read_again_beyond_it():
    rng = np.random.default_rng(0)
    store = _CountingStore({"a": torch.from_numpy(rng.standard_normal((4, 8), np.float32)),
                            "b": torch.from_numpy(rng.standard_normal((16, 8), np.float32)).to(torch.bfloat16),
                            "c": torch.from_numpy(rng.standard_normal((2, 8), np.float32))})
    weights = NumpyWeights(store, cache_bytes=4 * 4 * 8 + 4 * 2 * 8)  # room for a and c, not b (512 bytes)
    for _ in range(3):
        for name in ("a", "b", "c"):
            got = weights[name]
            assert got.dtype == np.float32
            assert np.array_equal(got, store[name].to(torch.float32).numpy())
    # the test's own reads (one per check) plus NumpyWeights': a and c once, b on every access
    assert store.reads == {"a": 3 + 1, "b": 3 + 3, "c": 3 + 1}
    assert weights["a"] is weights["a"] and weights["b"] is not weights["b"]
