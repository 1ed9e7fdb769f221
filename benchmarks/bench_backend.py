"""Backend benchmark: simulated cycles of compiled programs against the roofline bound, and compile costs.

    .venv/bin/python benchmarks/bench_backend.py prefill [--shape 130m] [--lengths 64,96,116,128,168]
                                                         [--no-head-prefetch]
    .venv/bin/python benchmarks/bench_backend.py decode [--shape 2.7b]

prefill: for each length L, the 130M shape (random weights) compiled as
`fastmamba compile` does (ranges measured on a one-layer model of the same
widths, every layer given them), run on the simulator from zero states;
printed: simulated cycles, every term of the roofline bound
(compiler/backend/roofline.py, docs/ARCHITECTURE.md): the layers' LIN, SSM,
CONV and DDR cycles, the head's LIN cycles and its weight stream beyond the
on-chip buffer (38.6 MB of head weights for the 130M shape follow the last
layer), the bound = max(layer terms) + max(head terms), the ratio cycles /
bound (target <= 1.02, issue 15), the time of each compile stage.  The head's
first tiles load while the last layer runs (lower-to-accel's head_prefetch);
--no-head-prefetch compiles without it, the whole head streamed after the
layers.

decode: the one-token program of the 2.7B shape; printed: the terms of the
decode bound (DDR cycles of the layers' weights, the head's weights and the
recurrent states read and written back), tokens/s at the target clock against
the bound's tokens/s, beside the paper's 5.68 tokens/s on the board; also
the peak resident memory of the compile (ru_maxrss).

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

from shapes import (PAPER_DECODE_TOKENS_PER_S, SHAPES, RandomWeights, quantized_module,  # noqa: E402
                    ranges_by_calibration)



def compile_and_run(config, length: int, ranges: dict, target, zero_image: bool, target_spec: str = "vc709",
                    head_prefetch: bool = True) -> dict:
    from fastmamba.compiler.backend.constants import build_image
    from fastmamba.compiler.backend.emit import emit_binary
    from fastmamba.compiler.compile import CompileOptions, backend_stages
    from fastmamba.compiler.dialects.accel import AccelInstructionOp
    from fastmamba.compiler.pipeline import run_pipeline
    from fastmamba.simulator.runtime import SimulatorBackend

    times = {}
    t = time.perf_counter()
    module = quantized_module(config, length, ranges, decode=False, target=target_spec)
    times["frontend+quant"] = time.perf_counter() - t
    for spec in backend_stages(CompileOptions(seq_len=length)):  # the target is the module's
        if not head_prefetch and spec.startswith("lower-to-accel"):
            spec = "lower-to-accel{head_prefetch=false" + (" " + spec.partition("{")[2] if "{" in spec else "}")
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
    early = sum(1 for op in module.walk()  # the head's tiles loaded during the last layer: their first DMAs
                if isinstance(op, AccelInstructionOp) and (op.debug_text or "").endswith(" weights part 0"))
    del module
    backend = SimulatorBackend(target)
    backend.load(binary)
    prog = binary.program("prefill")
    inputs = {"tokens": np.random.default_rng(1).integers(0, config.vocab_size, length).astype(np.int32)}
    t = time.perf_counter()
    result = backend.run("prefill", inputs)
    times["simulate"] = time.perf_counter() - t
    ops = sum(len(b.ops) for b in prog.bundles)
    return {"stats": result.stats, "times": times, "bundles": len(prog.bundles), "operations": ops,
            "head_tiles_early": early}


def _utilization(stats) -> dict:
    return {unit: round(stats.utilization(unit), 3) for unit in stats.busy}


def prefill(args) -> None:
    from fastmamba.compiler.backend.roofline import roofline
    from fastmamba.isa.target import load_target

    target = load_target(args.target)
    config = SHAPES[args.shape]
    ranges = ranges_by_calibration(config)
    for length in [int(x) for x in args.lengths.split(",")]:
        run = compile_and_run(config, length, ranges, target, args.zero_image, args.target, not args.no_head_prefetch)
        roof = roofline(config, length, target)
        cycles = run["stats"].cycles
        row = {"L": length, "cycles": cycles, "bound": round(roof.prefill), "ratio": round(cycles / roof.prefill, 4),
               "terms": _terms(roof, ("lin", "ssm", "conv", "ddr", "head_lin", "head_ddr")), "limiter": roof.limiter,
               "ms_at_clock": round(cycles / target.clock_hz * 1e3, 3), "bundles": run["bundles"],
               "operations": run["operations"], "head_tiles_early": run["head_tiles_early"],
               "utilization": _utilization(run["stats"]),
               "compile_s": {k: round(v, 2) for k, v in run["times"].items()}}
        print(json.dumps(row) if args.json else
              f"L={length:4d}  cycles {cycles:>10,}  bound {roof.prefill:>12,.0f} = max(LIN {roof.lin:,.0f}, "
              f"SSM {roof.ssm:,.0f}, CONV {roof.conv:,.0f}, DDR {roof.ddr:,.0f}) + max(head LIN {roof.head_lin:,.0f}, "
              f"head DDR beyond the buffer {roof.head_ddr:,.0f})  ratio {row['ratio']:.3f}  {row['ms_at_clock']} ms  "
              f"head tiles loaded early {row['head_tiles_early']}  "
              f"ops {row['operations']}  util {row['utilization']}  stages {row['compile_s']}", flush=True)


def _terms(roof, names) -> dict:
    return {name: round(getattr(roof, name)) for name in names}


def decode(args) -> None:
    from fastmamba.compiler.backend.roofline import roofline
    from fastmamba.isa.target import load_target

    target = load_target(args.target)
    config = SHAPES[args.shape]
    ranges = ranges_by_calibration(config)
    run = compile_and_run(config, 1, ranges, target, args.zero_image, args.target)
    roof = roofline(config, 1, target)
    cycles = run["stats"].cycles
    tps = target.clock_hz / cycles
    bound_tps = target.clock_hz / roof.decode
    per = target.dma_bytes_per_cycle
    terms = {"weights_ddr": round(roof.ddr), "head_ddr": round(roof.head_bytes / per),
             "state_ddr": round(roof.state_ddr)}
    row = {"shape": args.shape, "cycles": cycles, "bound": round(roof.decode), "terms": terms,
           "tokens_per_s": round(tps, 3), "bound_tokens_per_s": round(bound_tps, 3),
           "fraction_of_bound": round(tps / bound_tps, 4), "paper_tokens_per_s": PAPER_DECODE_TOKENS_PER_S,
           "weight_bytes": roof.weight_bytes, "head_bytes": roof.head_bytes, "state_bytes": roof.state_bytes,
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
    p.add_argument("--no-head-prefetch", action="store_true",
                   help="lower-to-accel{head_prefetch=false}: the whole head streamed after the last layer")
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
