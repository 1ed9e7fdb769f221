"""Where the cycles go: tables and plots from the traces of simulated runs (`fastmamba profile`).

Place in the flow: after `simulator.trace` (each run's `Trace`: its operations with their IR location from the
binary's debug info, its stalls, its bundles' issue cycles); `compiler/commands/profile.py` runs a model through
`compiler.runner` with a trace per run and hands the traces here.  Nothing here simulates: every figure is a sum
over trace records, so the tables add up to the runs' counters (`simulator.stats`).

- `layer_table`: per model layer (from the debug info; "-" for what no layer owns: embedding, final norm, head),
  the run's cycles split by bundle (a bundle's cycles run from the issue of the bundle before it to its own
  issue, the first from cycle 0: the scheduled delay and any stall that reaching it took; the cycles after the
  halt issues, while operations drain, are the row "(drain)"), so the rows sum to the runs' cycles; a bundle
  belongs to the layer of its first compute operation that names one, else of its first transfer that does.
  Besides: stall cycles of those bundles, and each unit's busy cycles of the operations of that layer.
- `op_table`: per IR op kind and unit: operations, busy cycles, and waiting cycles (the stall cycles of each
  operation's bundle, plus for a transfer the cycles from its issue to its start on the DDR channel).
- `utilization_series`: each unit's busy fraction per time bin of the whole timeline.
- `plot_*`: the PNGs (matplotlib, Agg backend, imported on use).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

from fastmamba.simulator.stats import DMA_UNITS, UNITS
from fastmamba.simulator.trace import STALL_TRACK, Trace

NO_LAYER = "-"
DRAIN = "(drain)"
COMPUTE_FIRST = tuple(u for u in UNITS if u not in DMA_UNITS) + DMA_UNITS


@dataclass(frozen=True)
class ProfiledRun:
    """One program run of a profile: its phase ("prefill", "decode"), label and trace, at `start` on the timeline."""

    phase: str
    label: str
    trace: Trace
    start: int = 0


def _ops(trace: Trace) -> list[dict]:
    return [e for e in trace.events if e["track"] in UNITS]


def _bundle_stalls(trace: Trace) -> dict[int, int]:
    out: dict[int, int] = {}
    for e in trace.events:
        if e["track"] == STALL_TRACK:
            out[e["args"]["bundle"]] = out.get(e["args"]["bundle"], 0) + e["dur"]
    return out


def _bundle_layers(trace: Trace) -> dict[int, str]:
    """The layer each bundle belongs to (see the module docstring), as a row key."""
    candidates: dict[int, list[tuple[int, str]]] = {}
    for e in _ops(trace):
        layer = e["args"].get("layer")
        if layer is not None:
            candidates.setdefault(e["args"]["bundle"], []).append((COMPUTE_FIRST.index(e["track"]), str(layer)))
    return {b: min(c)[1] for b, c in candidates.items()}


def bundle_cycles(trace: Trace) -> tuple[list[tuple[int, int]], int]:
    """([(bundle, cycles)] in issue order, drain cycles): the run's cycles split by bundle (module docstring)."""
    issues = sorted(trace.bundle_issue.items(), key=lambda kv: kv[1][1])
    out, reached = [], 0
    for bundle, (_, now) in issues:
        out.append((bundle, now + 1 - reached))
        reached = now + 1
    return out, max(0, trace.end - reached)


@dataclass
class LayerRow:
    layer: str
    bundles: int = 0
    cycles: dict[str, int] = field(default_factory=dict)  # phase -> cycles
    stalled: int = 0
    busy: dict[str, int] = field(default_factory=lambda: dict.fromkeys(UNITS, 0))

    @property
    def total(self) -> int:
        return sum(self.cycles.values())


def _layer_sort(key: str) -> tuple[int, int]:
    if key.isdigit():
        return (0, int(key))
    return (1, 0) if key == NO_LAYER else (2, 0)


def layer_table(runs: Sequence[ProfiledRun], phases: Sequence[str]) -> list[LayerRow]:
    """Rows per layer (then "-", then "(drain)"); their cycles sum to the runs' cycles (module docstring)."""
    rows: dict[str, LayerRow] = {}

    def row(key: str) -> LayerRow:
        if key not in rows:
            rows[key] = LayerRow(key, cycles=dict.fromkeys(phases, 0))
        return rows[key]

    for run in runs:
        trace = run.trace
        layers, stalls = _bundle_layers(trace), _bundle_stalls(trace)
        per_bundle, drain = bundle_cycles(trace)
        for bundle, cycles in per_bundle:
            r = row(layers.get(bundle, NO_LAYER))
            r.bundles += 1
            r.cycles[run.phase] += cycles
            r.stalled += stalls.get(bundle, 0)
        if drain:
            row(DRAIN).cycles[run.phase] += drain
        for e in _ops(trace):
            layer = e["args"].get("layer")
            row(NO_LAYER if layer is None else str(layer)).busy[e["track"]] += e["dur"]
    return [rows[k] for k in sorted(rows, key=_layer_sort)]


@dataclass
class OpRow:
    kind: str
    unit: str
    ops: int = 0
    busy: int = 0
    waiting: int = 0


def op_table(runs: Sequence[ProfiledRun]) -> list[OpRow]:
    """Rows per (IR op kind, unit), the busiest first (module docstring)."""
    rows: dict[tuple[str, str], OpRow] = {}
    for run in runs:
        stalls = _bundle_stalls(run.trace)
        for e in _ops(run.trace):
            args = e["args"]
            key = (args.get("kind") or "(no debug info)", e["track"])
            r = rows.setdefault(key, OpRow(*key))
            r.ops += 1
            r.busy += e["dur"]
            r.waiting += stalls.get(args["bundle"], 0)
            if e["track"] in DMA_UNITS:
                r.waiting += e["ts"] - args["issue"]
    return sorted(rows.values(), key=lambda r: (-r.busy, r.kind, r.unit))


def layer_rows_dicts(rows: Sequence[LayerRow], phases: Sequence[str]) -> list[dict]:
    return [{"layer": r.layer, "bundles": r.bundles, **{f"{p}_cycles": r.cycles[p] for p in phases},
             "cycles": r.total, "stall_cycles": r.stalled, **{f"{u}_busy_cycles": r.busy[u] for u in UNITS}}
            for r in rows]


def op_rows_dicts(rows: Sequence[OpRow]) -> list[dict]:
    return [{"kind": r.kind, "unit": r.unit, "ops": r.ops, "busy_cycles": r.busy, "waiting_cycles": r.waiting}
            for r in rows]


def to_csv(rows: Sequence[dict]) -> str:
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue()


def format_layer_table(rows: Sequence[LayerRow], phases: Sequence[str]) -> str:
    total = sum(r.total for r in rows)
    head = f"{'layer':<8}{'bundles':>8}" + "".join(f"{p + ' cycles':>16}" for p in phases)
    head += f"{'total':>12}{'share':>8}{'stalled':>9}" + "".join(f"{u + ' busy':>11}" for u in UNITS)
    lines = [head]
    for r in rows:
        line = f"{r.layer:<8}{r.bundles:>8}" + "".join(f"{r.cycles[p]:>16,}" for p in phases)
        line += f"{r.total:>12,}{r.total / total if total else 0:>8.1%}{r.stalled:>9,}"
        lines.append(line + "".join(f"{r.busy[u]:>11,}" for u in UNITS))
    line = f"{'total':<8}{sum(r.bundles for r in rows):>8}"
    line += "".join(f"{sum(r.cycles[p] for r in rows):>16,}" for p in phases)
    line += f"{total:>12,}{1 if total else 0:>8.1%}{sum(r.stalled for r in rows):>9,}"
    lines.append(line + "".join(f"{sum(r.busy[u] for r in rows):>11,}" for u in UNITS))
    return "\n".join(lines)


def format_op_table(rows: Sequence[OpRow]) -> str:
    width = max([len("IR op kind")] + [len(r.kind) for r in rows]) + 2
    lines = [f"{'IR op kind':<{width}}{'unit':<6}{'ops':>8}{'busy cycles':>14}{'waiting cycles':>16}"]
    lines += [f"{r.kind:<{width}}{r.unit:<6}{r.ops:>8,}{r.busy:>14,}{r.waiting:>16,}" for r in rows]
    return "\n".join(lines)


def utilization_series(runs: Sequence[ProfiledRun], bins: int) -> tuple[list[float], dict[str, list[float]]]:
    """(bin start cycles, {unit: busy fraction per bin}) over the whole timeline (runs at their `start`)."""
    end = max((r.start + r.trace.end for r in runs), default=0)
    width = max(1, -(-end // bins))
    n = max(1, -(-end // width))
    busy = {u: [0] * n for u in UNITS}
    for run in runs:
        for e in _ops(run.trace):
            t, stop, into = run.start + e["ts"], run.start + e["ts"] + e["dur"], busy[e["track"]]
            while t < stop:
                k = t // width
                t1 = min(stop, (k + 1) * width)
                into[k] += t1 - t
                t = t1
    starts = [k * width for k in range(n)]
    lengths = [min(width, end - s) or 1 for s in starts]
    return [float(s) for s in starts], {u: [b / w for b, w in zip(v, lengths)] for u, v in busy.items()}


# ---------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=110, bbox_inches="tight")
    return out.getvalue()


def plot_utilization(runs: Sequence[ProfiledRun], bins: int = 400) -> bytes:
    """PNG: each unit's busy fraction over the whole timeline, the runs' phases shaded."""
    plt = _pyplot()
    starts, series = utilization_series(runs, bins)
    fig, axes = plt.subplots(len(UNITS), 1, figsize=(11, 1.2 * len(UNITS) + 1), sharex=True)
    colors = {"prefill": "#dde8f5", "decode": "#f5e6d6"}
    for ax, unit in zip(axes, UNITS):
        for run in runs:
            ax.axvspan(run.start, run.start + run.trace.end, color=colors.get(run.phase, "#eeeeee"), lw=0)
        ax.step(starts, series[unit], where="post", lw=0.9, color="#1f4e79")
        ax.set_ylim(0, 1.05)
        ax.set_ylabel(unit, rotation=0, ha="right", va="center")
        ax.set_yticks([0, 1])
    axes[0].set_title("unit utilization over time (busy fraction per bin; blue: prefill phase, orange: decode)")
    axes[-1].set_xlabel("cycle (all runs on one timeline)")
    data = _png(fig)
    plt.close(fig)
    return data


def plot_layers(rows: Sequence[LayerRow], phases: Sequence[str]) -> bytes:
    """PNG: cycles per layer, stacked by phase."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    labels = [r.layer for r in rows]
    bottom = [0] * len(rows)
    for phase, color in zip(phases, ("#1f77b4", "#ff7f0e", "#2ca02c")):
        values = [r.cycles[phase] for r in rows]
        ax.bar(labels, values, bottom=bottom, label=phase, color=color)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_xlabel("layer ('-': embedding, final norm, head; '(drain)': after the halt)")
    ax.set_ylabel("cycles")
    ax.set_title("cycles per layer")
    ax.legend()
    data = _png(fig)
    plt.close(fig)
    return data


@dataclass(frozen=True)
class RooflinePoint:
    """One program's totals over its runs, and DESIGN §9's bound for them."""

    name: str
    cycles: int
    macs: int  # the LIN unit's int MACs (the roof's peak is LIN's rate)
    ddr_bytes: int
    busy: dict  # unit -> busy cycles
    bound: float  # cycles
    terms: dict  # the bound's terms (cycles): LIN, SSM, CONV, DDR
    bound_bytes: int  # the DDR bytes the bound counts (weights, head; decode: states)


def plot_roofline(points: Sequence[RooflinePoint], peak_macs_per_cycle: float, bytes_per_cycle: float) -> bytes:
    """PNG: left, the roofline (LIN MACs per cycle against LIN MACs per DDR byte; roof min(peak, intensity x bytes
    per cycle)) with each program's measured point and its §9 bound (over the bytes §9 counts); right, each program's
    bound terms beside its measured busy cycles per unit and its cycles."""
    plt = _pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 4.8))
    intensities = [p.macs / b for p in points for b in (p.ddr_bytes, p.bound_bytes) if b and p.macs]
    lo = min(intensities + [peak_macs_per_cycle / bytes_per_cycle]) / 8
    hi = max(intensities + [peak_macs_per_cycle / bytes_per_cycle]) * 8
    xs = [lo * (hi / lo) ** (k / 200) for k in range(201)]
    ax.plot(xs, [min(peak_macs_per_cycle, x * bytes_per_cycle) for x in xs], color="black", lw=1.5,
            label=f"roof: min({peak_macs_per_cycle:g} LIN MACs/cycle, {bytes_per_cycle:g} B/cycle x intensity)")
    for p, color in zip(points, ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")):
        if not (p.ddr_bytes and p.macs and p.cycles):
            continue
        x = p.macs / p.ddr_bytes
        ax.scatter([x], [p.macs / p.cycles], color=color, zorder=3, label=f"{p.name}: measured")
        ax.scatter([p.macs / p.bound_bytes], [p.macs / p.bound], facecolors="none", edgecolors=color, zorder=3,
                   label=f"{p.name}: DESIGN §9 bound")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("LIN int MACs per DDR byte")
    ax.set_ylabel("LIN int MACs per cycle")
    ax.set_title("roofline")
    ax.legend(fontsize=7)
    names = ["LIN", "CONV", "SSM", "VEC", "DDR"]
    width = 0.8 / max(1, 2 * len(points))
    for k, p in enumerate(points):
        bound = [p.terms.get(n, 0.0) for n in names]
        measured = [p.busy.get(n, 0) for n in names[:-1]] + [sum(p.busy.get(u, 0) for u in DMA_UNITS)]
        pos = [i + (2 * k) * width for i in range(len(names))]
        bx.bar(pos, bound, width, label=f"{p.name}: §9 work", hatch="//", edgecolor="black", color="white")
        bx.bar([q + width for q in pos], measured, width, label=f"{p.name}: busy (measured)")
        bx.axhline(p.cycles, ls="--", lw=0.8, color=f"C{k}", label=f"{p.name}: cycles {p.cycles:,}")
    bx.set_xticks([i + width * (len(points) - 0.5) for i in range(len(names))], names)
    bx.set_ylabel("cycles")
    bx.set_yscale("log")
    bx.set_title("each unit's work: §9 bound terms vs busy cycles")
    bx.legend(fontsize=7)
    data = _png(fig)
    plt.close(fig)
    return data

