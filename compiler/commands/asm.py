"""`fastmamba asm`: assemble a .s file into a .fmb binary (isa.assembler → isa.container)."""

from __future__ import annotations

import argparse

from fastmamba.isa.assembler import assemble, preset_for, read_source
from fastmamba.isa.container import dump_fmb
from fastmamba.isa.fileio import check_writable, write_atomic

HELP = "assemble an assembly file (.s) into an instruction binary (.fmb)"
DESCRIPTION = """\
Assemble a program text into a .fmb binary for the accelerator.  The syntax
(bundles `op field=value, ... | op ... ; delay=N`, directives .program,
.input/.output/.state, .data, .loc, .image_size, .target_digest, .meta) is
described in docs/ISA.md; `fastmamba disasm` prints the same syntax, and its
output assembles back into the binary it read, byte for byte.  Errors are
reported as FILE:LINE: message and leave no output file behind."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("asm", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", metavar="PROG.s", help="assembly file; .data file= paths are relative to it")
    p.add_argument("-o", "--output", metavar="PROG.fmb", required=True, help="binary to write (atomically)")
    p.add_argument("--target", default=None, metavar="NAME|FILE",
                   help="target configuration: a preset name or a config file (default: the preset whose digest "
                        "the text's .target_digest gives, as disasm writes it, else vc709); its digest is "
                        "recorded in the binary, and its DDR and buffer sizes bound the program")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from fastmamba.isa.target import load_target

    check_writable(args.output, "-o ")
    text = read_source(args.source)
    target = load_target(args.target if args.target is not None else preset_for(text) or "vc709")
    binary = assemble(text, str(args.source), target)
    write_atomic(args.output, dump_fmb(binary, target), "-o ")
    return 0
