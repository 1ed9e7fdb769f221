"""Benchmark: the quantization ablation (the paper's Table II) on the bundled model.

Bits per byte and perplexity of fp32, w8a8_rtn, w8a8_hadamard_linear and fastmamba on
the held-out last 10% of ../shared/data/tinyshakespeare.txt, calibrated on the first
4096 bytes; then the same on the model with injected outlier channels (norm weights
unfolded).  Also the outlier ratios (largest / median channel |max|) of every linear
input before and after the rotation.  Prints one JSON object.

    .venv/bin/python benchmarks/bench_quant_eval.py [--tail-fraction 0.1] [--calibration-bytes 4096]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fastmamba.compiler.checkpoint import DEFAULT_MODEL_DIR, load_model  # noqa: E402
from fastmamba.compiler.commands.eval import measure, text_tail  # noqa: E402
from fastmamba.compiler.quant.evaluate import inject_outliers, quant_scheme_builders  # noqa: E402
from fastmamba.compiler.reference import Mamba2Reference, one_thread  # noqa: E402
from fastmamba.compiler.tokenizer import load_tokenizer  # noqa: E402


def table(config, weights, tokenizer, tail, calib, fold_norms: bool) -> dict:
    out: dict = {}
    recorded = {}
    schemes = {"fp32": lambda c, w: Mamba2Reference(c, w).prefill,
               **quant_scheme_builders(calib, fold_norms=fold_norms, on_calibrated=lambda r: recorded.update(r=r))}
    for name, build in schemes.items():
        m = measure(build(config, weights), tokenizer, tail).as_dict()
        out[name] = {k: m[k] for k in ("bits_per_byte", "perplexity", "seconds")}
        print(f"{name}: {out[name]}", file=sys.stderr, flush=True)
    ratios = recorded["r"].outlier_ratios()
    out["outliers_max_ratio"] = {"before": max(r["before"] for r in ratios.values()),
                                 "after": max(r["after"] for r in ratios.values())}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tail-fraction", type=float, default=0.1)
    ap.add_argument("--calibration-bytes", type=int, default=4096)
    ap.add_argument("--text", default=str(ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"))
    args = ap.parse_args()
    data = Path(args.text).read_bytes()
    config, weights = load_model(DEFAULT_MODEL_DIR)
    tokenizer = load_tokenizer(config, DEFAULT_MODEL_DIR)
    tail = text_tail(data, args.tail_fraction)
    calib = np.frombuffer(data[:args.calibration_bytes], np.uint8).astype(np.int64)
    with one_thread():
        result = {"plain": table(config, weights, tokenizer, tail, calib, True),
                  "injected_outliers": table(config, inject_outliers(config, weights), tokenizer, tail, calib, False)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
