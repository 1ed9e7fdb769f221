"""`fastmamba opt`: run a pass pipeline on a `mamba` IR file, in the style of xdsl-opt (compiler.pipeline).

The same driver as `fastmamba compile` (compiler.pipeline.PassDriver): print-before/after, dump folder, timing and
the reproducer of a failing pass.  xDSL and the dialects are imported when the command runs, not for its
--help (compiler/cli.py's start-up budget)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from fastmamba.isa.errors import InputError

HELP = "run passes on a mamba IR file and print the result"
DESCRIPTION = """\
Parse and verify a `mamba` IR file (as `fastmamba import` writes it; '-' reads
stdin), run the passes of -p in order, verifying after each, and print the
result.  The pipeline uses xdsl-opt's syntax: -p canonicalize,dce or
-p 'pass{option=value}'.  An empty pipeline prints the input back.  Passes
that need the hardware read it from the module (set-target{target=NAME|FILE}
records it).  `fastmamba compile --print-pipeline` prints the pipeline it
runs, which -p takes as it is.  --dump-dir writes the IR after every pass as
NN-<pass>.mlir (00: the input); with it, a failing pass leaves its input IR
there and the error names the command that reproduces the failure."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("opt", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="FILE", nargs="?", help="mamba IR file, or - for stdin")
    p.add_argument("-p", "--passes", default="", metavar="PIPELINE",
                   help="comma-separated passes, with options in braces")
    p.add_argument("--print-ir-before-all", action="store_true", help="print the IR to stderr before every pass")
    p.add_argument("--print-ir-before", metavar="PASS[,PASS]", default="",
                   help="print the IR to stderr before each named pass")
    p.add_argument("--print-ir-after-all", action="store_true", help="print the IR to stderr after every pass")
    p.add_argument("--print-ir-after", metavar="PASS[,PASS]", default="",
                   help="print the IR to stderr after each named pass")
    p.add_argument("--dump-dir", metavar="DIR", help="write the IR after every pass into DIR (numbered files)")
    p.add_argument("--time-passes", action="store_true",
                   help="print to stderr each stage's wall time and share of the total (start-up, parse, each pass)")
    p.add_argument("--list-passes", action="store_true",
                   help="list the registered passes with their options (type = default) and exit; needs no FILE")
    p.add_argument("--mlir-print-debuginfo", action="store_true",
                   help="print each op's location, loc(...): where it was parsed (FILE:LINE:COL) unless the input "
                        "gives one; loc(unknown) for ops a pass created")
    p.add_argument("-o", "--output", metavar="FILE", help="write the IR here (atomically) instead of to stdout")
    p.set_defaults(run=run)


def print_names(args: argparse.Namespace, when: str) -> tuple[str, ...] | bool:
    """--print-ir-WHEN-all (True) or the names --print-ir-WHEN lists (`compile` reads its flags here too)."""
    if getattr(args, f"print_ir_{when}_all"):
        return True
    return tuple(n for n in getattr(args, f"print_ir_{when}").split(",") if n)


def read_input(name: str) -> tuple[str, str]:
    """The text of the IR file `name` ('-': stdin) and the name its errors give it; unreadable: an InputError."""
    if name == "-":
        return sys.stdin.read(), "<stdin>"
    path = Path(name)
    try:
        return path.read_text(), str(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None


def run(args: argparse.Namespace) -> int:
    from fastmamba.compiler.pipeline import (DriverOptions, PassDriver, check_print_names, describe_passes, parse_ir,
                                             parse_passes, print_ir)
    from fastmamba.compiler.progress import Progress, showing
    from fastmamba.isa.fileio import check_writable, check_writable_dir, write_atomic

    if args.list_passes:
        sys.stdout.write(describe_passes())
        return 0
    if args.input is None:
        raise InputError("give the mamba IR file to read (- for stdin), or --list-passes")
    passes = parse_passes(args.passes)  # the command line is checked before the input is read
    print_before, print_after = print_names(args, "before"), print_names(args, "after")
    check_print_names(passes, print_before, print_after)
    if args.output:
        check_writable(args.output, "-o ")
    if args.dump_dir:
        check_writable_dir(args.dump_dir, "--dump-dir ")
    text, source = read_input(args.input)
    options = DriverOptions(print_after=print_after, print_before=print_before, dump_dir=args.dump_dir,
                            time_passes=args.time_passes, reproducer=bool(args.dump_dir),
                            started=getattr(args, "started", None), debuginfo=args.mlir_print_debuginfo,
                            progress=Progress.open(sys.stderr, "fastmamba opt", quiet=not sys.stderr.isatty()))
    driver = PassDriver(passes, options, sys.stderr)
    start = time.perf_counter()
    driver.start_up(start)
    module = parse_ir(text, source, locations=args.mlir_print_debuginfo)
    driver.record("parse", time.perf_counter() - start)
    with showing(options.progress):  # (a bar on a terminal only: opt's stderr elsewhere is exactly its messages)
        driver.run(module)
    out = print_ir(module, args.mlir_print_debuginfo)
    if args.output:
        write_atomic(args.output, out, "-o ")
    else:
        sys.stdout.write(out)
    if args.time_passes:
        sys.stdout.flush()
        sys.stderr.write(driver.report())
    return 0
