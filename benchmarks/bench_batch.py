"""Batched decode benchmark: aggregate tokens/s of the `decode_batch` step against its bound, B = 1, 2, 4, 8, 16.

    .venv/bin/python benchmarks/bench_batch.py [--shape 2.7b] [--batches 1,2,4,8,16] [--json] [--bounds-only]

For each B, the shape (random weights, benchmarks/shapes.py) compiled as
`fastmamba compile --batch B` compiles its batched step (the prefill graph at
length B with every row's logits, quantized with ranges measured on a
one-layer model of the same widths, lowered by compiler/backend/lower_batch.py),
alone and timing only (the constant image is not packed: timing does not
depend on the data, as bench_backend.py --zero-image), run once on the
simulator from zero states.  Printed per B: the step's simulated cycles, the
aggregate tokens/s at the target's clock (B tokens per step), the batched
bound and its terms, the ratio, and the paper's one-sequence 5.68 tokens/s.

The batched bound of one step (docs/ARCHITECTURE.md §9 extended to B rows):
DDR = (the layers' and the head's int8 weights, read once for all B
+ B x the recurrent states read and written back) / bytes per cycle, against
the compute terms of B rows (LIN, SSM, CONV of compiler/backend/roofline.py at
B tokens); bound = the largest; bound tokens/s = B x clock / bound.
--bounds-only prints the bound's columns without compiling (seconds, any shape).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from shapes import PAPER_DECODE_TOKENS_PER_S, SHAPES, ranges_by_calibration  # noqa: E402

TARGET_FRACTION = 0.95  # issue 15: at B = 8, at least this share of the batched bound


def batched_module(config, batch: int, ranges: dict, target: str):
    """The quantized @decode_batch of `config` at `batch` slots, as `fastmamba compile --batch` builds it."""
    from xdsl.dialects import func
    from xdsl.dialects.builtin import StringAttr

    from fastmamba.compiler.backend.lower_batch import BATCH_PROGRAM
    from fastmamba.compiler.compile import around_calibration
    from fastmamba.compiler.frontend.importer import import_model
    from fastmamba.compiler.pipeline import run_pipeline
    from fastmamba.passes.calibrate import apply_ranges

    module = import_model(config, "prefill", batch, all_logits=True).module
    fn = next(op for op in module.body.block.ops if isinstance(op, func.FuncOp))
    fn.sym_name = StringAttr(BATCH_PROGRAM)
    before, after = around_calibration(target)
    run_pipeline(module, before)
    apply_ranges(module, ranges, function=BATCH_PROGRAM)
    run_pipeline(module, after)
    return module


def bound(config, batch: int, target) -> dict:
    """The batched step's bound terms in cycles (module docstring)."""
    from fastmamba.compiler.backend.roofline import roofline

    roof = roofline(config, batch, target)
    per = target.dma_bytes_per_cycle
    ddr = (roof.weight_bytes + roof.head_bytes + batch * roof.state_bytes) / per
    head_lin = batch * roof.head_lin  # the head over B rows
    terms = {"ddr": ddr, "lin": roof.lin + head_lin, "ssm": roof.ssm, "conv": roof.conv}
    return {"terms": terms, "bound": max(terms.values()), "limiter": max(terms, key=lambda k: terms[k]),
            "weights_ddr": (roof.weight_bytes + roof.head_bytes) / per, "states_ddr": batch * roof.state_bytes / per}


def measure(config, batch: int, ranges: dict, target, target_name: str) -> dict:
    from fastmamba.compiler.backend.emit import emit_binary
    from fastmamba.compiler.backend.lower_batch import BATCH_PROGRAM
    from fastmamba.compiler.backend.memory import IMAGE_ATTR
    from fastmamba.compiler.compile import CompileOptions, backend_stages
    from fastmamba.compiler.dialects.accel import ProgramOp
    from fastmamba.compiler.pipeline import run_pipeline
    from fastmamba.simulator.runtime import SimulatorBackend

    t = time.perf_counter()
    module = batched_module(config, batch, ranges, target_name)
    for spec in backend_stages(CompileOptions(seq_len=batch)):
        run_pipeline(module, spec)
    prog = next(p for p in module.walk() if isinstance(p, ProgramOp))
    binary = emit_binary(module, target, bytes(int(prog.attributes[IMAGE_ATTR].value.data)))
    compile_s = time.perf_counter() - t
    del module
    backend = SimulatorBackend(target)
    backend.load(binary)
    tokens = np.random.default_rng(1).integers(0, config.vocab_size, batch).astype(np.int32)
    t = time.perf_counter()
    stats = backend.run(BATCH_PROGRAM, {"tokens": tokens}).stats
    return {"cycles": stats.cycles, "compile_s": round(compile_s, 1), "simulate_s": round(time.perf_counter() - t, 1)}


def main() -> None:
    from fastmamba.isa.target import load_target

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="2.7b", choices=sorted(SHAPES))
    parser.add_argument("--batches", default="1,2,4,8,16")
    parser.add_argument("--target", default="vc709")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--bounds-only", action="store_true", help="the bounds alone, nothing compiled")
    args = parser.parse_args()
    target = load_target(args.target)
    config = SHAPES[args.shape]
    ranges = None if args.bounds_only else ranges_by_calibration(config)
    if not args.json:
        print(f"{args.shape} shape, batched decode step on {target.name} at {target.clock_hz / 1e6:g} MHz, "
              f"{target.dma_bytes_per_cycle * target.clock_hz / 1e9:g} GB/s; paper (B = 1, on the board): "
              f"{PAPER_DECODE_TOKENS_PER_S} tokens/s")
        print(f"{'B':>3} {'cycles':>12} {'tokens/s':>9} {'bound cyc':>12} {'bound tok/s':>11} {'ratio':>6}  "
              f"limiter  weights DDR  states DDR  compile s", flush=True)
    for batch in [int(b) for b in args.batches.split(",")]:
        b = bound(config, batch, target)
        if ranges is None:
            row_b = {"shape": args.shape, "B": batch, "bound_cycles": round(b["bound"]),
                     "bound_tokens_per_s": round(batch * target.clock_hz / b["bound"], 3), "limiter": b["limiter"],
                     "weights_ddr": round(b["weights_ddr"]), "states_ddr": round(b["states_ddr"])}
            print(json.dumps(row_b) if args.json else
                  f"{batch:>3} {'-':>12} {'-':>9} {b['bound']:>12,.0f} {row_b['bound_tokens_per_s']:>11.2f} "
                  f"{'-':>6}  {b['limiter']:<7}  {b['weights_ddr']:>11,.0f} {b['states_ddr']:>11,.0f}", flush=True)
            continue
        run = measure(config, batch, ranges, target, args.target)
        tps = batch * target.clock_hz / run["cycles"]
        bound_tps = batch * target.clock_hz / b["bound"]
        row = {"shape": args.shape, "B": batch, "cycles": run["cycles"], "tokens_per_s": round(tps, 3),
               "bound_cycles": round(b["bound"]), "bound_tokens_per_s": round(bound_tps, 3),
               "ratio": round(tps / bound_tps, 4), "limiter": b["limiter"],
               "terms": {k: round(v) for k, v in b["terms"].items()}, "weights_ddr": round(b["weights_ddr"]),
               "states_ddr": round(b["states_ddr"]), "paper_tokens_per_s": PAPER_DECODE_TOKENS_PER_S,
               "target_ratio": TARGET_FRACTION if batch == 8 else None, "compile_s": run["compile_s"],
               "simulate_s": run["simulate_s"]}
        print(json.dumps(row) if args.json else
              f"{batch:>3} {run['cycles']:>12,} {tps:>9.2f} {b['bound']:>12,.0f} {bound_tps:>11.2f} "
              f"{row['ratio']:>6.3f}  {b['limiter']:<7}  {b['weights_ddr']:>11,.0f} {b['states_ddr']:>11,.0f}  "
              f"{run['compile_s']:>9}", flush=True)


if __name__ == "__main__":
    main()
