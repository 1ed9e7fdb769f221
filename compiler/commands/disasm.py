"""`fastmamba disasm`: print a .fmb binary as assembly text (isa.container → isa.disassembler)."""

from __future__ import annotations

import argparse
import json
import sys

from fastmamba.isa.container import read_fmb
from fastmamba.isa.disassembler import disassemble
from fastmamba.isa.fileio import check_writable, write_atomic

HELP = "print an instruction binary (.fmb) as assembly text"
DESCRIPTION = """\
Read and validate a .fmb binary and print it in the assembly syntax of
docs/ISA.md: the target digest, the metadata (.meta), the constant image as
.data lines (all-zero runs left out), then each program with its tensors and
bundles (each after its debug text, .loc, and followed by its index as a
comment).  `fastmamba asm` turns the output back into the identical binary,
byte for byte (unless --no-data).  A malformed, truncated, damaged (a
checksum mismatch names the section) or foreign file is rejected with a
one-line error.  --meta prints the binary's metadata instead (the JSON object
`fastmamba compile` records: the model, its config, the target, the
calibration used and the quantization plan), or {} when it has none."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("disasm", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("binary", metavar="PROG.fmb", help="binary to read")
    p.add_argument("-o", "--output", metavar="FILE", help="write the text here (atomically) instead of to stdout")
    p.add_argument("--no-data", action="store_true",
                   help="leave out the constant image's contents (weights); the text then no longer reassembles "
                        "to the same binary")
    p.add_argument("--no-numbers", action="store_true", help="do not append '# INDEX' to each bundle")
    p.add_argument("--meta", action="store_true",
                   help="print the metadata (JSON: model, config, target, calibration, plan) instead of the code")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.output:
        check_writable(args.output, "-o ")
    binary = read_fmb(args.binary)
    if args.meta:
        text = json.dumps(json.loads(binary.meta) if binary.meta else {}, indent=2, sort_keys=True) + "\n"
    else:
        text = disassemble(binary, with_data=not args.no_data, numbered=not args.no_numbers)
    if args.output:
        write_atomic(args.output, text, "-o ")
    else:
        sys.stdout.write(text)
    return 0
