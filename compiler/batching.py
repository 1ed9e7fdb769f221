"""Generate for several prompts at once through a binary's batched decode step (`fastmamba compile --batch B`).

Place in the flow: under `fastmamba run` with several prompts, beside
compiler/runner.py (one sequence), whose prompt processing, checking and
counters it reuses.

The batched program (compiler/backend/lower_batch.py) is `decode_batch`:
input `tokens` i32 [B], outputs `logits` f32 [B, vocab] and `next_token` i32
[B], states `layers.{i}.conv` i16 [B, K-1, C] and `layers.{i}.ssm` i32
[B, H, P, N]: slot b is index b of each state's leading axis.  A generation:
1. each prompt, one at a time, through the single-sequence programs exactly
   as runner.generate feeds one prompt (its full chunks through `prefill`,
   the rest through `decode`); the logits after its last token give its first
   new token;
2. each sequence's states copied into its slot (unused slots: zeros, token 0,
   their outputs ignored), then max_new_tokens - 1 runs of `decode_batch`,
   each advancing every sequence by the token chosen for it; the states stay
   in their slots from run to run.
With `check` (a GoldenMamba2), phase 1 is checked as runner.generate checks it,
and each batched run against the golden model's `step_batch` over the
sequences, slot by slot: logits, next_token and both states, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fastmamba.compiler.runner import (CheckResult, GenerationResult, Mismatch, PhaseStats, _difference, generate,
                                       interface, sample)
from fastmamba.isa.container import Binary
from fastmamba.isa.errors import FastmambaError, InputError

__all__ = ["BATCH_PROGRAM", "batch_slots", "BatchResult", "generate_batch"]

BATCH_PROGRAM = "decode_batch"  # compiler/backend/lower_batch.py's program (not imported: the runner knows no IR)


def batch_slots(binary: Binary) -> int:
    """The sequences the binary's batched decode step advances at once (its tokens' length); 1 without one."""
    try:
        program = binary.program(BATCH_PROGRAM)
    except (KeyError, InputError, ValueError):
        return 1
    tokens = next((t for t in program.tensors if t.name == "tokens" and t.role == "input"), None)
    if tokens is None or len(tokens.shape) != 1:
        raise InputError(f"not a compiled model: program {BATCH_PROGRAM} needs an input 'tokens' of shape (B,)")
    return tokens.shape[0]


@dataclass
class BatchResult:
    """Each sequence's generation (its prompt's counters in `prefill`; `decode` empty) and the batched runs'."""

    sequences: list[GenerationResult]
    decode: PhaseStats  # the decode_batch runs: tokens = generated tokens fed back, over all sequences
    slots: int  # B of the program
    check: CheckResult | None = None
    steps: int = 0  # decode_batch runs

    @property
    def prefill_seconds(self) -> float:
        return sum(s.prefill.seconds for s in self.sequences)

    def sequence_tokens_per_s(self) -> float:
        """Tokens/s each sequence gets in the batched phase (one token per run)."""
        return self.steps / self.decode.seconds if self.decode.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        from fastmamba.simulator.stats import counters

        out: dict[str, Any] = {
            "batch": self.slots, "steps": self.steps, "decode": self.decode.to_dict(),
            "decode_tokens_per_s": self.decode.tokens_per_s,
            "sequence_tokens_per_s": self.sequence_tokens_per_s(),
            "sequences": [{"prompt_tokens": len(s.prompt_ids), "tokens": list(s.tokens),
                           "prefill": s.prefill.to_dict()} for s in self.sequences],
            "counters": counters(self.decode.counters)}
        if self.check is not None:
            out.update(self.check.to_dict())
        return out


def _choose(logits: np.ndarray, next_token: int, vocab: int, *, greedy: bool, temperature: float, top_k: int,
            rng: np.random.Generator, allowed: int | None) -> int:
    """runner.generate's choice of the next token, for one sequence's row."""
    if not greedy:
        return sample(logits, temperature=temperature, top_k=top_k, rng=rng, allowed=allowed)
    if not 0 <= next_token < vocab:
        raise FastmambaError(f"the device returned next_token {next_token}, outside the vocabulary of {vocab}")
    if allowed is not None and next_token >= allowed:
        scores = np.asarray(logits, np.float64).reshape(-1)[:allowed]
        return int(np.argmax(np.where(np.isnan(scores), -np.inf, scores)))
    return next_token


def generate_batch(backend, prompts: Sequence[Sequence[int]], max_new_tokens: int, *, greedy: bool = True,
                   temperature: float = 1.0, top_k: int = 0, seed: int | None = None, allowed: int | None = None,
                   check=None, progress: Callable[[str], None] | None = None) -> BatchResult:
    """Continue each of `prompts` by `max_new_tokens` tokens (module docstring); at most the binary's B prompts.

    Sequence b samples with its own generator, seeded (seed, b) when `seed` is given."""
    binary = backend.binary
    iface = interface(binary)
    slots = batch_slots(binary)
    if not prompts:
        raise InputError("no prompts given")
    if len(prompts) > slots:
        raise InputError(f"{len(prompts)} prompts, but the binary's batched decode step takes at most {slots} "
                         f"(compile with --batch {len(prompts)} or more)")
    for b, ids in enumerate(prompts):
        if not ids:
            raise InputError(f"prompt {b + 1} is empty: give at least one token")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise InputError(f"max_new_tokens must be a non-negative integer, not {max_new_tokens!r}")
    n = len(prompts)
    rngs = [np.random.default_rng(None if seed is None else (seed, b)) for b in range(n)]
    sequences: list[GenerationResult] = []
    first: list[int] = []
    for b, ids in enumerate(prompts):  # 1. each prompt into its own states, one sequence at a time
        if progress is not None:
            progress(f"prompt {b + 1}/{n}: {len(ids)} tokens")
        result = generate(backend, ids, min(1, max_new_tokens), greedy=greedy, temperature=temperature, top_k=top_k,
                          seed=None if seed is None else int(rngs[b].integers(1 << 31)), allowed=allowed,
                          check=check)
        sequences.append(result)
        first.extend(result.tokens)
    decode = PhaseStats("decode")
    outcome = _merge_checks(sequences) if check is not None else None
    if max_new_tokens <= 1:
        return BatchResult(sequences, decode, slots, outcome, 0)
    program = binary.program(BATCH_PROGRAM)
    descs = {t.name: t for t in program.tensors if t.role == "state"}
    states = {}
    for name, desc in descs.items():  # 2. the states into their slots
        from fastmamba.simulator.runtime import numpy_dtype

        stacked = np.zeros(desc.shape, numpy_dtype(desc.dtype))
        for b, seq in enumerate(sequences):
            stacked[b] = seq.states[name]
        states[name] = stacked
    golden = [list(zip(*(iter(_golden_states(seq.states, iface)),) * 2)) for seq in sequences] \
        if outcome is not None and outcome.bit_exact else None
    tokens = list(first)
    for k in range(1, max_new_tokens):
        feed = np.zeros(slots, np.int32)
        feed[:n] = tokens[-n:]
        run = backend.run(BATCH_PROGRAM, {"tokens": feed, **states})
        missing = [m for m in ("logits", "next_token") if m not in run.outputs] + \
                  [m for m in states if m not in run.states]
        if missing:
            raise FastmambaError(f"program {BATCH_PROGRAM} returned no {', '.join(missing)}")
        states = {name: run.states[name] for name in states}
        decode.add(BATCH_PROGRAM, n, run.stats)
        if golden is not None and outcome is not None and outcome.bit_exact:
            golden = _check_step(check, golden, feed[:n], run.outputs, states, outcome, k - 1, iface)
        logits, nexts = np.asarray(run.outputs["logits"]), np.asarray(run.outputs["next_token"]).reshape(-1)
        chosen = [_choose(logits[b], int(nexts[b]), iface.vocab, greedy=greedy, temperature=temperature,
                          top_k=top_k, rng=rngs[b], allowed=allowed) for b in range(n)]
        for b, token in enumerate(chosen):
            sequences[b].tokens.append(token)
        tokens.extend(chosen)
        if progress is not None and k % 16 == 0:
            progress(f"decode_batch: {k + 1}/{max_new_tokens} tokens per sequence, {decode.cycles:,} cycles")
    for b, seq in enumerate(sequences):
        seq.states = {name: states[name][b] for name in states}
    return BatchResult(sequences, decode, slots, outcome, max_new_tokens - 1)


def _golden_states(states: dict[str, np.ndarray], iface) -> list[np.ndarray]:
    """A sequence's device states (checked equal to the golden model's) as the golden model holds them."""
    return [np.asarray(states[t.name], np.int64) for t in iface.states]


def _merge_checks(sequences: list[GenerationResult]) -> CheckResult:
    """The prompt phase's checks of all sequences as one result (the first sequence's mismatch, if any)."""
    out = CheckResult()
    for seq in sequences:
        assert seq.check is not None
        out.runs_checked += seq.check.runs_checked
        if not seq.check.bit_exact and out.bit_exact:
            out.bit_exact, out.mismatch = False, seq.check.mismatch
    return out


def _check_step(golden, states: list, ids: np.ndarray, outputs, device_states, outcome: CheckResult, step: int,
                iface):
    """Compare one decode_batch run with the golden model's step_batch, slot by slot; the golden states after it."""
    logits, new = golden.step_batch(ids, states)
    outcome.runs_checked += 1
    pairs = [("logits", np.asarray(outputs["logits"])[:len(ids)], np.asarray(logits, np.float32)),
             ("next_token", np.asarray(outputs["next_token"]).reshape(-1)[:len(ids)],
              np.argmax(logits, axis=1).astype(np.int64))]
    for i, (conv, ssm) in enumerate(zip(iface.states[0::2], iface.states[1::2])):
        for desc, j in ((conv, 0), (ssm, 1)):
            pairs.append((desc.name, device_states[desc.name][:len(ids)], np.stack([s[i][j] for s in new])))
    for name, device, want in pairs:
        diff = _difference(device, want)
        if diff is not None:
            outcome.bit_exact = False
            outcome.mismatch = Mismatch(step, BATCH_PROGRAM, (step, step + 1), name, diff[1], diff[0],
                                        f"a batched run over {len(ids)} sequences; {diff[2]}".rstrip("; "))
            return None
    return new

