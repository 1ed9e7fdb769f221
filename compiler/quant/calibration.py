"""Tensor-level calibration: activation ranges per site from a float run of the golden model.

Place in the flow: the evaluation's counterpart of the calibrate pass (which records
the same quantities on IR ops); both feed compiler/quant/plan.py.  Also the
outlier statistics of `fastmamba eval --outliers` (of the projections' inputs).

method "max": the largest |value| seen.  method "percentile": the p-th percentile of
|value| per calibration segment, averaged over segments, for the linear layers'
(and the LM head's) activations ("x", "xr"); conv and SSM formats always use the max (their power-of-two
formats have a factor-2 step, and a saturated SSM state does not recover).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping

import numpy as np

from fastmamba.compiler.quant.hadamard import rotate_blocks
from fastmamba.compiler.quant.plan import HEAD_SITE, is_linear_site

__all__ = ["RangeRecorder", "channel_outlier_ratio", "LINEAR_QUANTITIES"]

LINEAR_QUANTITIES = ("x", "xr")


def channel_outlier_ratio(channel_amax: np.ndarray) -> float:
    """Largest channel's |max| over the median channel's: the paper's motivation for the rotation."""
    med = float(np.median(channel_amax))
    return float(np.max(channel_amax)) / med if med > 0 else float("inf")


class RangeRecorder:
    """Collects ranges per (site, quantity); linear sites also get "xr" (the input rotated by block_of(site, k))."""

    def __init__(self, method: str = "max", percentile: float = 99.99, block_of: Callable[[str, int],
                                                                                          int] | None = None):
        if method not in ("max", "percentile"):
            raise ValueError(f"calibration method must be 'max' or 'percentile', got {method!r}")
        if not 0 < percentile <= 100:
            raise ValueError(f"percentile must lie in (0, 100], got {percentile}")
        self.method, self.percentile, self.block_of = method, percentile, block_of
        self._max: dict[tuple[str, str], float] = defaultdict(float)
        self._pct: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.channel_amax: dict[tuple[str, str], np.ndarray] = {}

    def __call__(self, site: str, quantity: str, value: np.ndarray) -> None:
        linear = is_linear_site(site)
        self._add(site, quantity, value, linear)
        if linear and quantity == "x":
            k = value.shape[-1]
            block = self.block_of(site, k) if self.block_of is not None else 1
            self._add(site, "xr", rotate_blocks(np.asarray(value, np.float32), block) if block > 1 else value, True)

    def record(self, site: str, quantity: str, value: np.ndarray) -> None:
        """Record one quantity as it is (no derived "xr")."""
        self._add(site, quantity, value, is_linear_site(site))

    def _add(self, site: str, quantity: str, value: np.ndarray, linear: bool) -> None:
        value = np.asarray(value)
        # |x| and its maxima are exact in a float array's own type (no float64 copy); percentiles interpolate,
        # so they (and integer arrays) take float64
        exact = value.dtype in (np.float32, np.float64) and self.method != "percentile"
        key = (site, quantity)
        channels = linear and quantity in LINEAR_QUANTITIES  # the outlier statistics: of the activations only
        if exact and not channels:  # (a weight's "w"): max |value| = max(max, -min), exactly, without |value|
            largest = float(max(value.max(), -value.min())) if value.size else 0.0
            self._max[key] = max(self._max[key], largest)
            return
        a = np.abs(value) if exact else np.abs(np.asarray(value, np.float64))
        self._max[key] = max(self._max[key], float(a.max()) if a.size else 0.0)
        if linear and self.method == "percentile":
            self._pct[key].append(float(np.percentile(a, self.percentile)) if a.size else 0.0)
        if channels:
            cm = a.reshape(-1, a.shape[-1]).max(axis=0).astype(np.float64)
            self.channel_amax[key] = np.maximum(self.channel_amax[key], cm) if key in self.channel_amax else cm

    def ranges(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = defaultdict(dict)
        for (site, quantity), m in self._max.items():
            if self.method == "percentile" and (site, quantity) in self._pct:
                out[site][quantity] = float(np.mean(self._pct[(site, quantity)]))
            else:
                out[site][quantity] = m
        return dict(out)

    def outlier_ratios(self) -> dict[str, dict[str, float]]:
        """Per projection (in_proj, out_proj): {"before": ratio of the input, "after": ratio of the rotated input}."""
        out: dict[str, dict[str, float]] = {}
        for (site, quantity), cm in sorted(self.channel_amax.items()):
            if site == HEAD_SITE:
                continue
            out.setdefault(site, {})["before" if quantity == "x" else "after"] = channel_outlier_ratio(cm)
        return out


def merge_ranges(*parts: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for part in parts:
        for site, qs in part.items():
            out.setdefault(site, {}).update(qs)
    return out
