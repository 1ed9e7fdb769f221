"""A resource model: per unit, LUT/FF/DSP/... as a linear formula in the target's parameters, fitted to synthesis.

Place in the flow: beside `hardware.synth` (build.py's NOT_RTL keeps it out
of the RTL's cache key): synthesis is the ground truth and takes a minute or
more per unit; this model answers in microseconds, for design-space
exploration.  Each unit has a few features (products of lane counts, widths
and buffer bytes that its hardware scales with: MACs, trees, adder-tree
inputs, buffer-port bits) and, per resource, coefficients fitted by least
squares (numpy) to `hardware.synth` runs at small configurations
(`CONFIGS`, overrides of the `small` preset).  Configurations marked held
out are synthesized but not fitted: `benchmarks/bench_resource_model.py`
prints the model's error on them.

The data (every synthesized configuration's counts) and the coefficients
live in `hardware/resource_model.json`, written by

    .venv/bin/python -m fastmamba.hardware.resource_model

which synthesizes what build/synth/ does not have cached and refits.  A
unit's formula is only as good as its extrapolation: vc709's LIN has 384
trees where the fit saw at most 16 (docs/SYNTH.md gives the figures).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from fastmamba.isa.target import PRESETS, Target

DATA_FILE = Path(__file__).resolve().parent / "resource_model.json"
MODELED = ("LUT", "FF", "CARRY4", "DSP48E1", "RAMB36", "RAMB18")  # MUXF7/8 stay near zero: not modeled


def _beat(t: Target) -> int:
    from fastmamba.hardware.synth import buildable_target

    return int(buildable_target(t).dma_bytes_per_cycle)


def _log2(v: float) -> float:
    return math.log2(max(v, 1))


@dataclass(frozen=True)
class UnitFormula:
    """Features of a unit: names and a function of the target giving their values (the first is 1)."""

    unit: str
    names: tuple[str, ...]
    features: Callable[[Target], list[float]]
    params: tuple[str, ...]  # the target parameters the configurations vary (and the features read)


def _lin(t: Target) -> list[float]:
    n, w = t.lin_groups * t.lin_mac_trees, t.lin_mac_tree_width
    r, b = max(t.hadamard_max_block, w), _beat(t)
    return [1.0, n * w, n, r * w * _log2(r), n * b * _log2(b)]


def _conv(t: Target) -> list[float]:
    c, k, b = t.conv_channels, t.conv_kernel_max, _beat(t)
    return [1.0, c * k, c, k * b * _log2(b)]


def _buffer(t: Target) -> list[float]:
    b = _beat(t)
    return [1.0, t.buffer_bytes / 1024, b * _log2(t.buffer_bytes / b / 2)]


def _control(t: Target) -> list[float]:
    from fastmamba.hardware.machine import UNITS, table_entries

    b = _beat(t)
    entries = table_entries(t, [u.pipeline_latency(t) for u in UNITS.values()])
    return [1.0, b * _log2(b), entries, t.semaphores]


FORMULAS = {
    "lin": UnitFormula("lin", ("1", "N*W", "N", "R*W*log2 R", "N*B*log2 B"), _lin,
                       ("lin_groups", "lin_mac_trees", "lin_mac_tree_width", "hadamard_max_block",
                        "ddr_gbytes_per_s")),
    "conv": UnitFormula("conv", ("1", "C*K", "C", "K*B*log2 B"), _conv,
                        ("conv_channels", "conv_kernel_max", "ddr_gbytes_per_s")),
    "buffer": UnitFormula("buffer", ("1", "KiB", "B*log2 rows"), _buffer, ("buffer_bytes", "ddr_gbytes_per_s")),
    "control": UnitFormula("control", ("1", "B*log2 B", "entries", "semaphores"), _control,
                           ("ddr_gbytes_per_s", "dma_queue_depth", "semaphores")),
}

# Small configurations (overrides of `small`; ddr_gbytes_per_s 4/8/16 gives 16/32/64-byte DMA beats at
# small's 250 MHz) synthesized per unit; "held" ones are left out of the fit and measure its error.  LIN's
# RTL sees lin_groups * lin_mac_trees only (the same Verilog for 2 x 2 as for 1 x 4): the configurations
# vary lin_mac_trees.
_G16, _G32, _G64 = 4.0, 8.0, 16.0
CONFIGS: dict[str, list[dict]] = {
    "lin": [
        {"lin_groups": 1, "lin_mac_trees": 1, "lin_mac_tree_width": 2, "hadamard_max_block": 8},
        {"lin_groups": 1, "lin_mac_trees": 2, "lin_mac_tree_width": 4, "hadamard_max_block": 8},
        {"lin_groups": 1, "lin_mac_trees": 4, "lin_mac_tree_width": 4, "hadamard_max_block": 16},
        {"lin_groups": 1, "lin_mac_trees": 2, "lin_mac_tree_width": 2, "hadamard_max_block": 32},
        {"lin_groups": 1, "lin_mac_trees": 8, "lin_mac_tree_width": 2, "hadamard_max_block": 8,
         "ddr_gbytes_per_s": _G32},
        {"lin_groups": 1, "lin_mac_trees": 4, "lin_mac_tree_width": 8, "hadamard_max_block": 8},
        {"lin_groups": 1, "lin_mac_trees": 2, "lin_mac_tree_width": 8, "hadamard_max_block": 16, "held": True},
        {"lin_groups": 1, "lin_mac_trees": 8, "lin_mac_tree_width": 4, "hadamard_max_block": 16,
         "ddr_gbytes_per_s": _G32, "held": True},
    ],
    "conv": [
        {"conv_channels": 1, "conv_kernel_max": 2},
        {"conv_channels": 4, "conv_kernel_max": 4},
        {"conv_channels": 2, "conv_kernel_max": 3},
        {"conv_channels": 4, "conv_kernel_max": 2},
        {"conv_channels": 8, "conv_kernel_max": 3, "ddr_gbytes_per_s": _G32},
        {"conv_channels": 2, "conv_kernel_max": 4, "held": True},
        {"conv_channels": 8, "conv_kernel_max": 2, "ddr_gbytes_per_s": _G32, "held": True},
    ],
    "buffer": [
        {"buffer_bytes": 16 * 1024},
        {"buffer_bytes": 64 * 1024},
        {"buffer_bytes": 32 * 1024, "ddr_gbytes_per_s": _G32},
        {"buffer_bytes": 128 * 1024, "ddr_gbytes_per_s": _G32},
        {"buffer_bytes": 32 * 1024, "held": True},
        {"buffer_bytes": 64 * 1024, "ddr_gbytes_per_s": _G32, "held": True},
    ],
    "control": [
        {},
        {"dma_queue_depth": 8},
        {"semaphores": 16, "dma_queue_depth": 2},
        {"ddr_gbytes_per_s": _G32},
        {"ddr_gbytes_per_s": _G32, "dma_queue_depth": 8, "semaphores": 16},
        {"dma_queue_depth": 6, "held": True},
        {"ddr_gbytes_per_s": _G32, "semaphores": 4, "held": True},
    ],
}


def config_target(overrides: dict) -> Target:
    values = {k: v for k, v in overrides.items() if k != "held"}
    return dataclasses.replace(PRESETS["small"], name="fit", **values)


def fit(formula: UnitFormula, rows: list[dict]) -> dict[str, list[float]]:
    """Least-squares coefficients per resource over `rows` ({"config", "counts"})."""
    x = np.array([formula.features(config_target(r["config"])) for r in rows], dtype=float)
    coef = {}
    for res in MODELED:
        y = np.array([r["counts"][res] for r in rows], dtype=float)
        sol, *_ = np.linalg.lstsq(x, y, rcond=None)
        coef[res] = [float(v) for v in sol]
    return coef


def predict_unit(unit: str, target: Target, coef: dict[str, list[float]]) -> dict[str, float]:
    f = np.array(FORMULAS[unit].features(target), dtype=float)
    return {res: max(0.0, float(f @ np.array(c))) for res, c in coef.items()}


def load(path: Path = DATA_FILE) -> dict:
    return json.loads(path.read_text())


def predict(target: Target, data: dict | None = None) -> dict[str, dict[str, float]]:
    """Per unit (and "total") the model's estimate for `target`."""
    data = data or load()
    out = {unit: predict_unit(unit, target, d["coef"]) for unit, d in data["units"].items()}
    out["total"] = {res: sum(out[u][res] for u in data["units"]) for res in MODELED}
    return out


def errors(unit: str, data: dict) -> dict[str, dict[str, float]]:
    """Per resource, the median and worst relative error on the held-out rows (|model - synth| / synth; for a
    synthesized count of 0 the absolute difference), and the worst absolute difference."""
    d = data["units"][unit]
    held = [r for r in d["rows"] if r["config"].get("held")]
    out = {}
    for res in MODELED:
        rel, ab = [], []
        for r in held:
            got = predict_unit(unit, config_target(r["config"]), d["coef"])[res]
            want = r["counts"][res]
            ab.append(abs(got - want))
            rel.append(abs(got - want) / want if want else abs(got - want))
        out[res] = {"median": float(np.median(rel)), "worst": float(max(rel)), "worst_abs": float(max(ab)),
                    "zero": all(r["counts"][res] == 0 for r in held)}
    return out


def generate(units: list[str], path: Path = DATA_FILE, log=print) -> dict:
    """Synthesize every configuration of `units` (cached ones are not rerun), fit, write `path`."""
    from fastmamba.hardware.synth import synth_unit

    data = load(path) if path.exists() else {"units": {}}
    for unit in units:
        rows: list[dict] = []
        for cfg in CONFIGS[unit]:
            rep = synth_unit(config_target(cfg), unit)
            rows.append({"config": cfg, "counts": rep.counts, "seconds": round(rep.seconds, 1)})
            log(f"{unit} {json.dumps(cfg)}: " + ", ".join(f"{k} {v}" for k, v in rep.counts.items() if v)
                + f" ({rep.seconds:.0f} s)")
        formula = FORMULAS[unit]
        data["units"][unit] = {"features": list(formula.names), "params": list(formula.params), "rows": rows,
                               "coef": fit(formula, [r for r in rows if not r["config"].get("held")])}
    data["note"] = "written by `python -m fastmamba.hardware.resource_model`; counts from hardware.synth"
    from fastmamba.isa.fileio import write_atomic

    write_atomic(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
    return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fastmamba.hardware.resource_model",
                                 description="synthesize the fit configurations and refit the resource model")
    ap.add_argument("--unit", action="append", choices=sorted(FORMULAS), help="only this unit (repeatable)")
    args = ap.parse_args(argv)
    generate(args.unit or list(FORMULAS), log=lambda s: print(s, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
