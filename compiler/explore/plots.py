"""The pictures of `fastmamba explore`: Pareto fronts of tokens/s against LUT and DSP use, per-unit resources.

Place in the flow: the last step of a sweep (compiler/explore/sweep.py), on its records; matplotlib's Agg
backend (no display).  pareto.png: four panels, prefill and decode tokens/s against the resource model's LUT and
DSP48E1 estimates, every finished trial a dot, the Pareto front (sweep.pareto_front) a line, the vc709 preset a
star, the xc7vx690t's capacity a dashed line, and the paper's measured figure where the sweep's model and length
are the ones it reports (PAPER).  resources.png: per-unit LUT, FF and DSP48E1 of the vc709 preset beside one
chosen configuration's.
"""

from __future__ import annotations

from pathlib import Path

from fastmamba.compiler.explore.shapes import PAPER_DECODE_TOKENS_PER_S
from fastmamba.compiler.explore.sweep import pareto_front

__all__ = ["PAPER", "pareto_plot", "resource_plot", "front_records"]

# The paper's reported figures (FastMamba on the VC709, arXiv 2505.18975), by (shape, what): tokens/s on the board.
PAPER = {("2.7b", "decode_tokens_per_s"): PAPER_DECODE_TOKENS_PER_S}
PANELS = (("prefill_tokens_per_s", "lut"), ("prefill_tokens_per_s", "dsp"), ("decode_tokens_per_s", "lut"),
          ("decode_tokens_per_s", "dsp"))
LABELS = {"lut": "LUT (resource model)", "dsp": "DSP48E1 (resource model)", "ff": "FF (resource model)",
          "prefill_tokens_per_s": "prefill tokens/s", "decode_tokens_per_s": "decode tokens/s"}


def front_records(records: list[dict], value: str, cost: str) -> list[dict]:
    """The finished trials on the Pareto front of `value` (max) against `cost` (min), in increasing cost."""
    ok = [r for r in records if r.get("status") == "ok"]
    return [ok[i] for i in pareto_front([(float(r[cost]), float(r[value])) for r in ok])]


def _capacity() -> dict[str, float]:
    """The xc7vx690t's capacity by result column (hardware/synth.py's XC7VX690T)."""
    from fastmamba.compiler.explore.space import RESOURCES
    from fastmamba.hardware.synth import XC7VX690T

    return {col: XC7VX690T.capacity[name] for col, name in RESOURCES.items() if name in XC7VX690T.capacity}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def pareto_plot(records: list[dict], path: Path, title: str, shape: str | None = None) -> None:
    """pareto.png of `records` at `path` (see the module docstring); `shape`: the sweep's model when a shape."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 8.5))
    ok = [r for r in records if r.get("status") == "ok" and not r.get("reference")]
    ref = next((r for r in records if r.get("reference") and r.get("status") == "ok"), None)
    for ax, (value, cost) in zip(axes.flat, PANELS):
        ax.scatter([r[cost] for r in ok], [r[value] for r in ok], s=14, color="tab:blue", alpha=0.6,
                   label=f"trials ({len(ok)})")
        front = front_records(ok + ([ref] if ref else []), value, cost)
        if front:
            ax.step([r[cost] for r in front], [r[value] for r in front], where="post", color="tab:red", marker="o",
                    markersize=4, label=f"Pareto front ({len(front)})")
        if ref:
            ax.scatter([ref[cost]], [ref[value]], marker="*", s=160, color="tab:orange", edgecolor="black",
                       zorder=5, label="vc709 preset")
        capacity = _capacity().get(cost)
        if capacity:
            ax.axvline(capacity, color="gray", linestyle="--", linewidth=1, label="xc7vx690t capacity")
        paper = PAPER.get((shape or "", value))
        if paper is not None:
            ax.axhline(paper, color="tab:green", linestyle=":", label=f"paper, on the board ({paper:g})")
        ax.set_xlabel(LABELS[cost])
        ax.set_ylabel(LABELS[value])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(title + "\nresources: pre-place-and-route estimates of the resource model; tokens/s: simulated "
                 "cycles at each target's clock", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def resource_plot(ref: dict, other: dict | None, path: Path, other_label: str) -> None:
    """resources.png: per-unit LUT, FF and DSP48E1 of the vc709 preset (`ref`'s units) and `other`'s."""
    plt = _pyplot()
    units = sorted(ref["units"])
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    width = 0.4 if other else 0.8
    for ax, res in zip(axes, ("lut", "ff", "dsp")):
        xs = range(len(units))
        ax.bar([x - (width / 2 if other else 0) for x in xs], [ref["units"][u][res] for u in units], width,
               label="vc709 preset", color="tab:orange")
        if other:
            ax.bar([x + width / 2 for x in xs], [other["units"].get(u, {}).get(res, 0) for u in units], width,
                   label=other_label, color="tab:blue")
        ax.set_xticks(list(xs), units)
        ax.set_title(LABELS[res])
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8)
    fig.suptitle("per-unit resources (resource model estimates, pre-place-and-route)", fontsize=9)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
