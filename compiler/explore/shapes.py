"""The paper's model shapes with random weights made on demand, and quantized IR of them (timing-only compiles).

Place in the flow: beside the compiler, for work that needs a model's shape but not its weights: `fastmamba
explore` (compiler/explore/) and the benchmarks (benchmarks/).  `RandomWeights` is a read-only mapping
name -> float32 array that draws each tensor when asked (seeded by its name),
so a 2.7B-parameter shape is compiled without ever holding all its weights.
`quantized_module` builds the IR of a shape as `fastmamba compile` does, with
calibration ranges measured on a model of the same widths but `calib_layers`
layers (every layer gets the ranges of the layer with its index modulo that),
so even the 2.7B shape is calibrated by real interpretation at a small cost.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping
from dataclasses import replace

import numpy as np

from fastmamba.compiler.checkpoint import expected_shapes
from fastmamba.compiler.config import Mamba2Config

SHAPES = {
    "130m": Mamba2Config(d_model=768, n_layer=24, vocab_size=50280, d_state=128, headdim=64, expand=2, ngroups=1),
    "2.7b": Mamba2Config(d_model=2560, n_layer=64, vocab_size=50280, d_state=128, headdim=64, expand=2, ngroups=1),
}
# The paper's measured decode speed: FastMamba on the VC709, Mamba2-2.7B, one sequence (arXiv 2505.18975).
PAPER_DECODE_TOKENS_PER_S = 5.68


class RandomWeights(Mapping[str, np.ndarray]):
    """Random weights of a config, drawn per tensor on access (deterministic), as random_hf_model draws them."""

    def __init__(self, config: Mamba2Config, seed: int = 0):
        self.shapes = expected_shapes(config)
        self.seed = seed

    def __getitem__(self, name: str) -> np.ndarray:
        shape = self.shapes[name]
        rng = np.random.default_rng([self.seed, zlib.crc32(name.encode())])
        if name.endswith("A_log"):
            return rng.uniform(-1.0, 1.5, shape).astype(np.float32)
        if name.endswith("dt_bias"):
            return rng.uniform(-4.0, 0.5, shape).astype(np.float32)
        if name.endswith(".D"):
            return rng.uniform(-1.0, 2.0, shape).astype(np.float32)
        if name.endswith("norm.weight") or name.endswith("norm_f.weight"):
            return rng.uniform(0.5, 1.5, shape).astype(np.float32)
        if name.endswith("conv1d.bias"):
            return rng.uniform(-0.3, 0.3, shape).astype(np.float32)
        if name.endswith("conv1d.weight"):
            return rng.uniform(-0.6, 0.6, shape).astype(np.float32)
        scale = (2.0 if "embeddings" in name else 1.0) / np.sqrt(shape[1])
        return (rng.standard_normal(shape, np.float32) * np.float32(scale)).astype(np.float32)

    def __iter__(self) -> Iterator[str]:
        return iter(self.shapes)

    def __len__(self) -> int:
        return len(self.shapes)


def ranges_by_calibration(config: Mamba2Config, calib_layers: int = 1, length: int = 8, seed: int = 0,
                          weights: Mapping[str, np.ndarray] | None = None) -> dict:
    """Ranges of every site of `config`, measured on a `calib_layers`-layer model of the same widths (with
    `weights`, a checkpoint's tensors by name, else RandomWeights)."""
    from fastmamba.compiler.compile import around_calibration
    from fastmamba.compiler.frontend.importer import import_model
    from fastmamba.compiler.pipeline import run_pipeline
    from fastmamba.passes.calibrate import calibrate_module

    small = replace(config, n_layer=min(calib_layers, config.n_layer))
    module = import_model(small, "prefill", length).module
    run_pipeline(module, around_calibration()[0])
    tokens = np.random.default_rng(seed).integers(0, config.vocab_size, length)
    measured = calibrate_module(module, RandomWeights(small, seed) if weights is None else weights, tokens, windows=1)
    out = {}
    for site, values in measured.items():
        if ".layers." in site:
            prefix, rest = site.split(".layers.", 1)
            index, tail = rest.split(".", 1) if "." in rest else (rest, "")
            for i in range(int(index), config.n_layer, small.n_layer):
                out[f"{prefix}.layers.{i}" + (f".{tail}" if tail else "")] = values
        else:
            out[site] = values
    return out


def imported_module(config: Mamba2Config, length: int, decode: bool = True):
    """The imported (not yet quantized) module `fastmamba compile` starts from: @prefill at `length`, and
    @decode; it does not depend on the target (quantize it, or a clone of it, for one)."""
    from fastmamba.compiler.compile import merge_decode
    from fastmamba.compiler.frontend.importer import import_model

    module = import_model(config, "prefill", length).module
    if decode:
        merge_decode(module, import_model(config, "prefill", 1).module)
    return module


def quantize(module, ranges: dict, target: str = "vc709", decode: bool = True):
    """`module` (imported_module's) quantized in place with `ranges` for `target` (a preset or target file, set
    on the module for every later pass), as `fastmamba compile` does up to the backend; returns it."""
    from fastmamba.compiler.compile import around_calibration
    from fastmamba.compiler.pipeline import run_pipeline
    from fastmamba.passes.calibrate import apply_ranges

    before, after = around_calibration(target)
    run_pipeline(module, before)
    apply_ranges(module, ranges, function="prefill")
    if decode:
        apply_ranges(module, ranges, function="decode")
    run_pipeline(module, after)
    return module


def quantized_module(config: Mamba2Config, length: int, ranges: dict, decode: bool = True, target: str = "vc709"):
    """The module `fastmamba compile` lowers (prefill at `length`, and decode), quantized with `ranges` for
    `target` (a preset or target file, set on the module for every later pass)."""
    return quantize(imported_module(config, length, decode), ranges, target, decode)
