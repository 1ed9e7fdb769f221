"""`fastmamba demo`: the main job end to end: compile the bundled model, run a prompt on the simulator (or the RTL)."""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from fastmamba.compiler.runner import BACKENDS
from fastmamba.compiler.tokenizer import UNRENDERABLE

TARGETS = {"sim": "vc709", "rtl": "small"}  # the target demo compiles for on each backend

DEFAULT_PROMPT = "ROMEO:\nBut soft, what light through yonder window breaks?\nIt is the east, and Juliet is the sun.\n"
HELP = "compile the bundled model and run a prompt on the simulator or the RTL (the README's main command)"
DESCRIPTION = """\
Compile the bundled byte-level model (compiler/models/default) to an
accelerator binary, as `fastmamba compile` does, then generate from --prompt
on the instruction-level simulator, as `fastmamba run --greedy --check` does:
prints the text, the cycles, the time at the target clock, tokens/s of
prefill and decode, each unit's utilization and the DDR traffic, and whether
every program run equalled the golden quantized model bit for bit (a mismatch
exits 1).  --output keeps the binary.  Calibration reads the default text
(../shared/data/tinyshakespeare.txt beside the repository) when it exists,
else seeded random tokens; the first line says which.  The prompt, the
options and --output are checked before compiling.

--backend rtl runs the programs on the RTL machine of hardware/ in Verilator
(docs/RTL.md) instead, as `fastmamba run --backend rtl` does: the model is
compiled for the `small` target, the one the RTL is built for (its 64 KiB
buffer takes a shorter prefill: --seq-len defaults to what fits,
compiler.compile.default_seq_len), and the counters add the RTL's clock
cycles.  The first run builds the RTL (minutes; cached in build/rtl/)."""
DESCRIPTION += "\n\n" + textwrap.fill(UNRENDERABLE, 78)  # the rule `fastmamba run` follows


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prompt", default=DEFAULT_PROMPT, metavar="TEXT",
                   help="text to continue (default: two lines of Romeo, longer than one prefill chunk)")
    p.add_argument("--max-new-tokens", default="64", metavar="N", help="tokens to generate (default 64)")
    p.add_argument("--seq-len", type=int, default=None, metavar="L",
                   help="tokens of the prefill program (default 64, or what fits the target's buffer)")
    p.add_argument("--backend", choices=BACKENDS, default="sim",
                   help="sim: the instruction-level simulator, target vc709 (default); rtl: the RTL machine in "
                        "Verilator, target small")
    p.add_argument("--no-check", action="store_true", help="skip the bit-exact comparison with the golden model")
    p.add_argument("--json", action="store_true", help="print one JSON object, as `fastmamba run --json`")
    p.add_argument("-o", "--output", metavar="OUT.fmb", help="keep the compiled binary here")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from fastmamba.compiler.checkpoint import DEFAULT_MODEL_DIR
    from fastmamba.compiler.commands import run as run_cmd
    from fastmamba.compiler.commands.generate import _int_at_least, prompt_text
    from fastmamba.compiler.commands.compile import summary
    from fastmamba.compiler.checkpoint import read_config
    from fastmamba.compiler.compile import (DEFAULT_CALIBRATION_TEXT, CompileOptions, check_inputs, compile_model,
                                            default_seq_len)
    from fastmamba.compiler.runner import make_backend
    from fastmamba.isa.container import write_fmb
    from fastmamba.isa.errors import InputError
    from fastmamba.isa.fileio import check_writable
    from fastmamba.isa.target import load_target

    prompt_text(args.prompt)
    max_new = _int_at_least(args.max_new_tokens, "--max-new-tokens", 0)
    if args.output:
        check_writable(args.output, "--output ")
    target = load_target(TARGETS[args.backend])
    make_backend(args.backend, target)  # a backend that cannot run the target is refused before compiling
    if args.backend == "rtl":
        from fastmamba.hardware.backend import rtl_ops
        from fastmamba.isa.instructions import OPS

        missing = [op for op in OPS if op not in rtl_ops()]
        if missing:  # the compiled model uses every operation
            raise InputError(f"--backend rtl: not implemented in the RTL yet: {', '.join(missing)}")
    seq_len = args.seq_len if args.seq_len is not None else default_seq_len(read_config(DEFAULT_MODEL_DIR)[0],
                                                                            target)
    options = CompileOptions(seq_len=seq_len, target=target.name)
    check_inputs(DEFAULT_MODEL_DIR, options)
    text = DEFAULT_CALIBRATION_TEXT if DEFAULT_CALIBRATION_TEXT.is_file() else None
    start = time.perf_counter()
    if not args.json:
        print(f"compiling {DEFAULT_MODEL_DIR} for {target.name} (prefill of {seq_len} tokens, decode; calibrated on "
              f"{text or 'seeded random tokens'}) ...", file=sys.stderr, flush=True)
    from fastmamba.compiler.progress import Progress

    result = compile_model(DEFAULT_MODEL_DIR, options, calibration_text=text, calibration_random=text is None,
                           progress=Progress.open(sys.stderr, "fastmamba demo", quiet=args.json))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.output) if args.output else Path(tmp) / "default.fmb"
        write_fmb(path, result.binary, target)
        if not args.json:
            print(f"compiled in {time.perf_counter() - start:.1f} s -> "
                  f"{path if args.output else 'a temporary binary'}\n"
                  f"{summary(result)}\n", file=sys.stderr, flush=True)
        return run_cmd.run_binary(str(path), args.prompt, max_new, run_cmd.Sampling(greedy=True),
                                  as_json=args.json, check=not args.no_check, backend=args.backend)
