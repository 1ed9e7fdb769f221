"""`fastmamba generate`: continue a prompt with the FP32 reference model.

Place in the flow: a command-line leaf over compiler.checkpoint (loading),
compiler.tokenizer and compiler.reference (prefill of the prompt, then one
decode step per new token).  Prints the prompt and its continuation to
stdout as tokens are produced.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

import textwrap

from fastmamba.compiler.tokenizer import UNRENDERABLE
from fastmamba.isa.errors import InputError

HELP = "continue a prompt with the FP32 reference model"
DESCRIPTION = """\
Continue --prompt with the FP32 reference Mamba2 (the sequential recurrence of
compiler/reference.py): a prefill over the prompt, then one decode step per
new token.  Sampling draws from softmax(logits) unless --greedy.  Byte-level
models (no tokenizer.json, vocabulary of 256..512) read the prompt's UTF-8
bytes as tokens.  The prompt and the continuation go to stdout, each token's
text as soon as it is chosen; Ctrl-C keeps what was printed (exit status 130).
""" + textwrap.fill(UNRENDERABLE, 78)


def _int_at_least(text: str, flag: str, minimum: int, maximum: int = 2**63 - 1) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InputError(f"{flag} must be an integer, not {text!r}") from None
    if not minimum <= value <= maximum:
        raise InputError(f"{flag} must lie in [{minimum}, {maximum}], not {value}")
    return value


def prompt_text(text: str, flag: str = "--prompt") -> str:
    """`text` (an argument, decoded by Python with surrogateescape) if it is non-empty UTF-8 text, else an
    InputError naming the first byte that is not UTF-8 (the shell passed raw bytes)."""
    if not text:
        raise InputError(f"{flag} is empty: give at least one character to start from")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raw = text[exc.start:exc.end].encode("utf-8", "surrogateescape")
        raise InputError(f"{flag} is not UTF-8 text: byte 0x{raw[0]:02x} at offset "
                         f"{len(text[:exc.start].encode('utf-8', 'surrogateescape'))}") from None
    return text


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("generate", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", metavar="DIR", default=None,
                   help="model directory (transformers or mamba_ssm layout; default: the bundled model)")
    p.add_argument("--prompt", metavar="TEXT", required=True, help="text to continue (not empty)")
    p.add_argument("--max-new-tokens", metavar="N", required=True, help="number of tokens to generate (>= 0)")
    p.add_argument("--greedy", action="store_true", help="take the most likely token instead of sampling")
    p.add_argument("--seed", metavar="S", default=None, help="random seed for sampling (default: unseeded)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    max_new = _int_at_least(args.max_new_tokens, "--max-new-tokens", 0)
    seed = _int_at_least(args.seed, "--seed", 0) if args.seed is not None else None
    prompt_text(args.prompt)

    import torch

    from fastmamba.compiler.checkpoint import DEFAULT_MODEL_DIR, load_model
    from fastmamba.compiler.reference import Mamba2Reference, one_thread
    from fastmamba.compiler.tokenizer import allowed_ids, check_ids, load_tokenizer

    model_dir = args.model if args.model is not None else DEFAULT_MODEL_DIR
    config, weights = load_model(model_dir)
    tokenizer = load_tokenizer(config, model_dir)
    ids = tokenizer.encode(args.prompt)
    if not ids:
        raise InputError("--prompt encodes to no tokens")
    check_ids(ids, config, "--prompt")
    model = Mamba2Reference(config, weights)
    generator = torch.Generator()
    if seed is not None:
        generator.manual_seed(seed)
    else:
        generator.seed()

    out = sys.stdout
    out.write(args.prompt)
    out.flush()
    stream = tokenizer.stream()
    try:
        with one_thread():
            for token in continuation(model, ids, max_new, allowed_ids(tokenizer, config),
                                      None if args.greedy else generator):
                out.write(stream.feed(token))
                out.flush()
    finally:  # Ctrl-C too: what was printed stays, ended by a newline
        out.write(stream.flush() + "\n")
        out.flush()
    return 0


def continuation(model, ids: list[int], max_new: int, allowed: int, generator=None) -> Iterator[int]:
    """The next `max_new` token ids after `ids`: sampled with `generator`, or greedy when it is None.

    Only ids below `allowed` are drawn.  One prefill over `ids`, then a decode step per token.
    """
    import torch

    logits, states = model.prefill(torch.tensor([ids]))
    logits = logits[:, -1]
    for i in range(max_new):
        scores = logits[0, :allowed].double()
        if generator is None:
            token = int(torch.argmax(scores))
        else:
            token = int(torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=generator))
        yield token
        if i + 1 < max_new:
            logits, states = model.decode_step(torch.tensor([token]), states)
