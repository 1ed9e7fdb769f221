"""`fastmamba explore`: sweep target parameters on Ray Tune; cycles, resources, Pareto plots (compiler/explore/).

Place in the flow: the command-line face of compiler/explore/: checks every input (the space, the model or
shape, --seq-len, the output folder) before Ray or the compiler is loaded, then runs the sweep and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from fastmamba.isa.errors import InputError
from fastmamba.isa.fileio import check_writable_dir

HELP = "sweep target parameters on Ray Tune: cycles, resource estimates, Pareto plots"
DESCRIPTION = """\
Explore the accelerator's design space: each point of SPACE.toml (target
parameters over a base preset, constraints on the resource model's estimate;
docs/EXPLORE.md) is a Ray Tune trial that builds the Target, compiles the
model for it timing-only (no weights needed: calibration ranges measured once,
the constant image not packed) and simulates the prefill of --seq-len tokens
and one decode step, beside the resource model's LUT/FF/DSP/BRAM estimate
(pre-place-and-route; hardware/resource_model.py).  The vc709 preset is always
one more trial.  A point whose Target is invalid, or that the compiler cannot
fit, is a failed trial with its reason; the sweep goes on.

--model is a checkpoint directory or a shape of the paper's models (130m,
2.7b: random weights made on demand).  Searchers: grid (every point that meets
the constraints), random (--samples distinct points, seeded), bayes (Optuna's
TPE through Ray Tune's OptunaSearch, maximizing the space's objective;
--samples trials).  Ray runs locally on --workers CPUs (no dashboard, no
network), or joins a running cluster with --address.

DIR (-o, default explore-out) receives trials.jsonl (each trial as it
finishes), results.csv, results.json, results.parquet, pareto.png (tokens/s
against LUT and DSP, the Pareto fronts, the vc709 preset and the paper's figure
marked) and resources.png (per-unit resources).  Running again into the same
DIR resumes: finished trials are taken from trials.jsonl, not run again."""

SHAPE_NAMES = ("130m", "2.7b")  # compiler/explore/shapes.py's SHAPES (checked equal by tests/test_explore.py)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("explore", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", required=True, metavar="SPACE.toml", help="the parameters to sweep (docs/EXPLORE.md)")
    p.add_argument("--model", required=True, metavar="DIR|SHAPE",
                   help=f"a checkpoint directory, or a shape: {', '.join(SHAPE_NAMES)}")
    p.add_argument("--seq-len", type=int, required=True, metavar="L", help="prefill tokens of each trial")
    p.add_argument("--searcher", default="grid", choices=("grid", "random", "bayes"),
                   help="how points are chosen (default grid)")
    p.add_argument("--samples", type=int, metavar="N", help="random and bayes: trials to run (default 20)")
    p.add_argument("--workers", type=int, default=1, metavar="W", help="trials at once (default 1)")
    p.add_argument("--address", metavar="ADDR", help="join this Ray cluster instead of starting Ray locally")
    p.add_argument("--seed", type=int, default=0, help="random and bayes: the seed (default 0)")
    p.add_argument("-o", "--output", default="explore-out", metavar="DIR", help="results folder (default "
                   "explore-out); a folder with a previous sweep's results is resumed")
    p.set_defaults(run=run)


def _workload_config(model: str):
    """The config of `model` (a shape, or a checkpoint directory; its weight store too, None for a shape)."""
    from fastmamba.compiler.explore.shapes import SHAPES

    if model in SHAPES:
        return SHAPES[model], None
    path = Path(model)
    if not path.is_dir():
        raise InputError(f"--model {model}: neither a checkpoint directory nor a shape ({', '.join(SHAPES)})")
    from fastmamba.compiler.checkpoint import load_model

    return load_model(path)


def run(args: argparse.Namespace) -> int:
    from fastmamba.compiler.explore.space import load_space

    space = load_space(args.space)
    if args.seq_len < 1:
        raise InputError(f"--seq-len must be at least 1, got {args.seq_len}")
    if args.workers < 1:
        raise InputError(f"--workers must be at least 1, got {args.workers}")
    if args.samples is not None and (args.samples < 1 or args.searcher == "grid"):
        raise InputError("--samples takes a positive count, with --searcher random or bayes (grid runs every point)")
    if args.model not in SHAPE_NAMES and not Path(args.model).is_dir():
        raise InputError(f"--model {args.model}: neither a checkpoint directory nor a shape "
                         f"({', '.join(SHAPE_NAMES)})")
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise InputError(f"-o {out}: exists and is not a folder")
    check_writable_dir(out, "-o ")
    if args.searcher == "bayes":
        try:
            import optuna  # noqa: F401
        except ImportError:
            raise InputError("--searcher bayes needs optuna (pip install optuna)") from None
    from fastmamba.compiler.explore.sweep import SweepOptions, choose_points, run_sweep, write_results
    from fastmamba.compiler.explore.trial import Workload
    from fastmamba.compiler.progress import Progress, showing

    options = SweepOptions(args.searcher, args.samples, args.workers, args.address, args.seed)
    points, dropped = choose_points(space, options)
    config, store = _workload_config(args.model)
    out.mkdir(parents=True, exist_ok=True)
    progress = Progress.open(sys.stderr, "explore")
    started = time.perf_counter()
    with showing(progress):
        if progress is not None:
            progress.plan(["calibrate", "sweep", "plots"])
            progress.stage("calibrate")
        from fastmamba.compiler.explore.shapes import ranges_by_calibration
        from fastmamba.compiler.weights import NumpyWeights

        t = time.perf_counter()
        ranges = ranges_by_calibration(config, weights=None if store is None else NumpyWeights(store))
        calibrate_s = time.perf_counter() - t
        workload = Workload(args.model if store is None else str(Path(args.model).resolve()), config.to_dict(),
                            args.seq_len, ranges)
        if progress is not None:
            progress.stage("sweep")
        sweep = run_sweep(space, workload, out, options, points, progress)
        sweep.dropped.update(dropped)
        sweep.times["calibrate_s"] = calibrate_s
        if progress is not None:
            progress.stage("plots")
        meta = {"model": workload.model, "seq_len": args.seq_len, "searcher": args.searcher, "workers": args.workers,
                "address": args.address, "seed": args.seed, "space_file": str(Path(args.space).resolve())}
        written = write_results(sweep, space, out, meta)
        written += _plots(sweep.records, out, args, space)
    print(_summary(sweep.records, sweep.dropped, time.perf_counter() - started, sweep.times, written, space))
    return 0


def _plots(records: list[dict], out: Path, args, space) -> list[Path]:
    from fastmamba.compiler.explore.plots import front_records, pareto_plot, resource_plot
    from fastmamba.compiler.explore.shapes import SHAPES

    shape = args.model if args.model in SHAPES else None
    pareto_plot(records, out / "pareto.png", f"fastmamba explore: {Path(args.model).name} at L = {args.seq_len}, "
                f"{len(records)} trials over {space.base}", shape)
    written = [out / "pareto.png"]
    ref = next((r for r in records if r.get("reference") and r.get("status") == "ok"), None)
    if ref is not None:
        best = front_records([r for r in records if not r.get("reference")], "prefill_tokens_per_s_per_dsp", "dsp")
        other = max(best, key=lambda r: r["prefill_tokens_per_s_per_dsp"]) if best else None
        label = ("best prefill tokens/s per DSP: " + ", ".join(f"{k}={other[k]}" for k in space.parameters)) \
            if other else ""
        resource_plot(ref, other, out / "resources.png", label)
        written.append(out / "resources.png")
    return written


def _summary(records: list[dict], dropped: dict, wall: float, times: dict, written: list[Path], space) -> str:
    def point(r: dict) -> str:
        return "vc709 preset" if r.get("reference") else json.dumps({k: r[k] for k in space.parameters if k in r})

    ok = [r for r in records if r["status"] == "ok"]
    lines = [f"{len(records)} trials: {len(ok)} ok, {len(records) - len(ok)} failed, "
             f"{sum(bool(r.get('cached')) for r in records)} from a previous run; {len(dropped)} points dropped by "
             f"the constraints; {wall:.1f} s (sweep {times.get('sweep_s', 0):.1f} s, Ray start "
             f"{times.get('ray_start_s', 0):.1f} s, calibration {times.get('calibrate_s', 0):.1f} s)"]
    ref = next((r for r in ok if r.get("reference")), None)
    for metric in ("prefill_tokens_per_s_per_dsp", "decode_tokens_per_s_per_lut"):
        best = max((r for r in ok if not r.get("reference")), key=lambda r: r[metric], default=None)
        if best is None:
            continue
        versus = ""
        if ref is not None:
            versus = f" ({best[metric] / ref[metric]:.2f}x the vc709 preset's {ref[metric]:.4g})"
        lines.append(f"best {metric}: {best[metric]:.4g}{versus} at {point(best)}")
    for r in records:
        if r["status"] != "ok":
            lines.append(f"{r['status']}: {point(r)}: {r['reason']}")
            if len(lines) > 12:
                lines.append("(more failures in results.csv)")
                break
    lines.append("wrote " + ", ".join(str(p) for p in written))
    return "\n".join(lines)

