"""ABC's full LUT-mapping script against the lean one the control is mapped with, on units where both finish.

Place in the flow: a measurement, not a test.  `fastmamba synth` maps the control's LUTs with a lean ABC script
(hardware/synth.py's LEAN_ABC: ABC's own `-luts` script without &fraig -x, scorr and dch -f), because on the
control's 729k gates the full script had not finished after 30 minutes of mapping.  This benchmark measures what
leaving those steps out costs: for each design it synthesizes the same Verilog with SCRIPT_NOSHARE (the full
script, classic `abc -luts`) and with SCRIPT_NOSHARE_LEAN_ABC, and prints each resource of both, the lean/full
ratio and yosys' time (both cached in build/synth/ like every synthesis: a second run takes seconds).

Designs (resource-model configurations: overrides of `small`, each unit whole): VEC at 1 lane and 1 stage, CONV
at 1 channel x kernel 2, SSM at 1 x 1 lanes, LIN at 1 tree of width 2; with `--control`, also `small`'s control,
whose mapping with the full script had not finished after 30 minutes on vc709's (expect hours).

Run: `.venv/bin/python benchmarks/bench_synth_abc.py [--control]`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastmamba.hardware import resource_model as rm  # noqa: E402
from fastmamba.hardware import synth  # noqa: E402

DESIGNS = [("vec", {"vec_lanes": 1}), ("conv", {"conv_channels": 1, "conv_kernel_max": 2}),
           ("ssm", {"ssm_headdim_lanes": 1, "ssm_dstate_lanes": 1}),
           ("lin", {"lin_groups": 1, "lin_mac_trees": 1, "lin_mac_tree_width": 2, "hadamard_max_block": 8})]
SHOWN = ("LUT", "FF", "CARRY4", "MUXF7", "MUXF8", "DSP48E1")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--control", action="store_true", help="also small's control (hours with the full script)")
    args = ap.parse_args()
    designs = DESIGNS + ([("control", {})] if args.control else [])
    root = synth.synth_root()
    root.mkdir(parents=True, exist_ok=True)
    print(f"{'design':<44} {'script':<6} " + " ".join(f"{r:>8}" for r in SHOWN) + "   yosys")
    for unit, cfg in designs:
        target = rm.config_target(cfg)
        (part,) = synth.plan(target, unit).parts
        verilog = synth._verilog(part, target, root)
        counts = {}
        for name, script in (("full", synth.SCRIPT_NOSHARE), ("lean", synth.SCRIPT_NOSHARE_LEAN_ABC)):
            res = synth.run_yosys(verilog, root, f"{unit} {cfg}", script)
            counts[name] = synth.counts_from_cells(res["cells"])[0]
            print(f"{unit + ' ' + str(cfg):<44} {name:<6} " + " ".join(f"{counts[name][r]:>8}" for r in SHOWN)
                  + f"   {res['seconds']:.0f} s{' (cached)' if res['cached'] else ''}", flush=True)
        ratio = " ".join(f"{counts['lean'][r] / counts['full'][r]:>8.3f}" if counts["full"][r] else f"{'-':>8}"
                         for r in SHOWN)
        print(f"{'':<44} {'lean/full':<6} {ratio}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
