"""`fastmamba run`: generate text with a compiled model (.fmb) on the simulator, with counters and an optional check.

Place in the flow: the command-line face of `compiler.runner` over
`simulator.runtime.SimulatorBackend`.  Reads the binary and its metadata
(model directory, config, target, quantization plan), the model's tokenizer,
and, with --check, the model's weights for the golden model
(`compiler.quant.golden`).  stdout gets the text and the counters table, or
one JSON object; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from fastmamba.compiler.commands.generate import _int_at_least, prompt_text
from fastmamba.compiler.runner import BACKENDS
from fastmamba.compiler.tokenizer import UNRENDERABLE
from fastmamba.isa.errors import FastmambaError, InputError
from fastmamba.compiler.errors import ModelError

HELP = "generate text with a compiled model (.fmb) on the simulator (or the RTL)"
DESCRIPTION = """\
Continue --prompt with a binary from `fastmamba compile`, running its
`prefill` and `decode` programs on the instruction-level simulator (with
--backend rtl on the RTL machine of hardware/ in Verilator, docs/RTL.md, for
a target it builds for such as `small`; the counters then add its clock
cycles, `rtl_cycles`): full chunks of the prompt through prefill, the rest of
it token by token through decode, then one decode run per generated token.
--greedy takes the device's
argmax (`next_token`); otherwise tokens are drawn from softmax(logits /
--temperature) among the --top-k largest.  Prints the prompt and its
continuation, then per phase (prefill = the prompt, decode = the generated
tokens fed back) the cycles, the time at the target's clock, tokens/s, the
utilization of each unit and the DDR traffic.

The model directory recorded in the binary (or --model) supplies the
tokenizer and, for --check, the weights: --check runs the golden quantized
model beside the device and compares the logits and every recurrent state
after each program run, bit for bit; a difference exits with status 1 naming
the first one.

The text streams: the prompt, then each token's text as soon as it is chosen;
the counters follow once generation ends (with --json only the one JSON object
is printed, at the end).  Ctrl-C keeps what was printed (exit status 130).

Several prompts (--prompt A --prompt B ..., or --prompts FILE, one a line)
need a binary compiled with --batch B (at least as many as the prompts): each
prompt is fed through prefill/decode into its own states, then every step of
the `decode_batch` program advances all of them by one token, the weights
read once per step for all.  Each continuation is printed at the end, headed
by its number, then each prompt's counters and the batched steps' aggregate
and per-sequence tokens/s; --check compares every sequence with the golden
model bit for bit.
""" + textwrap.fill(UNRENDERABLE, 78)

PROGRESS_EVERY = 16
"""Runs between progress lines on stderr."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("run", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("binary", metavar="MODEL.fmb", help="binary written by `fastmamba compile`")
    p.add_argument("--prompt", metavar="TEXT", action="append", default=None,
                   help="text to continue (not empty); several --prompt: generate for all at once through the "
                        "binary's batched decode step (`fastmamba compile --batch B`, at most B prompts)")
    p.add_argument("--prompts", metavar="FILE", default=None,
                   help="the prompts, one a line (instead of --prompt)")
    p.add_argument("--max-new-tokens", metavar="N", required=True, help="number of tokens to generate (>= 0)")
    p.add_argument("--greedy", action="store_true", help="take the device's most likely token instead of sampling")
    p.add_argument("--temperature", metavar="T", default=None, help="sampling temperature (> 0; default 1)")
    p.add_argument("--top-k", metavar="K", default=None, help="sample among the K most likely tokens (default 0: all)")
    p.add_argument("--seed", metavar="S", default=None, help="random seed for sampling (default: unseeded)")
    p.add_argument("--json", action="store_true", help="print one JSON object (text, tokens, counters) instead")
    p.add_argument("--check", action="store_true",
                   help="compare every run with the golden model; exit 1 at the first difference")
    p.add_argument("--model", metavar="DIR", default=None,
                   help="model directory (default: the one recorded in the binary)")
    p.add_argument("--target", metavar="NAME|FILE", default=None,
                   help="target configuration (default: the one recorded in the binary); it must be the target "
                        "the binary was built for")
    p.add_argument("--backend", choices=BACKENDS, default="sim",
                   help="sim: the instruction-level simulator (default); rtl: the RTL machine of hardware/ in "
                        "Verilator (docs/RTL.md; a target it builds for, e.g. small; adds RTL clock cycles)")
    p.set_defaults(run=run)


def _positive_float(text: str, flag: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{flag} must be a number, not {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"{flag} must be a positive number, not {text}")
    return value


def model_directory(meta: dict, given: str | None) -> Path | None:
    """--model, else the directory recorded in the binary, else the bundled model if it was that; None if gone."""
    if given is not None:
        if not Path(given).is_dir():
            raise InputError(f"--model {given}: no such directory")
        return Path(given)
    recorded = Path(meta["model"])
    if recorded.is_dir():
        return recorded
    if meta.get("bundled") is True:  # compiled from the bundled model of a checkout that has moved since
        from fastmamba.compiler.checkpoint import DEFAULT_MODEL_DIR

        return DEFAULT_MODEL_DIR if DEFAULT_MODEL_DIR.is_dir() else None
    return None


def model_config(meta: dict):
    from fastmamba.compiler.config import Mamba2Config

    try:
        return Mamba2Config(**meta["config"])
    except TypeError as exc:
        raise InputError(f"the binary's metadata: config: {exc}") from None


def open_binary(path: str, model: str | None, target: str | None):
    """The binary at `path` with what running it needs: (binary, its metadata, the model's config, the model
    directory (--model, else the recorded one; None if gone), the target (--target, else the recorded one))."""
    from fastmamba.compiler.runner import read_meta
    from fastmamba.isa.container import read_fmb
    from fastmamba.isa.target import load_target

    binary = read_fmb(path)
    try:
        meta = read_meta(binary)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    config = model_config(meta)
    return (binary, meta, config, model_directory(meta, model),
            load_target(target if target is not None else meta["target"]))


def binary_tokenizer(meta: dict, config, model_dir: Path | None):
    """The tokenizer of the binary's model: the directory's, or the byte-level one when it needs none."""
    from fastmamba.compiler.tokenizer import load_tokenizer

    try:
        return load_tokenizer(config, model_dir)
    except ModelError:
        if model_dir is not None:
            raise
        raise InputError(f"the model directory recorded in the binary ({meta['model']}) does not exist and the model "
                         f"is not byte-level: give --model DIR for its tokenizer") from None


def encode_prompt(tokenizer, config, prompt: str, what: str = "--prompt") -> list[int]:
    """The prompt's token ids: at least one, each in the model's vocabulary (InputError naming `what`)."""
    from fastmamba.compiler.tokenizer import check_ids

    ids = tokenizer.encode(prompt)
    if not ids:
        raise InputError(f"{what} encodes to no tokens")
    check_ids(ids, config, what)
    return ids


def build_golden(meta: dict, config, model_dir: Path | None, target):
    """The golden quantized model the binary was compiled to match: meta's plan, the directory's weights."""
    from fastmamba.compiler.checkpoint import load_model
    from fastmamba.compiler.quant.golden import GoldenMamba2
    from fastmamba.compiler.quant.plan_io import plan_from_dict

    if model_dir is None:
        raise InputError(f"--check needs the model's weights, but the model directory recorded in the binary "
                         f"({meta['model']}) does not exist: give --model DIR")
    loaded, weights = load_model(model_dir)
    if loaded != config:
        differ = [k for k, v in config.to_dict().items() if loaded.to_dict().get(k) != v]
        raise InputError(f"the model in {model_dir} is not the one the binary was compiled from "
                         f"(config differs in {', '.join(differ)})")
    try:
        plan = plan_from_dict(meta["plan"])
    except ValueError as exc:
        raise InputError(f"the binary's metadata: {exc}") from None
    try:
        return GoldenMamba2(config, weights, plan, target)
    except ValueError as exc:
        raise InputError(f"cannot build the golden model from the binary's metadata: {exc}") from None


class Streamer:
    """The generated text as tokens arrive: the prompt before the first one, each token's text flushed at once.

    `out` None (--json): nothing is printed, the text is only collected (`text`)."""

    def __init__(self, stream, prompt: str, out):
        self.stream, self.prompt, self.out = stream, prompt, out
        self.pieces: list[str] = []
        self.started = False

    def _write(self, piece: str) -> None:
        self.pieces.append(piece)
        if self.out is None:
            return
        if not self.started:  # after the prompt's progress lines, so none lands inside the text
            self.out.write(self.prompt)
            self.started = True
        self.out.write(piece)
        self.out.flush()

    def feed(self, token: int) -> None:
        self._write(self.stream.feed(token))

    def finish(self) -> None:
        """The bytes of a partial character, then the newline that ends the text."""
        self._write(self.stream.flush())
        if self.out is not None:
            self.out.write("\n")
            self.out.flush()

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def _progress(text: Streamer):
    """Progress lines on stderr every PROGRESS_EVERY runs: the prompt's, and the generated tokens' when stdout is
    not the terminal (there the streamed text shows the progress, and a line on stderr would land inside it)."""
    quiet_decode = bool(text.out is not None and text.out.isatty())

    def progress(event) -> None:
        if event.phase_runs % PROGRESS_EVERY or (event.phase == "decode" and quiet_decode):
            return
        what = "prompt tokens" if event.phase == "prefill" else "tokens generated"
        print(f"{event.phase}: {event.done}/{event.total} {what}, {event.phase_runs} runs, {event.cycles:,} cycles",
              file=sys.stderr, flush=True)

    return progress


@dataclass(frozen=True)
class Sampling:
    """How the next token is chosen: the device's argmax (greedy) or a draw (temperature, top-k, seed)."""

    greedy: bool = True
    temperature: float = 1.0
    top_k: int = 0
    seed: int | None = None


def prompts_of(args: argparse.Namespace) -> list[str]:
    """The prompts of --prompt (repeated) or --prompts FILE (one a line), each checked non-empty UTF-8."""
    if (args.prompt is None) == (args.prompts is None):
        raise InputError("give the text to continue: --prompt TEXT (repeatable) or --prompts FILE, one of them")
    if args.prompt is not None:
        flags = ["--prompt"] if len(args.prompt) == 1 else [f"--prompt {n + 1}" for n in range(len(args.prompt))]
        return [prompt_text(text, flag) for text, flag in zip(args.prompt, flags)]
    try:
        with open(args.prompts, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise InputError(f"cannot read --prompts {args.prompts}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"--prompts {args.prompts} is not UTF-8 text: byte 0x{exc.object[exc.start]:02x} at offset "
                         f"{exc.start}") from None
    if not lines:
        raise InputError(f"--prompts {args.prompts}: the file has no prompts (one a line)")
    return [prompt_text(text, f"--prompts {args.prompts} line {n + 1}") for n, text in enumerate(lines)]


def run(args: argparse.Namespace) -> int:
    prompts = prompts_of(args)
    max_new = _int_at_least(args.max_new_tokens, "--max-new-tokens", 0)
    seed = _int_at_least(args.seed, "--seed", 0) if args.seed is not None else None
    top_k = _int_at_least(args.top_k, "--top-k", 0) if args.top_k is not None else 0
    temperature = _positive_float(args.temperature, "--temperature") if args.temperature is not None else 1.0
    if args.greedy and (args.temperature is not None or args.top_k is not None):
        raise InputError("--temperature and --top-k shape sampling; --greedy does not sample")
    sampling = Sampling(args.greedy, temperature, top_k, seed)
    if len(prompts) > 1:
        from fastmamba.compiler.commands.run_batch import run_batch

        return run_batch(args.binary, prompts, max_new, sampling, as_json=args.json, check=args.check,
                         model=args.model, target=args.target, backend=args.backend)
    return run_binary(args.binary, prompts[0], max_new, sampling, as_json=args.json, check=args.check,
                      model=args.model, target=args.target, backend=args.backend)


def run_binary(path: str, prompt: str, max_new: int, sampling: Sampling, *, as_json: bool = False,
               check: bool = False, model: str | None = None, target: str | None = None,
               backend: str = "sim") -> int:
    """Generate from the binary at `path` and print the text and counters (as `fastmamba run` does)."""
    from fastmamba.compiler.runner import generate, make_backend
    from fastmamba.compiler.tokenizer import allowed_ids

    prompt_text(prompt)
    binary, meta, config, model_dir, machine = open_binary(path, model, target)
    device = make_backend(backend, machine)
    device.load(binary)
    if backend == "rtl":  # before any long work: every program's operations are ones the RTL has
        for name in ("prefill", "decode"):
            device.check(name)
    tokenizer = binary_tokenizer(meta, config, model_dir)
    ids = encode_prompt(tokenizer, config, prompt)
    golden = build_golden(meta, config, model_dir, machine) if check else None

    allowed = allowed_ids(tokenizer, config)  # never choose ids the tokenizer cannot render (UNRENDERABLE)
    text = Streamer(tokenizer.stream(), prompt, None if as_json else sys.stdout)
    try:
        result = generate(device, ids, max_new, greedy=sampling.greedy, temperature=sampling.temperature,
                          top_k=sampling.top_k, seed=sampling.seed, allowed=allowed, check=golden,
                          progress=None if as_json else _progress(text), on_token=text.feed)
    except KeyboardInterrupt:
        text.finish()  # what was printed stays, ended by a newline (the CLI exits 130)
        raise
    text.finish()

    if as_json:
        doc = {"binary": str(path), "model": str(model_dir) if model_dir else meta["model"],
               "target": machine.name, "seq_len": meta["seq_len"], "greedy": sampling.greedy,
               "prompt": prompt, "text": text.text, **result.to_dict()}
        print(json.dumps(doc, indent=2))
    else:
        print()
        print(result.format_table())
        if result.check is not None and result.check.bit_exact:
            print(f"\ncheck: bit exact with the golden model ({result.check.runs_checked} runs compared)")
    if result.check is not None and not result.check.bit_exact:
        raise FastmambaError(f"--check: not bit exact: {result.check.mismatch.describe()}")
    return 0
