"""The quantized schemes of `fastmamba eval`: calibration, plans, outlier injection and statistics.

Place in the flow: called by compiler/commands/eval.py; builds the golden model
(compiler/quant/golden.py) for each scheme from ranges recorded on calibration
text (the beginning of --text, before the held-out tail).  The schemes are the
paper's Table II ablation:
    w8a8_rtn               linear layers W8A8, round to nearest, no rotation (NormalQ)
    w8a8_hadamard_linear   linear layers W8A8 after block Hadamard rotations (FastMamba-LQ)
    fastmamba              that, plus power-of-two fixed point conv1d and SSM with the NLA's
                           first-order exp and softplus (FastMamba)
    accelerator            fastmamba with the LM head W8A8 too: what `fastmamba compile` puts on the
                           accelerator (the LIN unit has no binary32 matmul)
Hardware facts (Hadamard block limit, NLA table, state width) come from the target.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from fastmamba.compiler.config import Mamba2Config
from fastmamba.compiler.quant.calibration import RangeRecorder
from fastmamba.compiler.quant.golden import GoldenMamba2, LayerPlan, QuantPlan, as_numpy_weights
from fastmamba.compiler.quant.hadamard import default_block
from fastmamba.compiler.quant.plan import HEAD_SITE, conv_quant, linear_quant, ssm_quant
from fastmamba.isa.target import Target, load_target

__all__ = ["QUANT_SCHEMES", "EVAL_SCHEMES", "calibrate", "build_plan", "quant_scheme_builders", "inject_outliers",
           "calibration_ids"]

QUANT_SCHEMES = ("w8a8_rtn", "w8a8_hadamard_linear", "fastmamba")
EVAL_SCHEMES = (*QUANT_SCHEMES, "accelerator")  # accelerator = fastmamba with head=True
CALIBRATION_SEGMENT = 1024


def _float_plan(config: Mamba2Config, fold_norms: bool) -> QuantPlan:
    return QuantPlan(tuple(LayerPlan() for _ in range(config.n_layer)), fold_norms=fold_norms)


def calibrate(config: Mamba2Config, weights: Mapping[str, Any], ids: np.ndarray, *, method: str = "max",
              percentile: float = 99.99, target: str | Target = "vc709", fold_norms: bool = True) -> RangeRecorder:
    """Run the float golden model over `ids` (in segments, state carried) and record every site's ranges."""
    max_block = load_target(target).hadamard_max_block
    recorder = RangeRecorder(method, percentile, lambda site, k: default_block(k, max_block))
    model = GoldenMamba2(config, weights, _float_plan(config, fold_norms), target)
    model.recorder = recorder
    states = None
    for start in range(0, len(ids), CALIBRATION_SEGMENT):
        _, states = model.run(np.asarray(ids[start:start + CALIBRATION_SEGMENT], np.int64), states)
    return recorder


def build_plan(scheme: str, config: Mamba2Config, weights: Mapping[str, np.ndarray] | None,
               ranges: Mapping[str, Mapping[str, float]], *, target: str | Target = "vc709",
               granularity: str = "channel",
               fold_norms: bool = True, nonlinear: str = "table", dynamic: bool = False,
               head: bool = False) -> QuantPlan:
    """The plan of one scheme from calibration ranges, as assign-scales derives it from the same ranges.

    head: the LM head W8A8 too (as assign-scales{head="int8"}), rotated by the scheme's block
    (insert-hadamard{head=true}); else it stays binary32.

    The conv and SSM formats also need weight magnitudes: the ranges' "w" (conv), "A" (exp(A_log)) and "D"
    (recorded by the calibrate pass), else taken from `weights` (numpy arrays).
    """
    if scheme not in QUANT_SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}")
    t = load_target(target)

    def block_of(k: int) -> int:
        return 1 if scheme == "w8a8_rtn" else default_block(k, t.hadamard_max_block)

    layers = []
    for i in range(config.n_layer):
        p = f"backbone.layers.{i}.mixer."

        def lin(name: str, k: int, p: str = p) -> Any:
            return linear_quant(ranges[p + name], block_of(k), granularity, dynamic)

        conv = ssm = None
        if scheme == "fastmamba":
            rc, rs = ranges[p + "conv1d"], ranges[p[:-1]]
            w_amax = rc["w"] if "w" in rc else float(np.abs(weights[p + "conv1d.weight"]).max())
            a_amax = rs["A"] if "A" in rs else float(np.exp(weights[p + "A_log"].astype(np.float64)).max())
            d_amax = rs["D"] if "D" in rs else float(np.abs(weights[p + "D"]).max())
            conv = conv_quant(rc, w_amax)
            ssm = ssm_quant(rs, a_amax, d_amax, nla_bits=t.nla_bits, nla_segments=t.nla_segments,
                            state_bits=t.ssm_state_bits)
        layers.append(LayerPlan(lin("in_proj", config.d_model), lin("out_proj", config.d_inner), conv, ssm))
    head_plan = linear_quant(ranges[HEAD_SITE], block_of(config.d_model), granularity, dynamic) if head else None
    return QuantPlan(tuple(layers), nonlinear=nonlinear, fold_norms=fold_norms, ranges=dict(ranges), head=head_plan)


def quant_scheme_builders(calibration_ids: np.ndarray, *, method: str = "max", percentile: float = 99.99,
                          target: str | Target = "vc709", fold_norms: bool = True,
                          on_calibrated: Callable[[RangeRecorder], None] | None = None) -> dict[str, Callable]:
    """Scheme name -> builder (config, weights) -> prefill, for `fastmamba eval`'s SCHEMES; calibrates once."""
    cache: dict[str, Any] = {}

    def ranges(config, weights):
        if "ranges" not in cache:
            recorder = calibrate(config, weights, calibration_ids, method=method, percentile=percentile, target=target,
                                 fold_norms=fold_norms)
            cache["ranges"] = recorder.ranges()
            cache["np"] = as_numpy_weights(weights)
            if on_calibrated is not None:
                on_calibrated(recorder)
        return cache["ranges"], cache["np"]

    def builder(scheme: str) -> Callable:
        def build(config, weights):
            r, w = ranges(config, weights)
            base, head = ("fastmamba", True) if scheme == "accelerator" else (scheme, False)
            plan = build_plan(base, config, w, r, target=target, fold_norms=fold_norms, head=head)
            return GoldenMamba2(config, w, plan, target).prefill

        return build

    return {scheme: builder(scheme) for scheme in EVAL_SCHEMES}


def inject_outliers(config: Mamba2Config, weights: Mapping[str, Any], channels: int = 4, factor: float = 32.0,
                    seed: int = 0) -> dict[str, Any]:
    """The same function with outlier channels at every linear input: norm weight g[c] * factor, W[:, c] / factor.

    Exact in real arithmetic (FP32 agrees within rounding), but the unfolded linear
    inputs get `channels` columns `factor` times larger, as large models have.  Folding
    the norm weights would remove them again, so evaluate with fold_norms=False.
    """
    import torch

    out = {name: weights[name].detach().clone().to(torch.float32) if hasattr(weights[name], "detach")
           else torch.from_numpy(np.array(weights[name], np.float32)) for name in weights}
    rng = np.random.default_rng(seed)
    for i in range(config.n_layer):
        p = f"backbone.layers.{i}."
        for norm, proj, width in ((p + "norm.weight", p + "mixer.in_proj.weight", config.d_model),
                                  (p + "mixer.norm.weight", p + "mixer.out_proj.weight", config.d_inner)):
            cols = torch.from_numpy(rng.choice(width, size=min(channels, width), replace=False))
            out[norm][cols] *= factor
            out[proj][:, cols] /= factor
    return out


def calibration_ids(data: bytes, tail_start: int, max_bytes: int, tokenizer) -> tuple[np.ndarray, int]:
    """Token ids of the first `max_bytes` of `data` before the held-out tail (the tail itself if nothing precedes
    it)."""
    end = min(max_bytes, tail_start) if tail_start > 0 else min(max_bytes, len(data))
    while end < len(data) and 0x80 <= data[end] < 0xC0:  # a whole UTF-8 character
        end += 1
    chunk = data[:end]
    if tokenizer.is_byte_level:
        return np.frombuffer(chunk, np.uint8).astype(np.int64), len(chunk)
    return np.asarray(tokenizer.encode(chunk.decode("utf-8", errors="replace")), np.int64), len(chunk)
