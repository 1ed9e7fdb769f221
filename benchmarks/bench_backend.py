"""Backend benchmark: simulated cycles of compiled programs against the roofline bound, and compile costs.

    .venv/bin/python benchmarks/bench_backend.py prefill [--shape 130m] [--lengths 64,96,116,128,168]
    .venv/bin/python benchmarks/bench_backend.py decode [--shape 2.7b]

prefill: for each length L, the 130M shape (random weights) compiled as
`fastmamba compile` does (ranges measured on a one-layer model of the same
widths, every layer given them), run on the simulator from zero states;
printed: simulated cycles, the roofline bound (compiler/backend/roofline.py,
DESIGN §9) and their ratio (target <= 1.15), the time of each compile stage.
The head's weights (d_model x vocab int8: 38.6 MB for the 130M shape) can only
be used once the last layer is done and do not fit on chip, so their DDR time
(`head_ddr`, 643,584 cycles for 130M) follows the layers: a serial floor the
bound does not see.  `ratio_without_head_stream` = (cycles - head_ddr) /
(bound - the head's LIN cycles) judges the rest of the program.

decode: the one-token program of the 2.7B shape; tokens/s at the target clock
against the DDR bound (weights only, DESIGN §9) and against the bound of all
the DDR traffic a step needs (weights plus reading and writing the recurrent
states), beside the paper's 5.68 tokens/s on the board.  Also the peak
resident memory of the compile (ru_maxrss).

Timing does not depend on the data, but the run is functional too: the
constant image holds the packed random weights (--zero-image skips packing).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from shapes import SHAPES, RandomWeights, quantized_module, ranges_by_calibration  # noqa: E402

PAPER_DECODE_TOKENS_PER_S = 5.68  # FastMamba on the VC709, Mamba2-2.7B (arXiv 2505.18975)


def compile_and_run(config, length: int, ranges: dict, target, zero_image: bool) -> dict:
    from fastmamba.compiler.backend.constants import build_image
    from fastmamba.compiler.backend.emit import emit_binary
    from fastmamba.compiler.compile import CompileOptions, backend_stages
    from fastmamba.compiler.pipeline import run_pipeline
    from fastmamba.simulator.runtime import SimulatorBackend

    times = {}
    t = time.perf_counter()
    module = quantized_module(config, length, ranges, decode=False)
    times["frontend+quant"] = time.perf_counter() - t
    for spec in backend_stages(CompileOptions(seq_len=length, target=target.name)):
        t = time.perf_counter()
        run_pipeline(module, spec)
        times[spec.split("{")[0]] = time.perf_counter() - t
    t = time.perf_counter()
    if zero_image:
        from fastmamba.compiler.backend.memory import IMAGE_ATTR
        from fastmamba.compiler.dialects.accel import ProgramOp

        prog = next(p for p in module.walk() if isinstance(p, ProgramOp))
        image = bytes(int(prog.attributes[IMAGE_ATTR].value.data))
    else:
        image = build_image(module, RandomWeights(config), target)
    binary = emit_binary(module, target, image)
    times["emit"] = time.perf_counter() - t
    del module
    backend = SimulatorBackend(target)
    backend.load(binary)
    prog = binary.program("prefill")
    inputs = {"tokens": np.random.default_rng(1).integers(0, config.vocab_size, length).astype(np.int32)}
    t = time.perf_counter()
    result = backend.run("prefill", inputs)
    times["simulate"] = time.perf_counter() - t
    ops = sum(len(b.ops) for b in prog.bundles)
    return {"stats": result.stats, "times": times, "bundles": len(prog.bundles), "operations": ops}


def _utilization(stats) -> dict:
    return {unit: round(stats.utilization(unit), 3) for unit in stats.busy}


def prefill(args) -> None:
    from fastmamba.compiler.backend.roofline import roofline
    from fastmamba.isa.target import load_target

    target = load_target(args.target)
    config = SHAPES[args.shape]
    ranges = ranges_by_calibration(config)
    rows = []
    for length in [int(x) for x in args.lengths.split(",")]:
        run = compile_and_run(config, length, ranges, target, args.zero_image)
        roof = roofline(config, length, target)
        cycles = run["stats"].cycles
        head_ddr = config.d_model * config.vocab_size / target.dma_bytes_per_cycle
        head_lin = config.d_model * config.vocab_size / target.lin_macs_per_cycle
        row = {"L": length, "cycles": cycles, "bound": roof.bound, "limiter": roof.limiter,
               "ratio": round(cycles / roof.bound, 4), "head_ddr": round(head_ddr),
               "ratio_without_head_stream": round((cycles - head_ddr) / (roof.bound - head_lin), 4),
               "ms_at_clock": round(cycles / target.clock_hz * 1e3, 3), "bundles": run["bundles"],
               "operations": run["operations"], "utilization": _utilization(run["stats"]),
               "compile_s": {k: round(v, 2) for k, v in run["times"].items()}}
        rows.append(row)
        print(json.dumps(row) if args.json else
              f"L={length:4d}  cycles {cycles:>10,}  bound {roof.bound:>12,.0f} ({roof.limiter})  ratio {row['ratio']:.3f}"
              f" (without the head's stream {row['ratio_without_head_stream']:.3f})  {row['ms_at_clock']} ms  ops {row['operations']}  "
              f"util {row['utilization']}  stages {row['compile_s']}", flush=True)


def decode(args) -> None:
    from fastmamba.compiler.backend.roofline import roofline
    from fastmamba.isa.target import load_target

    target = load_target(args.target)
    config = SHAPES[args.shape]
    ranges = ranges_by_calibration(config)
    run = compile_and_run(config, 1, ranges, target, args.zero_image)
    roof = roofline(config, 1, target)
    cycles = run["stats"].cycles
    tps = target.clock_hz / cycles
    weights_bound = target.clock_hz / roof.ddr
    traffic_bound = target.clock_hz / (roof.ddr + 2 * roof.state_bytes / target.dma_bytes_per_cycle)
    row = {"shape": args.shape, "cycles": cycles, "tokens_per_s": round(tps, 3),
           "ddr_bound_tokens_per_s": round(weights_bound, 3), "fraction_of_ddr_bound": round(tps / weights_bound, 4),
           "traffic_bound_tokens_per_s": round(traffic_bound, 3),
           "fraction_of_traffic_bound": round(tps / traffic_bound, 4), "paper_tokens_per_s": PAPER_DECODE_TOKENS_PER_S,
           "weight_bytes": roof.weight_bytes, "state_bytes_each_way": roof.state_bytes,
           "operations": run["operations"], "bundles": run["bundles"], "utilization": _utilization(run["stats"]),
           "compile_s": {k: round(v, 2) for k, v in run["times"].items()},
           "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}
    print(json.dumps(row, indent=None if args.json else 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("prefill")
    p.add_argument("--shape", default="130m", choices=sorted(SHAPES))
    p.add_argument("--lengths", default="64,96,116,128,168")
    d = sub.add_parser("decode")
    d.add_argument("--shape", default="2.7b", choices=sorted(SHAPES))
    for q in (p, d):
        q.add_argument("--target", default="vc709")
        q.add_argument("--zero-image", action="store_true", help="skip packing the weights (timing only)")
        q.add_argument("--json", action="store_true")
    args = parser.parse_args()
    (prefill if args.mode == "prefill" else decode)(args)


if __name__ == "__main__":
    main()
