"""`fastmamba compile`: a Mamba2 checkpoint -> an accelerator binary (.fmb) with prefill and decode programs."""

from __future__ import annotations

import argparse
import sys

from fastmamba.compiler.backend.lowering import DEFAULT_PREFETCH
from fastmamba.compiler.compile import (CALIBRATION_WINDOWS, CompileOptions, compile_model, compile_pipeline,
                                        model_pipeline)
from fastmamba.compiler.commands.opt import print_names
from fastmamba.compiler.pipeline import check_print_names, pipeline_spec
from fastmamba.isa.errors import InputError


def _stage_lines() -> str:
    shown = {"set-target": "set-target{target=--target}",
             "calibrate": 'calibrate{text=TEXT|random=true model=DIR windows=N copy_to="decode"}'}
    lines = [shown.get(p.name) or pipeline_spec([p]) for p in compile_pipeline()]
    return "\n".join(f"    {line}" for line in lines)


HELP = "compile a model to an accelerator binary (.fmb)"
DESCRIPTION = f"""\
Run the whole flow on a Mamba2 checkpoint (a Hugging Face Mamba2ForCausalLM
directory, or the mamba_ssm layout; default: the bundled model):

  import (torch.export + torch-mlir) of the prefill graph at --seq-len and of
  the one-token decode step; the passes (by default)
{_stage_lines()}
  and emission (the constant image packed from the weights).  --target sets
  the module's target (set-target), which every later pass reads;
  --print-pipeline prints the pipeline these options give, as
  `fastmamba opt -p` takes it, and exits.

The binary holds two programs, `prefill` (--seq-len tokens) and `decode` (one
token), with --batch B > 1 a third, `decode_batch` (B sequences a token each,
each its own state slot), the int8/fixed-point weights, the recurrent-state
descriptors and the metadata `fastmamba run` needs (model, config,
quantization plan).
Calibration reads the first --calibration-windows x --seq-len tokens of
--calibration-text, or seeded random tokens with --calibration random; with
neither, ../shared/data/tinyshakespeare.txt beside the repository when it
exists (else random tokens) is used, with a warning naming it.  The binary's
metadata records which (`fastmamba disasm --meta` prints it).

The model, the options and the output are checked before any long work: every
model dimension must fit its instruction field and the target (the conv kernel
its conv_kernel_max), --seq-len at most the longest prefill the target's
buffer can hold (the error states it), -o and --dump-dir writable.

--print-ir-before / --print-ir-before-all and --print-ir-after /
--print-ir-after-all print the IR to stderr before / after those stages
(headed `// -----// IR Dump Before PASS //----- //`, as mlir-opt does; the
import is a stage too: --print-ir-after=import, and -all prints it);
--dump-dir writes the IR after every stage as NN-<stage>.mlir; a failing
stage leaves its input IR in a file and prints the command that reproduces
the failure.  The IR is verified after the last stage (--verify-each: after
every stage, as `fastmamba opt` does).  Nothing is written to -o unless every
stage succeeds.  Progress goes to stderr (a bar on a terminal, a line per
stage and calibration window on a file or pipe; -q silences it); stdout stays
empty."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("compile", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_options(p)
    p.add_argument("-o", "--output", metavar="OUT.fmb", help="the binary to write (required unless --print-pipeline)")
    p.add_argument("--print-pipeline", action="store_true",
                   help="print the pass pipeline (as `fastmamba opt -p` takes it) and exit")
    p.add_argument("--print-ir-before-all", action="store_true", help="print the IR to stderr before every stage")
    p.add_argument("--print-ir-before", metavar="PASS[,PASS]", default="",
                   help="print the IR before the named stages")
    p.add_argument("--print-ir-after-all", action="store_true", help="print the IR to stderr after every stage")
    p.add_argument("--print-ir-after", metavar="PASS[,PASS]", default="", help="print the IR after the named stages")
    p.add_argument("--dump-dir", metavar="DIR", help="write the IR after every stage into DIR (numbered files)")
    p.add_argument("--time-passes", action="store_true",
                   help="print to stderr each stage's wall time and share of the total (start-up and import too)")
    p.add_argument("--verify-each", action="store_true",
                   help="verify the IR after every stage (default: after the last; slower, names the pass that "
                        "broke the IR)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress (a bar on a terminal, else a line per stage) and no summary on stderr")
    p.set_defaults(run=run)


def add_model_options(p: argparse.ArgumentParser) -> None:
    """The options `compile` and `demo` share."""
    p.add_argument("--model", metavar="DIR", default=None, help="checkpoint directory (default: the bundled model)")
    p.add_argument("--seq-len", type=int, default=None, metavar="L",
                   help="tokens of the prefill program (default 64, fewer where the target's buffer is small: "
                        "see compiler.compile.default_seq_len)")
    p.add_argument("--target", default="vc709", metavar="NAME|FILE", help="target preset or .toml/.json file")
    p.add_argument("--calibration-text", metavar="FILE", default=None, help="text whose start calibrates the ranges")
    p.add_argument("--calibration", choices=("random",), default=None,
                   help="random: calibrate on seeded random tokens (instead of a text)")
    p.add_argument("--calibration-windows", type=int, default=CALIBRATION_WINDOWS, metavar="N",
                   help=f"windows of --seq-len tokens to calibrate on (default {CALIBRATION_WINDOWS})")
    p.add_argument("--tile-kib", type=int, default=0, metavar="KIB",
                   help="on-chip budget of one streamed weight tile or state chunk (0: 1/16 of the buffer)")
    p.add_argument("--prefetch", type=int, default=DEFAULT_PREFETCH, metavar="N",
                   help=f"weight tiles loaded ahead (default {DEFAULT_PREFETCH})")
    p.add_argument("--batch", type=int, default=1, metavar="B",
                   help="also a decode program advancing B sequences by a token each, the weights read once for "
                        "all (`fastmamba run --prompt A --prompt B ...`; default 1: none)")


def options_of(args: argparse.Namespace, **extra) -> CompileOptions:
    """The compile options the arguments give (compiler.compile.check_options checks their ranges)."""
    seq_len = args.seq_len
    if seq_len is None:
        from fastmamba.compiler.checkpoint import read_config
        from fastmamba.compiler.compile import default_seq_len
        from fastmamba.isa.target import load_target

        seq_len = default_seq_len(read_config(model_dir(args))[0], load_target(args.target))
    return CompileOptions(seq_len=seq_len, target=args.target, calibration_windows=args.calibration_windows,
                          tile_kib=args.tile_kib, prefetch=args.prefetch, batch=args.batch, **extra)


def model_dir(args: argparse.Namespace) -> str:
    from fastmamba.compiler.checkpoint import DEFAULT_MODEL_DIR

    return str(args.model or DEFAULT_MODEL_DIR)


def summary(result) -> str:
    """A few lines on what was compiled."""
    lines = []
    for prog in result.binary.programs:
        ops = sum(len(b.ops) for b in prog.bundles)
        lines.append(f"  program {prog.name}: {len(prog.bundles)} bundles, {ops} operations")
    lines.append(f"  constant image: {len(result.binary.const_image)} bytes")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from fastmamba.compiler.progress import Progress
    from fastmamba.isa.container import write_fmb
    from fastmamba.isa.fileio import check_writable, check_writable_dir
    from fastmamba.isa.target import load_target

    random = args.calibration == "random"
    # The stage names --print-ir-before/after give, before anything is read (the passes' names do not depend on
    # the options or the model).
    check_print_names(compile_pipeline(), print_names(args, "before"), print_names(args, "after"), ("import",))
    if args.print_pipeline:
        sys.stdout.write(model_pipeline(model_dir(args), options_of(args), args.calibration_text, random) + "\n")
        return 0
    if not args.output:
        raise InputError("give the binary to write: -o OUT.fmb")
    check_writable(args.output, "-o ")
    if args.dump_dir:
        check_writable_dir(args.dump_dir, "--dump-dir ")
    options = options_of(args, print_after=print_names(args, "after"), print_before=print_names(args, "before"),
                         dump_dir=args.dump_dir, time_passes=args.time_passes, verify_each=args.verify_each,
                         started=getattr(args, "started", None))
    progress = Progress.open(sys.stderr, "fastmamba compile", quiet=args.quiet)
    result = compile_model(model_dir(args), options, calibration_text=args.calibration_text,
                           calibration_random=random, progress=progress)
    write_fmb(args.output, result.binary, load_target(args.target))
    if not args.quiet:
        sys.stderr.write(f"wrote {args.output}\n{summary(result)}\n")
    return 0
