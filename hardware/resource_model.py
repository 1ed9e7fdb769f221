"""A resource model: per unit, LUT/FF/DSP/... as a formula in the target's parameters, fitted to synthesis.

Place in the flow: beside `hardware.synth` (build.py's NOT_RTL keeps it out
of the RTL's cache key): synthesis is the ground truth and takes a minute or
more per unit; this model answers in microseconds, for design-space
exploration (`predict`).  Each unit has a few terms, each a count its
hardware scales with (lanes, lanes x width for the multipliers, adder-tree
inputs, buffer ports x the bits of a port's byte rotator), and per resource
a nonnegative cost per term, fitted by nonnegative least squares on the
relative error (numpy) to `hardware.synth` runs of small configurations
(`CONFIGS`, overrides of the `small` preset).  The error on configurations
held out of the fit is measured by leave-one-out: each configuration is
predicted by the formula fitted to the others
(`benchmarks/bench_resource_model.py` prints it).

The data (every synthesized configuration: its overrides, the parameters its
unit's terms read, the counts, yosys' version and seconds) and the costs
live in `hardware/resource_model.json`, written by

    .venv/bin/python -m fastmamba.hardware.resource_model [--unit NAME]

which synthesizes what build/synth/ does not have cached and refits.  A
unit's formula is only as good as its extrapolation: vc709's LIN has 384
trees where the fit saw at most 16 (docs/SYNTH.md gives the figures).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
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


def _rotator_bits(t: Target) -> float:
    """B x log2 B: the size of one buffer port's byte rotator (a B-byte window at any byte offset of two words,
    hardware.buffer), B the DMA beat (the buffer's word)."""
    b = _beat(t)
    return b * _log2(b)


@dataclass(frozen=True)
class UnitFormula:
    """Terms of a unit: names and a function of the target giving their values (the first is 1)."""

    unit: str
    names: tuple[str, ...]
    features: Callable[[Target], list[float]]
    params: tuple[str, ...]  # the target parameters the configurations vary (and the features read)
    ports: Callable[[Target], int] | None = None  # buffer ports of the unit (read + write), if it has its own


# Buffer ports per unit (read + write), as each unit's constructor makes them (tests/test_resource_model.py
# counts them on the built units).
def _lin_ports(t: Target) -> int:
    from fastmamba.hardware.lin_datapath import ACT_BITS

    n, r = t.lin_groups * t.lin_mac_trees, max(t.hadamard_max_block, t.lin_mac_tree_width)
    return math.ceil(r * (ACT_BITS // 8) / _beat(t)) + n + 3  # activation window, a weight port per tree, init,
    # scale, the write


def _conv_ports(t: Target) -> int:
    return 3 * t.conv_kernel_max + 1  # K x and K weight rows, the bias, the write, K - 1 state rows


def _ssm_ports(t: Target) -> int:
    return 2 * t.ssm_headdim_lanes + 6  # dt, params, x, B, C; a state row read and write per headdim lane; y


def _vec_ports(t: Target) -> int:
    return 3 * math.ceil(4 * t.vec_lanes / _beat(t))  # a, b and dst: L binary32 elements each


def _lin(t: Target) -> list[float]:
    from fastmamba.hardware.lin_datapath import ACT_BITS

    n, w = t.lin_groups * t.lin_mac_trees, t.lin_mac_tree_width
    r = max(t.hadamard_max_block, w)
    return [1.0, n, n * w, w * r * (ACT_BITS + _log2(r)), _lin_ports(t) * _rotator_bits(t)]  # A = ACT_BITS


def _conv(t: Target) -> list[float]:
    c, k = t.conv_channels, t.conv_kernel_max
    return [1.0, c, c * k, k, _conv_ports(t) * _rotator_bits(t)]


def _ssm(t: Target) -> list[float]:
    p, n = t.ssm_headdim_lanes, t.ssm_dstate_lanes
    return [1.0, p, p * n, _ssm_ports(t) * _rotator_bits(t)]


def _vec(t: Target) -> list[float]:
    return [1.0, t.vec_lanes, t.vec_lanes * t.vec_stages, _vec_ports(t) * _rotator_bits(t)]


def _buffer(t: Target) -> list[float]:
    b = _beat(t)
    return [1.0, t.buffer_bytes / 1024, b * _log2(t.buffer_bytes / b / 2)]


def _control(t: Target) -> list[float]:
    from fastmamba.hardware.machine import UNITS, table_entries

    entries = table_entries(t, [u.pipeline_latency(t) for u in UNITS.values()])
    # the in-flight table compares each entry's ranges with the bundle's, most of the control's logic.  (Entries
    # times the buffer's address bits fitted worse: FF 13.8 % against 2.5 % median held-out error, docs/SYNTH.md.)
    return [1.0, 2 * _rotator_bits(t), entries, t.semaphores]


_DDR = "ddr_gbytes_per_s"  # at small's 250 MHz, 4 / 8 / 16 GB/s give 16 / 32 / 64-byte DMA beats
FORMULAS = {
    "lin": UnitFormula("lin", ("1", "N", "N*W", "W*R*(A+log2 R)", "ports*B*log2 B"), _lin,
                       ("lin_groups", "lin_mac_trees", "lin_mac_tree_width", "hadamard_max_block", _DDR), _lin_ports),
    "conv": UnitFormula("conv", ("1", "C", "C*K", "K", "ports*B*log2 B"), _conv,
                        ("conv_channels", "conv_kernel_max", _DDR), _conv_ports),
    "ssm": UnitFormula("ssm", ("1", "P", "P*N", "ports*B*log2 B"), _ssm,
                       ("ssm_headdim_lanes", "ssm_dstate_lanes", _DDR), _ssm_ports),
    "vec": UnitFormula("vec", ("1", "L", "L*S", "ports*B*log2 B"), _vec, ("vec_lanes", "vec_stages", _DDR),
                       _vec_ports),
    "buffer": UnitFormula("buffer", ("1", "KiB", "B*log2 rows"), _buffer, ("buffer_bytes", _DDR)),
    "control": UnitFormula("control", ("1", "2*B*log2 B", "entries", "semaphores"), _control,
                           (_DDR, "dma_queue_depth", "semaphores", "buffer_bytes")),
}

# Small configurations (overrides of `small`) synthesized per unit, each whole (every one passes its unit's
# own check).  LIN's RTL sees lin_groups * lin_mac_trees only (the same Verilog for 2 x 2 as for 1 x 4): the
# configurations vary lin_mac_trees, whose 4-byte results fill one buffer word at most.
# SSM needs 4 P and 4 N bytes in a buffer word (hardware.ssm_unit.check); VEC at most 16 lanes, 1 or 4 micro-op
# stages (S).
_G16, _G32, _G64 = 4.0, 8.0, 16.0
CONFIGS: dict[str, list[dict]] = {
    "lin": [
        {"lin_groups": 1, "lin_mac_trees": 1, "lin_mac_tree_width": 2, "hadamard_max_block": 8},
        {"lin_groups": 1, "lin_mac_trees": 2, "lin_mac_tree_width": 4, "hadamard_max_block": 8},
        {"lin_groups": 1, "lin_mac_trees": 4, "lin_mac_tree_width": 4, "hadamard_max_block": 16},
        {"lin_groups": 1, "lin_mac_trees": 2, "lin_mac_tree_width": 2, "hadamard_max_block": 32},
        {"lin_groups": 1, "lin_mac_trees": 8, "lin_mac_tree_width": 2, "hadamard_max_block": 8, _DDR: _G32},
        {"lin_groups": 1, "lin_mac_trees": 4, "lin_mac_tree_width": 8, "hadamard_max_block": 8},
        {"lin_groups": 1, "lin_mac_trees": 2, "lin_mac_tree_width": 8, "hadamard_max_block": 16},
        {"lin_groups": 1, "lin_mac_trees": 8, "lin_mac_tree_width": 4, "hadamard_max_block": 16, _DDR: _G32},
        {"lin_groups": 1, "lin_mac_trees": 1, "lin_mac_tree_width": 4, "hadamard_max_block": 8, _DDR: _G32},
        {"lin_groups": 1, "lin_mac_trees": 2, "lin_mac_tree_width": 4, "hadamard_max_block": 32, _DDR: _G32},
        {"lin_groups": 1, "lin_mac_trees": 16, "lin_mac_tree_width": 2, "hadamard_max_block": 8, _DDR: _G64},
        {"lin_groups": 1, "lin_mac_trees": 4, "lin_mac_tree_width": 2, "hadamard_max_block": 16, _DDR: _G64},
        {"lin_groups": 1, "lin_mac_trees": 8, "lin_mac_tree_width": 8, "hadamard_max_block": 8, _DDR: _G32},
        {"lin_groups": 1, "lin_mac_trees": 1, "lin_mac_tree_width": 8, "hadamard_max_block": 32},
    ],
    "conv": [
        {"conv_channels": 1, "conv_kernel_max": 2},
        {"conv_channels": 4, "conv_kernel_max": 4},
        {"conv_channels": 2, "conv_kernel_max": 3},
        {"conv_channels": 4, "conv_kernel_max": 2},
        {"conv_channels": 8, "conv_kernel_max": 3, _DDR: _G32},
        {"conv_channels": 2, "conv_kernel_max": 4},
        {"conv_channels": 8, "conv_kernel_max": 2, _DDR: _G32},
        {"conv_channels": 1, "conv_kernel_max": 4, _DDR: _G32},
        {"conv_channels": 16, "conv_kernel_max": 2, _DDR: _G64},
        {"conv_channels": 4, "conv_kernel_max": 3, _DDR: _G64},
    ],
    "ssm": [
        {"ssm_headdim_lanes": 1, "ssm_dstate_lanes": 1},
        {"ssm_headdim_lanes": 2, "ssm_dstate_lanes": 2},
        {"ssm_headdim_lanes": 4, "ssm_dstate_lanes": 4},
        {"ssm_headdim_lanes": 1, "ssm_dstate_lanes": 4},
        {"ssm_headdim_lanes": 4, "ssm_dstate_lanes": 1},
        {"ssm_headdim_lanes": 2, "ssm_dstate_lanes": 4},
        {"ssm_headdim_lanes": 4, "ssm_dstate_lanes": 2},
        {"ssm_headdim_lanes": 2, "ssm_dstate_lanes": 1, _DDR: _G32},
        {"ssm_headdim_lanes": 8, "ssm_dstate_lanes": 2, _DDR: _G32},
        {"ssm_headdim_lanes": 2, "ssm_dstate_lanes": 8, _DDR: _G32},
    ],
    "vec": [
        {"vec_lanes": 1},
        {"vec_lanes": 2},
        {"vec_lanes": 1, "vec_stages": 4},
        {"vec_lanes": 2, _DDR: _G32},
        {"vec_lanes": 2, "vec_stages": 4},
    ],
    "buffer": [
        {"buffer_bytes": 16 * 1024},
        {"buffer_bytes": 64 * 1024},
        {"buffer_bytes": 32 * 1024, _DDR: _G32},
        {"buffer_bytes": 128 * 1024, _DDR: _G32},
        {"buffer_bytes": 32 * 1024},
        {"buffer_bytes": 64 * 1024, _DDR: _G32},
    ],
    "control": [
        {},
        {"dma_queue_depth": 8, "buffer_bytes": 16 * 1024},
        {"semaphores": 16, "dma_queue_depth": 2},
        {_DDR: _G32, "buffer_bytes": 256 * 1024},
        {_DDR: _G32, "dma_queue_depth": 8, "semaphores": 16},
    ],
}


def config_target(overrides: dict) -> Target:
    return dataclasses.replace(PRESETS["small"], name="fit", **overrides)


def nnls(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """argmin |x c - y| over c >= 0, exactly: the least-squares solution on each subset of the columns (a unit
    has at most a handful), the best of those that are nonnegative (the optimum is one of them)."""
    n = x.shape[1]
    best, best_r = np.zeros(n), float(y @ y)
    for k in range(1, n + 1):
        for cols in itertools.combinations(range(n), k):
            sol, *_ = np.linalg.lstsq(x[:, cols], y, rcond=None)
            if (sol < 0).any():
                continue
            c = np.zeros(n)
            c[list(cols)] = sol
            r = float(((x @ c - y) ** 2).sum())
            if r < best_r * (1 - 1e-12):
                best, best_r = c, r
    return best


def fit(formula: UnitFormula, rows: list[dict]) -> dict[str, list[float]]:
    """Per resource, each term's nonnegative cost over `rows` ({"config", "counts"}): least squares on the
    relative error (each row weighted by 1 / its count; by 1 where the count is 0)."""
    x = np.array([formula.features(config_target(r["config"])) for r in rows], dtype=float)
    coef = {}
    for res in MODELED:
        y = np.array([r["counts"][res] for r in rows], dtype=float)
        w = 1.0 / np.maximum(y, 1.0)
        coef[res] = [float(v) for v in nnls(x * w[:, None], y * w)]
    return coef


def predict_unit(unit: str, target: Target, coef: dict[str, list[float]]) -> dict[str, float]:
    f = np.array(FORMULAS[unit].features(target), dtype=float)
    return {res: float(f @ np.array(c)) for res, c in coef.items()}


def load(path: Path = DATA_FILE) -> dict:
    return json.loads(path.read_text())


def predict(target: Target, data: dict | None = None) -> dict[str, dict[str, float]]:
    """Per unit with a fit (and "total") the model's estimate for `target`: {unit: {resource: count}}."""
    data = data or load()
    out = {unit: predict_unit(unit, target, d["coef"]) for unit, d in data["units"].items()}
    out["total"] = {res: sum(out[u][res] for u in data["units"]) for res in MODELED}
    return out


def held_out(unit: str, data: dict) -> list[dict[str, float]]:
    """Leave-one-out: per synthesized configuration, each resource as predicted by the formula fitted to the
    unit's other configurations."""
    rows = data["units"][unit]["rows"]
    return [predict_unit(unit, config_target(r["config"]), fit(FORMULAS[unit], rows[:i] + rows[i + 1:]))
            for i, r in enumerate(rows)]


def errors(unit: str, data: dict) -> dict[str, dict[str, float]]:
    """Per resource, the median and worst relative error |model - synth| / synth of the leave-one-out
    predictions (for a synthesized count of 0 the absolute difference), and the worst absolute difference."""
    rows = data["units"][unit]["rows"]
    preds = held_out(unit, data)
    out = {}
    for res in MODELED:
        rel, ab = [], []
        for r, pred in zip(rows, preds):
            got, want = pred[res], r["counts"][res]
            ab.append(abs(got - want))
            rel.append(abs(got - want) / want if want else abs(got - want))
        out[res] = {"median": float(np.median(rel)), "worst": float(max(rel)), "worst_abs": float(max(ab)),
                    "zero": all(r["counts"][res] == 0 for r in rows)}
    return out


def generate(units: list[str], path: Path = DATA_FILE, log=print) -> dict:
    """Synthesize every configuration of `units` (cached ones are not rerun), fit, write `path` after each unit."""
    from fastmamba.hardware.synth import plan, synth_unit, yosys_version
    from fastmamba.isa.fileio import write_atomic

    data = load(path) if path.exists() else {"units": {}}
    for unit in units:
        formula = FORMULAS[unit]
        rows: list[dict] = []
        for cfg in CONFIGS[unit]:
            target = config_target(cfg)
            unit_plan = plan(target, unit)
            if unit_plan.composed:  # datapaths only, pieces, a rounded beat: not the unit the formula describes
                raise ValueError(f"{unit} {cfg}: would not be synthesized whole ({unit_plan.note})")
            rep = synth_unit(target, unit)
            seconds = round(sum(p["yosys_s"] for p in rep.parts), 1)
            rows.append({"config": cfg, "params": {k: getattr(target, k) for k in formula.params},
                         "counts": rep.counts, "yosys": yosys_version(), "seconds": seconds})
            log(f"{unit} {json.dumps(cfg)}: " + ", ".join(f"{k} {v}" for k, v in rep.counts.items() if v)
                + f" (yosys {seconds:.0f} s{', cached' if all(p['cached'] for p in rep.parts) else ''})")
        data["units"][unit] = {"features": list(formula.names), "params": list(formula.params), "rows": rows,
                               "coef": fit(formula, rows)}
        data["note"] = ("written by `python -m fastmamba.hardware.resource_model`; counts from hardware.synth "
                        "(seconds: yosys' own time when the configuration was synthesized)")
        write_atomic(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
    return data


def refit(path: Path = DATA_FILE) -> dict:
    """Fit every unit of `path` again to its stored rows (after a change of a formula's terms), write `path`."""
    from fastmamba.isa.fileio import write_atomic

    data = load(path)
    for unit, d in data["units"].items():
        formula = FORMULAS[unit]
        d.update(features=list(formula.names), params=list(formula.params), coef=fit(formula, d["rows"]))
    write_atomic(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
    return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fastmamba.hardware.resource_model",
                                 description="synthesize the fit configurations and refit the resource model")
    ap.add_argument("--unit", action="append", choices=sorted(FORMULAS), help="only this unit (repeatable)")
    ap.add_argument("--refit", action="store_true", help="only fit the stored rows again (no synthesis)")
    args = ap.parse_args(argv)
    if args.refit:
        refit()
    else:
        generate(args.unit or list(FORMULAS), log=lambda s: print(s, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
