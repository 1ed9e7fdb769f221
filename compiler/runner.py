"""Generate tokens with a compiled model: drive a .fmb's `prefill` and `decode` programs through an ExecutionBackend.

Place in the flow: after `fastmamba compile`, under `fastmamba run`.  The
runner knows the binary only through the contract below and the backend only
through `simulator.runtime.ExecutionBackend`, so the same loop drives the
simulator or a board.

The contract of a compiled binary (`interface` checks it):
    programs `prefill` (L tokens) and `decode` (one token);
    input  `tokens`      i32 (L,) / (1,);
    output `logits`      f32 (1, vocab): the logits of the last position fed;
    output `next_token`  i32 (1,): their argmax;
    states `layers.{i}.conv` i16 (d_conv-1, conv_dim), oldest row first, and
           `layers.{i}.ssm`  i32 (nheads, headdim, d_state), for i in range(n_layer),
           the same in both programs: zeros start a sequence, a run takes them
           and returns them updated;
    meta (`read_meta`): {"format": "fastmamba/1", "model", "bundled", "config",
           "seq_len", "target", "plan"}.

A prompt of n tokens runs `prefill` on its n // L full chunks of L tokens,
then its n mod L remaining tokens one at a time through `decode` (all of them
when n < L); the logits after the last prompt token give the first new token,
and each new token but the last is fed back through `decode`.  Greedy takes
the device's `next_token`; sampling draws from softmax(logits / temperature)
over the top_k largest.  Ids at or above `allowed` (those the tokenizer cannot
render) are never chosen: sampling draws below it, and greedy takes the
argmax of the logits below it when the device's `next_token` is not.

Counters are summed per phase: "prefill" is all prompt processing (the
remainder's decode runs included), "decode" the runs that feed generated
tokens back.  With `check` (a golden model: `run(ids, states)` ->
(logits [n, vocab], [(conv, ssm) per layer])), every run's logits,
next_token and states are compared with the golden model's, bit for bit,
and the first difference is recorded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastmamba.isa.container import Binary, TensorDesc
from fastmamba.isa.errors import FastmambaError, InputError

__all__ = ["META_FORMAT", "PHASES", "BACKENDS", "make_backend", "Interface", "interface", "read_meta", "zero_states",
           "PhaseStats", "Mismatch", "CheckResult", "RunEvent", "GenerationResult", "generate", "sample"]

META_FORMAT = "fastmamba/1"
PHASES = ("prefill", "decode")
META_KEYS: Mapping[str, type] = {"model": str, "config": dict, "seq_len": int, "target": str, "plan": dict}
"""Keys every compiled binary's meta holds (besides "format"), with their JSON types."""

_STATE_KINDS = {"conv": ("i16", 2), "ssm": ("i32", 3)}  # kind -> dtype, rank


# ---------------------------------------------------------------------------
# The contract
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Interface:
    """What the runner reads off a compiled binary: its prefill length, vocabulary and recurrent states."""

    seq_len: int
    vocab: int
    states: tuple[TensorDesc, ...]  # layer by layer: layers.0.conv, layers.0.ssm, layers.1.conv, ...

    @property
    def n_layer(self) -> int:
        return len(self.states) // 2


def _tensor(prog, name: str, role: str, dtype: str, shape: tuple | None) -> TensorDesc:
    desc = next((t for t in prog.tensors if t.name == name), None)
    want = f"{role} {name!r} of dtype {dtype}" + (f" and shape {shape}" if shape else "")
    if desc is None or desc.role != role or desc.dtype != dtype or (shape is not None and desc.shape != shape):
        got = "none" if desc is None else f"{desc.role} of dtype {desc.dtype} and shape {desc.shape}"
        article = "an" if role[0] in "aeiou" else "a"
        raise InputError(f"not a compiled model: program {prog.name} needs {article} {want}, has {got}")
    return desc


def interface(binary: Binary) -> Interface:
    """Check `binary` follows the contract (module docstring); InputError naming the first violation."""
    prefill, decode = binary.program("prefill"), binary.program("decode")
    tokens = _tensor(prefill, "tokens", "input", "i32", None)
    if len(tokens.shape) != 1 or tokens.shape[0] < 1:
        raise InputError("not a compiled model: program prefill's input 'tokens' must have shape (L,), got "
                         f"{tokens.shape}")
    _tensor(decode, "tokens", "input", "i32", (1,))
    shapes = []
    for prog in (prefill, decode):
        logits = _tensor(prog, "logits", "output", "f32", None)
        if len(logits.shape) != 2 or logits.shape[0] != 1 or logits.shape[1] < 1:
            raise InputError(f"not a compiled model: program {prog.name}'s output 'logits' has shape {logits.shape}, "
                             f"not (1, vocab)")
        shapes.append(logits.shape)
        _tensor(prog, "next_token", "output", "i32", (1,))
    if shapes[0] != shapes[1]:
        raise InputError(f"not a compiled model: output 'logits' has shape {shapes[0]} in program prefill, "
                         f"{shapes[1]} in program decode")
    vocab = shapes[0][1]
    states = {t.name: t for t in decode.tensors if t.role == "state"}
    n_layer = len(states) // 2
    kinds = {f"layers.{i}.{kind}": kind for i in range(n_layer) for kind in _STATE_KINDS}
    expected = list(kinds)
    if not states or sorted(states) != sorted(expected):
        raise InputError(f"not a compiled model: program decode's states must be layers.{{i}}.conv and "
                         f"layers.{{i}}.ssm "
                         f"for i = 0..n_layer-1, got {', '.join(sorted(states)) or 'none'}")
    for name, kind in kinds.items():
        dtype, rank = _STATE_KINDS[kind]
        desc = _tensor(decode, name, "state", dtype, None)
        if len(desc.shape) != rank:
            raise InputError(f"not a compiled model: state {name} has shape {desc.shape}, not rank {rank}")
        _tensor(prefill, name, "state", desc.dtype, desc.shape)
    extra = sorted(t.name for t in prefill.tensors if t.role == "state" and t.name not in states)
    if extra:
        raise InputError(f"not a compiled model: program prefill has states decode lacks: {', '.join(extra)}")
    return Interface(tokens.shape[0], vocab, tuple(states[name] for name in expected))


def read_meta(binary: Binary) -> dict[str, Any]:
    """The binary's fastmamba metadata; InputError when it is missing or lacks what the contract names."""
    if not binary.meta:
        raise InputError("the binary has no fastmamba metadata (no meta section): it was not made by "
                         "`fastmamba compile` (an assembled binary runs with `fastmamba sim`)")
    meta = json.loads(binary.meta)  # the container checked it is a JSON object
    if meta.get("format") != META_FORMAT:
        raise InputError(f"the binary's metadata has format {meta.get('format')!r}, this reader knows {META_FORMAT!r}")
    for key, kind in META_KEYS.items():
        value = meta.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            what = "missing" if key not in meta else f"not a JSON {'object' if kind is dict else kind.__name__}"
            raise InputError(f"the binary's metadata: {key!r} is {what}")
    return meta


BACKENDS = ("sim", "rtl")
"""Execution backends by name: the instruction-level simulator, the RTL machine (hardware/) in Verilator."""


def make_backend(kind: str, target):
    """The execution backend `kind` names for `target`; "rtl" is refused in one line for a target the RTL cannot
    be built for (the reason its check gives)."""
    if kind == "rtl":
        from fastmamba.hardware.backend import RtlBackend, check_rtl_target

        check_rtl_target(target)
        return RtlBackend(target)
    if kind != "sim":
        raise InputError(f"unknown backend {kind!r} (choose from {', '.join(BACKENDS)})")
    from fastmamba.simulator.runtime import SimulatorBackend

    return SimulatorBackend(target)


def zero_states(iface: Interface) -> dict[str, np.ndarray]:
    """The states that start a sequence."""
    from fastmamba.simulator.runtime import numpy_dtype

    return {t.name: np.zeros(t.shape, numpy_dtype(t.dtype)) for t in iface.states}


# ---------------------------------------------------------------------------
# Counters per phase
# ---------------------------------------------------------------------------
@dataclass
class PhaseStats:
    """The summed counters (`simulator.stats.Stats`) of one phase's program runs."""

    name: str
    programs: dict[str, int] = field(default_factory=dict)  # program name -> runs
    tokens: int = 0  # tokens fed to the programs
    counters: Any = None  # simulator.stats.Stats, the sum; None before the first run
    rtl_cycles: int | None = None  # the RTL backend's clock count (start to done), summed; None on the simulator

    def add(self, program: str, tokens: int, stats) -> None:
        from fastmamba.simulator.stats import Stats

        if self.counters is None:
            self.counters = Stats(stats.clock_hz)
        self.counters.add(stats)
        if hasattr(stats, "rtl_cycles"):
            self.rtl_cycles = (self.rtl_cycles or 0) + stats.rtl_cycles
        self.programs[program] = self.programs.get(program, 0) + 1
        self.tokens += tokens

    @property
    def runs(self) -> int:
        return sum(self.programs.values())

    @property
    def cycles(self) -> int:
        return self.counters.cycles if self.counters else 0

    @property
    def seconds(self) -> float:
        """Time at the target's clock."""
        return self.counters.seconds if self.counters else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    @property
    def ddr_bytes(self) -> int:
        return self.counters.ddr_bytes_read + self.counters.ddr_bytes_written if self.counters else 0

    def utilization(self) -> dict[str, float]:
        """Busy cycles / cycles per unit."""
        from fastmamba.simulator.stats import UNITS

        return {u: self.counters.utilization(u) if self.counters else 0.0 for u in UNITS}

    def to_dict(self) -> dict[str, Any]:
        from fastmamba.simulator.stats import STALL_CAUSES, UNITS, counters

        c = self.counters
        return {
            "counters": counters(c),  # the unified schema (docs/PROFILE.md); the keys below predate it
            "programs": dict(self.programs), "runs": self.runs, "tokens": self.tokens,
            "cycles": self.cycles, "seconds": self.seconds, "tokens_per_s": self.tokens_per_s,
            "clock_hz": c.clock_hz if c else None,
            "utilization": self.utilization(),
            "busy_cycles": {u: c.busy[u] if c else 0 for u in UNITS},
            "ddr_bytes": self.ddr_bytes,
            "ddr_bytes_read": c.ddr_bytes_read if c else 0, "ddr_bytes_written": c.ddr_bytes_written if c else 0,
            "bundles": c.bundles if c else 0, "ops": c.ops if c else 0, "macs": c.macs if c else 0,
            "stalls": {s: c.stalls[s] if c else 0 for s in STALL_CAUSES},
            **({} if self.rtl_cycles is None else {"rtl_cycles": self.rtl_cycles}),
        }


# ---------------------------------------------------------------------------
# Checking against a golden model
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Mismatch:
    """The first difference between the device and the golden model."""

    step: int  # index of the program run, counting from 0 over the whole generation
    program: str
    positions: tuple[int, int]  # [start, stop) of the token positions that run fed
    tensor: str  # "logits", "next_token" or a state name
    max_abs_diff: float | None  # None when shapes differ or a NaN faces a number
    differing: int  # elements that differ
    detail: str = ""

    def describe(self) -> str:
        parts = [f"max abs diff {self.max_abs_diff:.6g}"] if self.max_abs_diff is not None else []
        parts += [self.detail] if self.detail else []
        return (f"step {self.step} ({self.program}, tokens {self.positions[0]}..{self.positions[1] - 1}): "
                f"{self.tensor} differs from the golden model in {self.differing} element(s), {', '.join(parts)}")

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "program": self.program, "positions": list(self.positions), "tensor": self.tensor,
                "max_abs_diff": self.max_abs_diff, "differing": self.differing, "detail": self.detail}


@dataclass
class CheckResult:
    bit_exact: bool = True
    runs_checked: int = 0  # runs compared before the first mismatch (included); checking stops there
    mismatch: Mismatch | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"bit_exact": self.bit_exact, "runs_checked": self.runs_checked,
                "mismatch": self.mismatch.to_dict() if self.mismatch else None}


def _difference(device: np.ndarray, golden: np.ndarray) -> tuple[int, float | None, str] | None:
    """None when equal (floats: bit for bit, as binary32), else (differing elements, max abs diff or None, detail)."""
    device, golden = np.asarray(device), np.asarray(golden)
    if device.shape != golden.shape:
        return max(device.size, golden.size), None, f"shape {device.shape} vs the golden model's {golden.shape}"
    if device.dtype.kind == "f" and golden.dtype.kind == "f":
        device, golden = device.astype(np.float32), golden.astype(np.float32)
        differs = device.view(np.uint32) != golden.view(np.uint32)
    else:
        differs = device != golden
    count = int(np.count_nonzero(differs))
    if not count:
        return None
    a, b = device[differs].astype(np.float64), golden[differs].astype(np.float64)
    if np.any(np.isnan(a) != np.isnan(b)):
        return count, None, "a NaN where the other has a number"
    both = ~np.isnan(a)
    worst = float(np.abs(a[both] - b[both]).max()) if both.any() else 0.0
    if not math.isfinite(worst):
        return count, None, "an infinity where the other has a finite number"
    if worst == 0:
        return count, worst, "only the sign of zero or NaN payloads differ"
    return count, worst, ""


class _Checker:
    def __init__(self, golden, iface: Interface):
        self.golden, self.iface = golden, iface
        if hasattr(golden, "empty_states"):
            self.states = golden.empty_states()
        else:
            self.states = [(np.zeros(conv.shape, np.int64), np.zeros(ssm.shape, np.int64))
                           for conv, ssm in zip(iface.states[0::2], iface.states[1::2])]
        self.result = CheckResult()

    def compare(self, step: int, program: str, ids: Sequence[int], start: int, outputs: Mapping[str, np.ndarray],
                states: Mapping[str, np.ndarray]) -> None:
        if self.result.mismatch is not None:
            return
        logits, self.states = self.golden.run(np.asarray(ids, np.int64), self.states)
        last = np.asarray(logits)[-1:]
        pairs = [("logits", outputs["logits"], last),
                 ("next_token", outputs["next_token"], np.asarray([np.argmax(last[0])], np.int64))]
        for (conv, ssm), (gconv, gssm) in zip(zip(self.iface.states[0::2], self.iface.states[1::2]), self.states):
            pairs += [(conv.name, states[conv.name], gconv), (ssm.name, states[ssm.name], gssm)]
        self.result.runs_checked += 1
        for name, device, golden in pairs:
            diff = _difference(device, golden)
            if diff is not None:
                self.result.bit_exact = False
                self.result.mismatch = Mismatch(step, program, (start, start + len(ids)), name, diff[1], diff[0],
                                                diff[2])
                return


# ---------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class RunEvent:
    """What a progress callback hears after each program run."""

    phase: str
    program: str
    step: int  # index of the run over the whole generation
    phase_runs: int  # runs so far in this phase, this one included
    done: int  # prompt tokens processed (prefill), or tokens generated once this run's logits are used (decode)
    total: int  # of the prompt's tokens, or of max_new_tokens
    cycles: int  # summed over this phase so far


@dataclass
class GenerationResult:
    prompt_ids: list[int]
    tokens: list[int]  # the generated ids
    prefill: PhaseStats
    decode: PhaseStats
    states: dict[str, np.ndarray]  # after the last run
    check: CheckResult | None = None

    def to_dict(self) -> dict[str, Any]:
        from fastmamba.simulator.stats import counters

        out = {"prompt_tokens": len(self.prompt_ids), "tokens": list(self.tokens),
               "prefill": self.prefill.to_dict(), "decode": self.decode.to_dict(), "counters": counters(self.total)}
        if self.check is not None:
            out.update(self.check.to_dict())
        return out

    @property
    def total(self):
        """The counters of both phases summed (`simulator.stats.Stats`), None before the first run."""
        from fastmamba.simulator.stats import Stats

        runs = [p.counters for p in (self.prefill, self.decode) if p.counters is not None]
        if not runs:
            return None
        total = Stats(runs[0].clock_hz)
        for c in runs:
            total.add(c)
        return total

    def format_table(self) -> str:
        """Counters of both phases side by side."""
        from fastmamba.simulator.stats import UNITS

        p, d = self.prefill, self.decode
        rows = [("programs run", *(", ".join(f"{n} {k}" for k, n in ph.programs.items()) or "none" for ph in (p, d))),
                ("tokens", f"{p.tokens:,}", f"{d.tokens:,}"),
                ("cycles", f"{p.cycles:,}", f"{d.cycles:,}"),
                *([("RTL clock cycles", f"{p.rtl_cycles or 0:,}", f"{d.rtl_cycles or 0:,}")]
                  if p.rtl_cycles is not None or d.rtl_cycles is not None else []),
                ("time (ms)", f"{p.seconds * 1e3:.6g}", f"{d.seconds * 1e3:.6g}"),
                ("tokens/s", f"{p.tokens_per_s:,.1f}", f"{d.tokens_per_s:,.1f}"),
                ("DDR bytes", f"{p.ddr_bytes:,}", f"{d.ddr_bytes:,}")]
        up, ud = p.utilization(), d.utilization()
        rows += [(f"{u} utilization", f"{up[u]:.1%}", f"{ud[u]:.1%}") for u in UNITS]
        width = max(len(r[0]) for r in rows) + 2
        cols = [max(len(r[i]) for r in rows) + 2 for i in (1, 2)]
        cols = [max(c, 10) for c in cols]
        lines = [f"{'':<{width}}{'prefill':>{cols[0]}}{'decode':>{cols[1]}}"]
        lines += [f"{name:<{width}}{a:>{cols[0]}}{b:>{cols[1]}}" for name, a, b in rows]
        clock = (p.counters or d.counters)
        if clock is not None:
            lines.append(f"(time at {clock.clock_hz / 1e6:g} MHz; prefill = the prompt, decode = feeding back "
                         f"generated tokens)")
        return "\n".join(lines)


def sample(logits: np.ndarray, *, temperature: float = 1.0, top_k: int = 0, rng: np.random.Generator,
           allowed: int | None = None) -> int:
    """A token id drawn from softmax(logits[:allowed] / temperature), among the top_k largest (0: all)."""
    scores = np.asarray(logits, np.float64).reshape(-1)
    if allowed is not None:
        scores = scores[:allowed]
    scores = np.where(np.isnan(scores), -np.inf, scores) / temperature
    if 0 < top_k < scores.size:
        kth = np.partition(scores, -top_k)[-top_k]
        scores = np.where(scores >= kth, scores, -np.inf)  # ties with the k-th largest stay in
    best = scores.max()
    if not np.isfinite(best):
        raise FastmambaError("cannot sample: the device's logits are all NaN or infinite")
    weights = np.exp(scores - best)
    return int(rng.choice(scores.size, p=weights / weights.sum()))


def generate(backend, prompt_ids: Sequence[int], max_new_tokens: int, *, greedy: bool = True,
             temperature: float = 1.0, top_k: int = 0, seed: int | None = None, allowed: int | None = None,
             check=None, progress: Callable[[RunEvent], None] | None = None,
             on_token: Callable[[int], None] | None = None) -> GenerationResult:
    """Continue `prompt_ids` by `max_new_tokens` tokens on `backend` (an ExecutionBackend with a compiled model loaded).

    greedy: take the device's `next_token`; else sample from its `logits` (temperature, top_k, seed; ids below
    `allowed` only; greedy too: the argmax below `allowed` when next_token is not).  check: a golden model
    compared after every run (CheckResult in the result).  on_token: called with each generated id as soon as
    it is chosen (before it is fed back), for streaming.
    progress: called after every run.
    """
    iface = interface(backend.binary)
    ids = [int(t) for t in prompt_ids]
    if not ids:
        raise InputError("the prompt is empty: give at least one token")
    bad = [t for t in ids if not 0 <= t < iface.vocab]
    if bad:
        raise InputError(f"the prompt has token id {bad[0]} outside the model's vocabulary of {iface.vocab}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise InputError(f"max_new_tokens must be a non-negative integer, not {max_new_tokens!r}")
    if not greedy and not (math.isfinite(temperature) and temperature > 0):
        raise InputError(f"temperature must be a positive number, not {temperature!r}")
    if top_k < 0:
        raise InputError(f"top_k must be at least 0 (0: no limit), not {top_k}")
    rng = np.random.default_rng(seed)
    phases = {name: PhaseStats(name) for name in PHASES}
    checker = _Checker(check, iface) if check is not None else None
    states = zero_states(iface)
    step = 0

    def run(program: str, chunk: list[int], phase: str, start: int, done: int, total: int) -> Mapping[str, np.ndarray]:
        nonlocal states, step
        result = backend.run(program, {"tokens": np.asarray(chunk, np.int32), **states})
        missing = [n for n in ("logits", "next_token") if n not in result.outputs] + \
                  [n for n in states if n not in result.states]
        if missing:
            raise FastmambaError(f"program {program} returned no {', '.join(missing)}")
        states = {name: result.states[name] for name in states}
        phases[phase].add(program, len(chunk), result.stats)
        if checker is not None:
            checker.compare(step, program, chunk, start, result.outputs, states)
        if progress is not None:
            progress(RunEvent(phase, program, step, phases[phase].runs, done, total, phases[phase].cycles))
        step += 1
        return result.outputs

    n, L = len(ids), iface.seq_len
    full = n - n % L
    for start in range(0, full, L):
        outputs = run("prefill", ids[start:start + L], "prefill", start, start + L, n)
    for pos in range(full, n):
        outputs = run("decode", ids[pos:pos + 1], "prefill", pos, pos + 1, n)
    generated: list[int] = []
    for k in range(max_new_tokens):
        if greedy:
            token = int(np.asarray(outputs["next_token"]).reshape(-1)[0])
            if not 0 <= token < iface.vocab:
                raise FastmambaError(f"the device returned next_token {token}, outside the vocabulary of {iface.vocab}")
            if allowed is not None and token >= allowed:  # an id the tokenizer cannot render: the best one it can
                scores = np.asarray(outputs["logits"], np.float64).reshape(-1)[:allowed]
                token = int(np.argmax(np.where(np.isnan(scores), -np.inf, scores)))
        else:
            token = sample(outputs["logits"], temperature=temperature, top_k=top_k, rng=rng, allowed=allowed)
        generated.append(token)
        if on_token is not None:
            on_token(token)
        if k + 1 < max_new_tokens:
            outputs = run("decode", [token], "decode", n + k, k + 2, max_new_tokens)
    return GenerationResult(ids, generated, phases["prefill"], phases["decode"], states,
                            checker.result if checker is not None else None)
