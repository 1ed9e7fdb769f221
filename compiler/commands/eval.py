"""`fastmamba eval`: bits per byte and perplexity of a model on held-out text.

Place in the flow: a command-line leaf.  It measures *schemes* (ways of
running the model) on the tail of a text file: "fp32", the reference of
compiler/reference.py, and the quantized ones (w8a8_rtn, w8a8_hadamard_linear,
fastmamba, accelerator), which compiler/quant/evaluate.py builds after one
calibration; each one's result becomes a key of the `--json` object, measured
by the same `measure`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastmamba.isa.errors import InputError

HELP = "bits per byte and perplexity of a model on the tail of a text file"
DESCRIPTION = """\
Measure how well the model predicts held-out text: the last --tail-fraction
of --text (cut at byte offset floor(size * (1 - F)), moved forward to a UTF-8
character boundary).  The tail is tokenized and read once, from a zero state,
as one continuous sequence; every token after the first is scored by the
model's probability for it given all tail tokens before it.

  bits per byte = total -log2 p over the scored tokens / UTF-8 bytes they cover
  perplexity    = 2 ** (total -log2 p / number of scored tokens), per token

For a byte-level model (the bundled one) tokens are bytes, so the perplexity
is per byte and equals 2 ** bits_per_byte.  For a model with a tokenizer.json,
bits per byte divides by the bytes of the scored text (the tail less its first
token) and the perplexity is per token.

Schemes measured (the paper's Table II ablation), in this order:
  fp32                  the FP32 reference Mamba2 (sequential recurrence)
  w8a8_rtn              linear layers W8A8, round to nearest, no rotation (NormalQ)
  w8a8_hadamard_linear  linear layers W8A8 after block Hadamard rotations (FastMamba-LQ)
  fastmamba             that, plus power-of-two fixed-point conv1d and SSM with the
                        first-order exp and softplus approximations (FastMamba)
The quantized schemes run the golden quantized model (compiler/quant/golden.py),
calibrated on the first --calibration-bytes of --text before the tail.
--json prints {"fp32": {"bits_per_byte": ..., "perplexity": ..., ...}, ...}.
--outliers adds, for every linear layer's input, the ratio of the largest
channel's absolute max to the median channel's, before and after the rotation.
--inject-outliers N first makes N input channels of every linear layer 32 times
larger (norm weight x32, weight column /32: the same FP32 function) and keeps the
norm weights unfolded, as models with outlier channels are.
Progress goes to stderr."""

SEGMENT_TOKENS = 4096  # tokens per prefill call; the state carries across segments, so results do not depend on it
PROGRESS_EVERY_S = 5.0

# A prefill function: (tokens [1, L], states or None) -> (logits [1, L, vocab], states).
Prefill = Callable[..., tuple]


def _fp32_scheme(config, weights) -> Prefill:
    from fastmamba.compiler.reference import Mamba2Reference

    return Mamba2Reference(config, weights).prefill


# Scheme name -> builder (config, WeightStore) -> prefill function.  The order is the report's order.
SCHEMES: dict[str, Callable[..., Prefill]] = {"fp32": _fp32_scheme}
# With the quantized schemes, which need calibration text (compiler/quant/evaluate.py).
DEFAULT_SCHEMES = ("fp32", "w8a8_rtn", "w8a8_hadamard_linear", "fastmamba")
ALL_SCHEMES = (*DEFAULT_SCHEMES, "accelerator")  # accelerator: fastmamba + W8A8 head, as `fastmamba compile` runs it


@dataclass(frozen=True)
class Measurement:
    bits_per_byte: float
    perplexity: float
    total_bits: float
    tokens_scored: int
    bytes_scored: int
    seconds: float

    def as_dict(self) -> dict:
        return {"bits_per_byte": self.bits_per_byte, "perplexity": self.perplexity, "total_bits": self.total_bits,
                "tokens_scored": self.tokens_scored, "bytes_scored": self.bytes_scored, "seconds": round(self.seconds,
                                                                                                         3)}


def text_tail(data: bytes, fraction: float) -> bytes:
    """The last `fraction` of `data`, starting at a UTF-8 character boundary."""
    start = int(len(data) * (1.0 - fraction))
    while start < len(data) and 0x80 <= data[start] < 0xC0:  # a continuation byte: not a character start
        start += 1
    return data[start:]


def total_bits(prefill: Prefill, ids: list[int], progress: Callable[[int, int], None] | None = None) -> float:
    """Sum of -log2 p(ids[i] | ids[:i]) for i >= 1, the sequence read in segments with the state carried."""
    import torch

    tokens = torch.tensor(ids, dtype=torch.int64)
    nats = 0.0
    states = None
    previous = None  # log-probabilities after the last token of the previous segment
    for start in range(0, len(ids), SEGMENT_TOKENS):
        chunk = tokens[start:start + SEGMENT_TOKENS]
        logits, states = prefill(chunk[None], states)
        logp = torch.log_softmax(logits[0].double(), dim=-1)
        if previous is not None:
            nats -= float(previous[chunk[0]])
        nats -= float(logp[:-1].gather(1, chunk[1:, None]).sum())
        previous = logp[-1]
        if progress is not None:
            progress(start + len(chunk), len(ids))
    return nats / math.log(2)


def measure(prefill: Prefill, tokenizer, tail: bytes, progress=None) -> Measurement:
    """Bits per byte and perplexity of one scheme on the tail text."""
    t0 = time.perf_counter()
    if tokenizer.is_byte_level:
        ids = list(tail)
        bytes_scored = len(ids) - 1
    else:
        try:
            text = tail.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"--text is not UTF-8 (byte {exc.start} of the tail); the model's tokenizer needs "
                             "text") from None
        ids = tokenizer.encode(text)
        bytes_scored = len(tail) - len(tokenizer.decode(ids[:1]).encode("utf-8"))
    if len(ids) < 2 or bytes_scored < 1:
        raise InputError(f"the tail of --text holds {len(ids)} token(s); at least 2 are needed (raise --tail-fraction)")
    bits = total_bits(prefill, ids, progress)
    tokens_scored = len(ids) - 1
    return Measurement(bits_per_byte=bits / bytes_scored, perplexity=2.0 ** (bits / tokens_scored), total_bits=bits,
                       tokens_scored=tokens_scored, bytes_scored=bytes_scored, seconds=time.perf_counter() - t0)


def _progress_printer(scheme: str) -> Callable[[int, int], None]:
    t0 = time.perf_counter()
    last = [t0]

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if now - last[0] >= PROGRESS_EVERY_S or (done == total and now - t0 >= PROGRESS_EVERY_S):
            last[0] = now
            print(f"fastmamba eval: {scheme}: {done}/{total} tokens, {now - t0:.0f} s", file=sys.stderr, flush=True)

    return progress


def _tail_fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"--tail-fraction must be a number in (0, 1], not {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise InputError(f"--tail-fraction must lie in (0, 1], not {text}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", metavar="DIR", default=None,
                   help="model directory (transformers or mamba_ssm layout; default: the bundled model)")
    p.add_argument("--text", metavar="FILE", required=True, help="text file whose tail is measured")
    p.add_argument("--tail-fraction", metavar="F", default="0.1",
                   help="fraction of FILE at its end to measure, in (0, 1] (default 0.1)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--schemes", metavar="LIST", default=",".join(DEFAULT_SCHEMES),
                   help=f"comma-separated schemes to measure (default: {','.join(DEFAULT_SCHEMES)}; also: accelerator, "
                        f"fastmamba with the LM head W8A8 as the compiled binary runs it)")
    p.add_argument("--calibration-bytes", metavar="N", type=int, default=4096,
                   help="bytes at the start of FILE (before the tail) to calibrate on (default 4096)")
    p.add_argument("--outliers", action="store_true", help="report the outlier-channel ratios of the linear inputs")
    p.add_argument("--inject-outliers", metavar="N", type=int, default=0,
                   help="inject N outlier channels into every linear input first (default 0: none)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    fraction = _tail_fraction(args.tail_fraction)
    text_path = Path(args.text)
    if not text_path.is_file():
        raise InputError(f"--text file not found: {text_path}" if not text_path.exists() else "--text is not a file: "
                                                                                              f"{text_path}")
    try:
        data = text_path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read --text {text_path}: {exc.strerror}") from None

    from fastmamba.compiler.checkpoint import DEFAULT_MODEL_DIR, load_model
    from fastmamba.compiler.reference import one_thread
    from fastmamba.compiler.tokenizer import load_tokenizer

    wanted = [name for name in args.schemes.split(",") if name]
    unknown = sorted(set(wanted) - set(ALL_SCHEMES))
    if unknown or not wanted:
        raise InputError(f"--schemes: unknown scheme(s) {', '.join(unknown) or '(none given)'} (choose from "
                         f"{', '.join(ALL_SCHEMES)})")
    if args.calibration_bytes < 1 or args.inject_outliers < 0:
        raise InputError("--calibration-bytes must be positive and --inject-outliers non-negative")
    model_dir = args.model if args.model is not None else DEFAULT_MODEL_DIR
    config, weights = load_model(model_dir)
    tokenizer = load_tokenizer(config, model_dir)
    tail = text_tail(data, fraction)

    from fastmamba.compiler.quant.evaluate import calibration_ids, inject_outliers, quant_scheme_builders

    if args.inject_outliers:
        weights = inject_outliers(config, weights, channels=args.inject_outliers)
    calib, calib_bytes = calibration_ids(data, len(data) - len(tail), args.calibration_bytes, tokenizer)
    recorded: dict = {}
    builders = {**SCHEMES, **quant_scheme_builders(calib, fold_norms=not args.inject_outliers,
                                                   on_calibrated=lambda r: recorded.update(recorder=r))}
    schemes = {name: builders[name] for name in ALL_SCHEMES if name in wanted}
    report: dict = {"model": str(model_dir), "text": str(text_path), "tail_fraction": fraction, "tail_bytes": len(tail),
                    "tokenizer": "bytes" if tokenizer.is_byte_level else "tokenizer.json",
                    "calibration_bytes": calib_bytes,
                    "injected_outlier_channels": args.inject_outliers}
    with one_thread():
        for scheme, build in schemes.items():
            report[scheme] = measure(build(config, weights), tokenizer, tail, _progress_printer(scheme)).as_dict()
        if args.outliers:
            if "recorder" not in recorded:
                builders["fastmamba"](config, weights)  # calibrates
            report["outliers"] = recorded["recorder"].outlier_ratios()

    if args.json:
        print(json.dumps(report, indent=2))
    else:
        unit = "byte" if tokenizer.is_byte_level else "token"
        print(f"{report['text']}: last {fraction:g} ({len(tail)} bytes), model {report['model']}")
        for scheme in schemes:
            m = report[scheme]
            print(f"{scheme}: {m['bits_per_byte']:.4f} bits/byte, perplexity {m['perplexity']:.4f} per {unit} "
                  f"({m['tokens_scored']} tokens scored, {m['seconds']:.1f} s)")
        for site, r in report.get("outliers", {}).items():
            print(f"outliers {site}: largest/median channel max {r['before']:.2f} before, {r['after']:.2f} after "
                  "rotation")
    return 0
