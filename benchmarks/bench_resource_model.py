"""The resource model's error on configurations held out from its fit, and what it predicts for the presets.

Place in the flow: a measurement, not a test.  Reads hardware/resource_model.json (the synthesized
configurations and the fitted coefficients; `python -m fastmamba.hardware.resource_model` regenerates
it), and prints

1. per unit, the configurations and per resource the median and worst relative error
   |model - synthesis| / synthesis over the configurations held out of the fit, leave-one-out (each
   predicted by the formula fitted to the unit's other configurations), with the worst absolute
   difference (a relative error on a count of a few cells says little) and the fitted cost per term;
2. the model's estimate per unit for `small` and `vc709` beside the xc7vx690t's capacity;
3. with --check-rows N: each unit's first N configurations synthesized at the current RTL (build/synth/ answers
   what it has cached) beside the stored rows, to see how current the fit's data is.

Run: `.venv/bin/python benchmarks/bench_resource_model.py [--check-rows N]`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastmamba.hardware import resource_model as rm  # noqa: E402
from fastmamba.hardware.synth import XC7VX690T, percent  # noqa: E402
from fastmamba.isa.target import PRESETS  # noqa: E402


def line_check(data: dict) -> None:
    """hardware.synth extends the SSM and VEC datapaths along the line through two lane counts (vc709): how
    straight that line is, on the SSM unit's rows at 1, 2 and 4 headdim lanes (4 state lanes, 16-byte beats)."""
    rows = {r["config"].get("ssm_headdim_lanes"): r["counts"] for r in data["units"].get("ssm", {}).get("rows", [])
            if r["config"].get("ssm_dstate_lanes") == 4 and len(r["config"]) == 2}
    if not {1, 2, 4} <= set(rows):
        return
    print("\nThe line through two lane counts (hardware.synth, SSM/VEC at vc709), on the SSM unit at 4 state lanes: "
          "3 c(2) - 2 c(1) against c(4) headdim lanes")
    for res in ("LUT", "FF", "CARRY4", "DSP48E1"):
        line = 3 * rows[2][res] - 2 * rows[1][res]
        print(f"  {res:<8} line {line:>8,}  synthesized {rows[4][res]:>8,}  {100 * (line / rows[4][res] - 1):+.1f}%")


def check_rows(data: dict, first: int) -> None:
    """Synthesize the first `first` configurations of each unit at the current RTL (hardware.synth: build/synth/
    answers what it has) and print their counts beside the stored rows: how current the fit's data is."""
    from fastmamba.hardware.synth import synth_unit

    print(f"\nThe first {first} configuration(s) of each unit synthesized at the current RTL against the stored rows:")
    for unit, d in data["units"].items():
        for row in d["rows"][:first]:
            rep = synth_unit(rm.config_target(row["config"]), unit)
            old = {res: row["counts"].get(res, 0) for res in rep.counts}
            diff = [res for res in rep.counts if rep.counts[res] != old[res]]
            print(f"  {unit:<8} {json.dumps(row['config'])}: "
                  + (", ".join(f"{res} {old[res]:,} -> {rep.counts[res]:,}" for res in diff) or "identical")
                  + f" (yosys {sum(p['yosys_s'] for p in rep.parts):.0f} s"
                  + (", cached)" if all(p["cached"] for p in rep.parts) else ")"), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check-rows", type=int, default=0, metavar="N",
                    help="also synthesize each unit's first N configurations at the current RTL and compare")
    args = ap.parse_args()
    data = rm.load()
    print("Resource model: error on configurations held out of the fit, leave-one-out "
          "(relative: |model - synth| / synth)\n")
    print(f"{'unit':<8} {'resource':<9} {'median':>8} {'worst':>8} {'worst abs':>10}  cost per term")
    for unit, d in data["units"].items():
        rows = d["rows"]
        print(f"{unit}: {len(rows)} synthesized configurations ({sum(r['seconds'] for r in rows):,.0f} s of yosys, "
              f"{rows[0]['yosys']}); terms " + ", ".join(d["features"]))
        for res, e in rm.errors(unit, data).items():
            if e["zero"] and e["worst_abs"] < 0.5:
                print(f"{'':<8} {res:<9} {'(0 in every configuration, model 0)':>28}")
                continue
            cost = ", ".join(f"{c:.3g} x {n}" for c, n in zip(d["coef"][res], d["features"]) if c)
            print(f"{'':<8} {res:<9} {100 * e['median']:>7.1f}% {100 * e['worst']:>7.1f}% {e['worst_abs']:>10,.0f}  "
                  f"{cost}")
    line_check(data)
    if args.check_rows:
        check_rows(data, args.check_rows)
    for name in ("small", "vc709"):
        pred = rm.predict(PRESETS[name], data)
        print(f"\nModel estimate for {name} (pre-place-and-route; each unit whole, at the target's parameters):")
        print(f"{'unit':<8} " + " ".join(f"{r:>9}" for r in rm.MODELED))
        for unit, counts in pred.items():
            print(f"{unit:<8} " + " ".join(f"{counts[r]:>9,.0f}" for r in rm.MODELED))
        share = percent(pred["total"], XC7VX690T)
        print(f"{'% ' + XC7VX690T.name:<8} " + " ".join(f"{share[r]:>8.1f}%" if r in share else f"{'':>9}"
                                                        for r in rm.MODELED))
    return 0


if __name__ == "__main__":
    sys.exit(main())
