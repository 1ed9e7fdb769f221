"""`fastmamba translate`: scheduled `accel` IR -> a `.fmb` binary (mlir-translate's role in the flow).

The last stage `fastmamba compile --dump-dir` writes (NN-schedule-vliw.mlir), or that IR edited by hand or
rerun through `fastmamba opt`, becomes the binary `compile` would have written from it: the same emitter
(compiler.compile.emit_module), so the same IR gives the same bytes.  IR not yet scheduled is a one-line
error naming the pass to run first (compiler.pipeline.check_level)."""

from __future__ import annotations

import argparse
import sys

HELP = "turn scheduled accel IR (compile's last stage) into an accelerator binary (.fmb)"
DESCRIPTION = """\
Read `accel` IR as the last stage of `fastmamba compile` leaves it (its
--dump-dir's NN-schedule-vliw.mlir, or `fastmamba opt` output: '-' reads
stdin) and write the binary `compile` writes from it: the programs, the
constant image packed from the checkpoint the IR's calibration record names
(calibrate writes it), and the metadata `fastmamba run` reads (model, config,
target, calibration, the quantization plan built from the recorded ranges).
The IR must be lowered (lower-to-accel), planned (plan-memory) and scheduled
(schedule-vliw); otherwise the error names the pass to run first."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("translate", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="FILE", help="scheduled accel IR file, or - for stdin")
    p.add_argument("-o", "--output", metavar="OUT.fmb", required=True, help="the binary to write (atomically)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from fastmamba.compiler.commands.opt import read_input
    from fastmamba.compiler.compile import emit_module
    from fastmamba.compiler.dialects.accel import module_target
    from fastmamba.compiler.pipeline import check_level, parse_ir
    from fastmamba.isa.container import write_fmb
    from fastmamba.isa.fileio import check_writable

    check_writable(args.output, "-o ")
    text, source = read_input(args.input)
    module = parse_ir(text, source)
    check_level("translate", module)
    binary, _, _ = emit_module(module)
    write_fmb(args.output, binary, module_target(module, "translate"))
    sys.stderr.write(f"wrote {args.output}\n")
    return 0
