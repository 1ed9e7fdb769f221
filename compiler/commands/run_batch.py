"""`fastmamba run` with several prompts: batched generation through the binary's `decode_batch` program.

Place in the flow: the command-line face of compiler/batching.py, called by
compiler/commands/run.py when more than one prompt is given.  Every check on
the input (the prompts against the compiled batch, each prompt's tokens)
happens before the first program runs.
"""

from __future__ import annotations

import json
import sys

from fastmamba.compiler.commands.run import Sampling, binary_tokenizer, build_golden, encode_prompt, open_binary
from fastmamba.isa.errors import FastmambaError, InputError

__all__ = ["run_batch", "format_batch"]


def run_batch(path: str, prompts: list[str], max_new: int, sampling: Sampling, *, as_json: bool = False,
              check: bool = False, model: str | None = None, target: str | None = None,
              backend: str = "sim") -> int:
    """Generate for every prompt at once from the binary at `path`, print each text and the counters."""
    from fastmamba.compiler.batching import BATCH_PROGRAM, batch_slots, generate_batch
    from fastmamba.compiler.runner import interface, make_backend
    from fastmamba.compiler.tokenizer import allowed_ids

    binary, meta, config, model_dir, machine = open_binary(path, model, target)
    try:
        interface(binary)
        slots = batch_slots(binary)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    if len(prompts) > slots:
        raise InputError(f"{len(prompts)} prompts, but {path} advances at most {slots} sequence(s) at once: compile "
                         f"it with --batch {len(prompts)} (or more)")
    tokenizer = binary_tokenizer(meta, config, model_dir)
    ids = [encode_prompt(tokenizer, config, prompt, f"prompt {n + 1}") for n, prompt in enumerate(prompts)]
    device = make_backend(backend, machine)
    device.load(binary)
    if backend == "rtl":  # before any long work: every program's operations are ones the RTL has
        for name in ("prefill", "decode", BATCH_PROGRAM):
            device.check(name)
    golden = build_golden(meta, config, model_dir, machine) if check else None
    allowed = allowed_ids(tokenizer, config)

    def progress(line: str) -> None:
        if not as_json:
            print(line, file=sys.stderr, flush=True)

    result = generate_batch(device, ids, max_new, greedy=sampling.greedy, temperature=sampling.temperature,
                            top_k=sampling.top_k, seed=sampling.seed, allowed=allowed, check=golden,
                            progress=progress)
    texts = []
    for seq in result.sequences:
        stream = tokenizer.stream()
        texts.append("".join(stream.feed(t) for t in seq.tokens) + stream.flush())
    if as_json:
        doc = {"binary": str(path), "model": str(model_dir) if model_dir else meta["model"], "target": machine.name,
               "seq_len": meta["seq_len"], "greedy": sampling.greedy, "prompts": prompts, "texts": texts,
               **result.to_dict()}
        print(json.dumps(doc, indent=2))
    else:
        for n, (prompt, text) in enumerate(zip(prompts, texts)):
            print(f"--- sequence {n + 1} ---")
            print(prompt + text)
        print()
        print(format_batch(result))
        if result.check is not None and result.check.bit_exact:
            print(f"\ncheck: bit exact with the golden model, every sequence ({result.check.runs_checked} runs "
                  f"compared)")
    if result.check is not None and result.check.mismatch is not None:
        raise FastmambaError(f"--check: not bit exact: {result.check.mismatch.describe()}")
    return 0


def format_batch(result) -> str:
    """Each sequence's prompt counters, then the batched steps' (aggregate and per-sequence tokens/s)."""
    rows = [("sequence", "prompt tokens", "prefill cycles", "prefill ms", "new tokens")]
    for n, seq in enumerate(result.sequences):
        rows.append((str(n + 1), f"{len(seq.prompt_ids):,}", f"{seq.prefill.cycles:,}",
                     f"{seq.prefill.seconds * 1e3:.6g}", f"{len(seq.tokens):,}"))
    widths = [max(len(r[i]) for r in rows) + 2 for i in range(len(rows[0]))]
    lines = ["".join(f"{c:>{w}}" for c, w in zip(r, widths)) for r in rows]
    d = result.decode
    clock = d.counters or next((s.prefill.counters for s in result.sequences if s.prefill.counters), None)
    lines += ["", f"batched decode ({result.slots} slots, {len(result.sequences)} sequences): {result.steps} runs of "
                  f"decode_batch, {d.cycles:,} cycles, {d.seconds * 1e3:.6g} ms, DDR bytes {d.ddr_bytes:,}",
              f"  aggregate: {d.tokens_per_s:,.1f} tokens/s ({d.tokens:,} tokens fed back); per sequence: "
              f"{result.sequence_tokens_per_s():,.1f} tokens/s"]
    if clock is not None:
        lines.append(f"(time at {clock.clock_hz / 1e6:g} MHz; prefill = each prompt through prefill/decode, one "
                     f"sequence at a time)")
    return "\n".join(lines)
