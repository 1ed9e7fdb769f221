"""`fastmamba import`: a Mamba2 model to `mamba` IR text (compiler.frontend.importer)."""

from __future__ import annotations

import argparse
import sys

from fastmamba.compiler.config import DEFAULT_SEQ_LEN, PROGRAMS
from fastmamba.isa.errors import InputError

HELP = "import a Mamba2 model and print its prefill or decode program as mamba IR"
DESCRIPTION = """\
Export one program of a Mamba2 model (a transformers or mamba_ssm checkpoint
directory) with torch.export, import it through torch-mlir and raise it to
the `mamba` dialect.  Weights stay in the checkpoint: ops name them
(mamba.weight "backbone.layers.0.mixer.in_proj.weight").  prefill takes
--seq-len tokens and returns the last position's logits (all positions with
--all-logits) and every layer's conv and SSM state; decode takes one token
and the states and returns the logits and the new states."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("import", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", metavar="DIR", default=None, help="model directory (default: the bundled model)")
    p.add_argument("--program", choices=PROGRAMS, default="prefill", help="which program (default: prefill)")
    p.add_argument("--seq-len", type=int, default=DEFAULT_SEQ_LEN, metavar="L",
                   help=f"prefill length in tokens (default: {DEFAULT_SEQ_LEN}; decode is always 1)")
    p.add_argument("--all-logits", action="store_true", help="prefill returns the logits of every position")
    p.add_argument("-o", "--output", metavar="FILE", help="write the IR here (atomically) instead of to stdout")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.seq_len < 1:
        raise InputError(f"--seq-len must be at least 1, got {args.seq_len}")
    from fastmamba.compiler.config import DEFAULT_MODEL_DIR
    from fastmamba.compiler.frontend.importer import import_model
    from fastmamba.compiler.pipeline import print_ir
    from fastmamba.isa.fileio import check_writable, write_atomic

    if args.output:
        check_writable(args.output, "-o ")
    imported = import_model(args.model or DEFAULT_MODEL_DIR, args.program, args.seq_len, args.all_logits)
    text = print_ir(imported.module)
    if args.output:
        write_atomic(args.output, text)
    else:
        sys.stdout.write(text)
    return 0
