"""One trial of `fastmamba explore`: a point's Target, the model compiled for it timing-only, its cycles simulated.

Place in the flow: what each Ray Tune trial runs (compiler/explore/sweep.py), in whatever process or machine Ray
puts it.  A trial builds the point's Target over the space's base preset (a bad value is a failed trial with the
Target's own message), checks the model fits it (compile.check_config_fits), compiles the model as
`fastmamba compile` does (the same pipeline; the target a JSON file in a temporary folder, since set-target names
a file) but timing-only: calibration ranges measured once for the whole sweep (explore/shapes.py), the constant
image left zero (no weights are packed: timing does not depend on the data), and simulates @prefill at the
sweep's length and @decode (one token) with the simulator's timing alone (TIMING_ONLY: each unit's footprint,
occupancy and latency, its execution skipped; a test checks the cycles equal a full simulation's).  It adds the
resource model's estimate (hardware/resource_model.py).  Any error is the trial's reason, never the sweep's end.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from fastmamba.isa.errors import FastmambaError

__all__ = ["Workload", "evaluate", "trial_key", "TIMING_ONLY", "compile_timing_only", "simulate_cycles"]

REFERENCE = "vc709"  # the preset every sweep also evaluates, to compare against


@dataclass(frozen=True)
class Workload:
    """What every trial compiles: `model` (a shape of explore/shapes.py or a checkpoint directory), its config
    (as a dict), the prefill length and the calibration ranges (measured once by the sweep)."""

    model: str
    config: dict
    seq_len: int
    ranges: dict

    def mamba_config(self):
        from fastmamba.compiler.config import Mamba2Config

        return Mamba2Config(**self.config)


def trial_key(target, workload: Workload) -> str:
    """A trial's identity: its target's digest, the model's config and the length (what its cycles depend on)."""
    text = json.dumps({"target": target.digest().hex(), "config": workload.config, "seq_len": workload.seq_len},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class _TimingOnly:
    """A unit's semantics with its execution skipped: the footprint (regions, occupancy, latency) is the unit's."""

    def __init__(self, semantics):
        self.semantics = semantics

    def footprint(self, instr, state, target):
        return self.semantics.footprint(instr, state, target)

    def execute(self, instr, state, target) -> None:
        return None


def _timing_only():
    from fastmamba.simulator.semantics import SEMANTICS

    return MappingProxyType({op: _TimingOnly(sem) for op, sem in SEMANTICS.items()})


TIMING_ONLY: Any = None  # built on first use (simulator.semantics loads numpy and the units)

_imported: dict[tuple, Any] = {}  # (config, seq_len) -> the imported module, per process (trials clone it)


def compile_timing_only(workload: Workload, target, target_file: str):
    """The binary of `workload` for `target` (`target_file` holds it, for set-target), its image left zero."""
    from fastmamba.compiler.backend.emit import emit_binary
    from fastmamba.compiler.backend.memory import IMAGE_ATTR
    from fastmamba.compiler.compile import CompileOptions, backend_stages
    from fastmamba.compiler.dialects.accel import ProgramOp
    from fastmamba.compiler.explore.shapes import imported_module, quantize
    from fastmamba.compiler.pipeline import run_pipeline

    key = (json.dumps(workload.config, sort_keys=True), workload.seq_len)
    if key not in _imported:
        _imported.clear()
        _imported[key] = imported_module(workload.mamba_config(), workload.seq_len)
    module = quantize(_imported[key].clone(), workload.ranges, target_file)
    for spec in backend_stages(CompileOptions(seq_len=workload.seq_len)):
        run_pipeline(module, spec)
    prog = next(p for p in module.walk() if isinstance(p, ProgramOp))
    size = int(prog.attributes[IMAGE_ATTR].value.data)  # type: ignore[attr-defined]  # (an IntegerAttr)
    return emit_binary(module, target, bytes(size))


def simulate_cycles(binary, target, program: str, tokens: int, semantics=None) -> int:
    """Cycles of `program` of `binary` on the simulator from zero states, `tokens` token ids of 0 as input."""
    import numpy as np

    from fastmamba.simulator.runtime import SimulatorBackend

    backend = SimulatorBackend(target, semantics)
    backend.load(binary)
    return int(backend.run(program, {"tokens": np.zeros(tokens, np.int32)}).stats.cycles)


def _measure(workload: Workload, target) -> dict:
    from fastmamba.compiler.compile import check_config_fits

    global TIMING_ONLY
    check_config_fits(workload.mamba_config(), target, workload.seq_len)
    t, cpu = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory(prefix="fastmamba-explore-") as tmp:
        target_file = Path(tmp) / "target.json"
        target_file.write_text(json.dumps(target.to_dict()))
        binary = compile_timing_only(workload, target, str(target_file))
    compile_s = time.perf_counter() - t
    TIMING_ONLY = TIMING_ONLY or _timing_only()
    t = time.perf_counter()
    prefill = simulate_cycles(binary, target, "prefill", workload.seq_len, TIMING_ONLY)
    decode = simulate_cycles(binary, target, "decode", 1, TIMING_ONLY)
    return {"prefill_cycles": prefill, "decode_cycles": decode, "compile_s": round(compile_s, 2),
            "simulate_s": round(time.perf_counter() - t, 2), "cpu_s": round(time.process_time() - cpu, 2)}


def evaluate(point: dict, space, workload: Workload, reference: bool = False, done: Mapping | None = None) -> dict:
    """The record of one trial (never raises for a bad point): the point's values, status ("ok", "failed"; with
    `reason`; "error" for a bug), cycles and tokens/s of prefill and decode, the resource estimate's totals (and
    per unit).  `done`: records of finished trials by key; one found there is returned (marked cached), not run."""
    from fastmamba.compiler.explore.space import resources
    from fastmamba.isa.target import PRESETS

    record: dict[str, Any] = {**point, "reference": REFERENCE if reference else "", "status": "failed",
                              "reason": "", "key": ""}
    try:
        target = PRESETS[REFERENCE] if reference else space.target(point)
        record["key"] = trial_key(target, workload)
        if done and record["key"] in done:  # its cycles; the estimate of the resource model as it is now
            cached = {**done[record["key"]], **point, "reference": record["reference"], "cached": True}
            return _with_estimate(cached, resources(target)) if cached["status"] == "ok" else cached
        estimate = resources(target)
        record.update(estimate["total"])  # also in a failed trial's record
        record.update(_measure(workload, target))
    except FastmambaError as exc:  # a bad value, a model that does not fit, a tile the buffer cannot hold
        record["reason"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return record
    except Exception as exc:  # noqa: BLE001 - a bug, but one trial's: recorded, the sweep goes on
        record["status"] = "error"
        record["reason"] = f"internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return record
    clock = target.clock_hz
    record.update(status="ok", prefill_tokens_per_s=workload.seq_len * clock / record["prefill_cycles"],
                  decode_tokens_per_s=clock / record["decode_cycles"])
    return _with_estimate(record, estimate)


def _with_estimate(record: dict, estimate: dict) -> dict:
    """`record` (a finished trial's) with the resource estimate's totals and units, and the speeds per resource."""
    record.update(estimate["total"])
    record["units"] = {u: v for u, v in estimate.items() if u != "total"}
    record["prefill_tokens_per_s_per_dsp"] = record["prefill_tokens_per_s"] / max(record["dsp"], 1.0)
    record["decode_tokens_per_s_per_lut"] = record["decode_tokens_per_s"] / max(record["lut"], 1.0)
    return record
