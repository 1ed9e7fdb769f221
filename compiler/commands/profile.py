"""`fastmamba profile`: run a compiled model like `fastmamba run` and show where the cycles go.

Place in the flow: the command-line face of `compiler.runner.generate` (the same loop as `fastmamba run`, greedy)
over `simulator.runtime.SimulatorBackend` with a trace per program run (`simulator.trace`), then
`simulator.profile` for the tables and plots and `compiler.backend.roofline` for DESIGN §9's bound.  Writes into
DIR: trace.json (every run on one timeline), profile.json (counters in the unified schema, tables, bound),
layers.csv, ops.csv and three PNGs; docs/PROFILE.md describes them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fastmamba.compiler.commands.generate import _int_at_least, prompt_text
from fastmamba.isa.errors import InputError

HELP = "run a compiled model (.fmb) on the simulator and write a trace, tables and plots of where the cycles go"
DESCRIPTION = """\
Continue --prompt greedily with a binary from `fastmamba compile`, as
`fastmamba run --greedy` does, recording a trace of every program run, and
write into -o DIR:

  trace.json     Perfetto / chrome://tracing trace of the whole run (each
                 program run a process, one after another; 1 us = 1 cycle)
  profile.json   the counters (per phase and in total, docs/PROFILE.md's
                 schema), the tables below, DESIGN §9's bound per program
  layers.csv     cycles per model layer (rows sum to the runs' cycles),
                 stalled cycles, each unit's busy cycles
  ops.csv        per IR op kind and unit: operations, busy and waiting cycles
  utilization.png, roofline.png, layers.png

and print the two tables.  Progress goes to stderr.  docs/PROFILE.md says
how each figure is defined."""

DEFAULT_DIR = "profile"
DEFAULT_NEW_TOKENS = "8"
FILES = ("trace.json", "profile.json", "layers.csv", "ops.csv", "utilization.png", "roofline.png", "layers.png")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("profile", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("binary", metavar="MODEL.fmb", help="binary written by `fastmamba compile`")
    p.add_argument("--prompt", metavar="TEXT", required=True, help="text to continue (not empty)")
    p.add_argument("--max-new-tokens", metavar="N", default=DEFAULT_NEW_TOKENS,
                   help=f"number of tokens to generate (>= 0; default {DEFAULT_NEW_TOKENS})")
    p.add_argument("-o", "--output-dir", metavar="DIR", default=DEFAULT_DIR,
                   help=f"directory for the trace, tables and plots (default: ./{DEFAULT_DIR}; created)")
    p.add_argument("--model", metavar="DIR", default=None,
                   help="model directory for the tokenizer (default: the one recorded in the binary)")
    p.add_argument("--target", metavar="NAME|FILE", default=None,
                   help="target configuration (default: the one recorded in the binary); it must be the target "
                        "the binary was built for")
    p.set_defaults(run=run)


class TracingBackend:
    """An ExecutionBackend that runs every program with a trace and keeps each run's result."""

    def __init__(self, inner):
        self.inner = inner
        self.results: list = []

    @property
    def binary(self):
        return self.inner.binary

    def run(self, program: str, inputs=None, *, trace: bool = True):
        result = self.inner.run(program, inputs, trace=True)
        result.trace.finish(result.stats.cycles)
        self.results.append(result)
        return result


def _progress(event) -> None:
    what = "prompt tokens" if event.phase == "prefill" else "tokens generated"
    print(f"profile: run {event.step} ({event.program}): {event.phase} {event.done}/{event.total} {what}, "
          f"{event.cycles:,} cycles so far", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from fastmamba.isa.fileio import check_writable_dir

    prompt_text(args.prompt)
    max_new = _int_at_least(args.max_new_tokens, "--max-new-tokens", 0)
    if not Path(args.binary).is_file():
        raise InputError(f"{args.binary}: no such file")
    out = Path(args.output_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"-o {out}: not a directory")
    check_writable_dir(out, "-o ")
    return profile(args.binary, args.prompt, max_new, out, model=args.model, target=args.target)


def profile(path: str, prompt: str, max_new: int, out: Path, *, model: str | None = None,
            target: str | None = None) -> int:
    from fastmamba.compiler.backend.roofline import roofline
    from fastmamba.compiler.commands.run import binary_tokenizer, encode_prompt, open_binary
    from fastmamba.compiler.runner import PHASES, generate
    from fastmamba.compiler.tokenizer import allowed_ids
    from fastmamba.isa.fileio import write_atomic
    from fastmamba.simulator import profile as prof
    from fastmamba.simulator.runtime import SimulatorBackend
    from fastmamba.simulator.stats import Stats, counters
    from fastmamba.simulator.trace import Timeline

    binary, meta, config, model_dir, tgt = open_binary(path, model, target)
    tokenizer = binary_tokenizer(meta, config, model_dir)
    ids = encode_prompt(tokenizer, config, prompt)
    inner = SimulatorBackend(tgt)
    inner.load(binary)
    backend = TracingBackend(inner)
    phase_of: list[str] = []

    def progress(event) -> None:
        phase_of.append(event.phase)
        _progress(event)

    print(f"profile: {path}: {len(ids)} prompt tokens, {max_new} to generate, a trace per program run",
          file=sys.stderr, flush=True)
    # never choose ids the tokenizer cannot render (tokenizer.UNRENDERABLE), as `run` does
    result = generate(backend, ids, max_new, greedy=True, allowed=allowed_ids(tokenizer, config), progress=progress)
    stream = tokenizer.stream()
    text = "".join(stream.feed(t) for t in result.tokens) + stream.flush()

    timeline = Timeline(float(tgt.clock_hz))
    runs = []
    for step, (res, phase) in enumerate(zip(backend.results, phase_of)):
        label = f"{step:>3} {phase}: {res.program}"
        start = timeline.add(label, res.trace)
        runs.append(prof.ProfiledRun(phase, label, res.trace, start))
    layers = prof.layer_table(runs, PHASES)
    ops = prof.op_table(runs)

    # DESIGN §9's bound per program, summed over its runs
    seq_len = int(meta["seq_len"])
    points = []
    for program in ("prefill", "decode"):
        mine = [r for r in backend.results if r.program == program]
        if not mine:
            continue
        total = Stats(float(tgt.clock_hz))
        for r in mine:
            total.add(r.stats)
        rl = roofline(config, seq_len if program == "prefill" else 1, tgt)
        per = rl.dma_bytes_per_cycle
        ddr_bytes = rl.weight_bytes + rl.head_bytes + (rl.state_bytes if program == "decode" else 0)
        terms = {"LIN": rl.lin + rl.head_lin, "SSM": rl.ssm, "CONV": rl.conv, "DDR": ddr_bytes / per}
        bound = rl.prefill if program == "prefill" else rl.decode
        points.append(prof.RooflinePoint(
            f"{program} ({len(mine)} run{'s' if len(mine) > 1 else ''})", total.cycles,
            sum(e["args"]["macs"] for r in mine for e in r.trace.events if e["track"] == "LIN"),
            total.ddr_bytes_read + total.ddr_bytes_written, dict(total.busy), bound * len(mine),
            {k: v * len(mine) for k, v in terms.items()}, ddr_bytes * len(mine)))

    phases = {name: getattr(result, name) for name in PHASES}
    layer_rows, op_rows = prof.layer_rows_dicts(layers, PHASES), prof.op_rows_dicts(ops)
    doc: dict[str, Any] = {
        "binary": str(path), "target": tgt.name, "seq_len": seq_len, "prompt": prompt, "text": text,
        "prompt_tokens": len(ids), "tokens": list(result.tokens),
        "counters": counters(result.total, float(tgt.clock_hz)),
        **{name: {"programs": dict(ph.programs), "runs": ph.runs, "tokens": ph.tokens,
                  "counters": counters(ph.counters, float(tgt.clock_hz))} for name, ph in phases.items()},
        "runs": [{"label": r.label, "phase": r.phase, "program": res.program, "start": r.start,
                  "counters": counters(res.stats)} for r, res in zip(runs, backend.results)],
        "layers": layer_rows,
        "ops": op_rows,
        "roofline": [{"program": p.name, "cycles": p.cycles, "lin_macs": p.macs, "ddr_bytes": p.ddr_bytes,
                      "bound_cycles": p.bound, "bound_ddr_bytes": p.bound_bytes, "terms_cycles": p.terms,
                      "bound_over_cycles": p.bound / p.cycles if p.cycles else None} for p in points],
        "peak_macs_per_cycle": tgt.lin_macs_per_cycle, "dma_bytes_per_cycle": tgt.dma_bytes_per_cycle,
    }
    print("profile: writing the trace, tables and plots", file=sys.stderr, flush=True)
    files: dict[str, str | bytes] = {
        "trace.json": json.dumps(timeline.to_dict(), separators=(",", ":")),
        "profile.json": json.dumps(doc, indent=2),
        "layers.csv": prof.to_csv(layer_rows),
        "ops.csv": prof.to_csv(op_rows),
        "utilization.png": prof.plot_utilization(runs),
        "roofline.png": prof.plot_roofline(points, float(tgt.lin_macs_per_cycle), float(tgt.dma_bytes_per_cycle)),
        "layers.png": prof.plot_layers(layers, PHASES),
    }
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create -o {out}: {exc.strerror or exc}") from None
    for name in FILES:
        write_atomic(out / name, files[name], "-o ")

    print(prompt + text)
    print()
    print(result.format_table())
    print()
    print("cycles per layer (a bundle's cycles: from the previous bundle's issue to its own; docs/PROFILE.md)")
    print(prof.format_layer_table(layers, PHASES))
    print()
    print("cycles per IR op kind and unit")
    print(prof.format_op_table(ops))
    print()
    for p in points:
        print(f"{p.name}: {p.cycles:,} cycles, DESIGN §9 bound {p.bound:,.0f} ({p.bound / p.cycles:.1%} of the cycles)")
    print(f"wrote {', '.join(FILES)} to {out}")
    return 0
