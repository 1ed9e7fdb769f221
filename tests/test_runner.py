"""compiler/runner.py on hand-built binaries (tests/toy_compiled.py): chunking, state carry, greedy and sampling,
summed counters, the golden check and the contract's error paths."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fastmamba.compiler.runner import (
    Interface,
    generate,
    interface,
    read_meta,
    sample,
    zero_states,
)
from fastmamba.isa.container import Binary, Program, TensorDesc
from fastmamba.isa.errors import FastmambaError, InputError
from fastmamba.simulator.runtime import SimulatorBackend
from fastmamba.simulator.stats import UNITS
from toy_compiled import (
    CONV_SHAPE,
    SSM_SHAPE,
    TARGET,
    VOCAB,
    WINDOW,
    ToyGolden,
    greedy_continuation,
    peak,
    table,
    toy_binary,
)

PROMPT = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]


class Recording:
    """An ExecutionBackend around the simulator that records every run (and can tamper with next_token)."""

    def __init__(self, binary: Binary, tamper_next: bool = False):
        self.inner = SimulatorBackend(TARGET)
        self.inner.load(binary)
        self.runs: list[tuple[str, list[int], object]] = []
        self.tamper_next = tamper_next

    @property
    def binary(self) -> Binary:
        return self.inner.binary

    def run(self, program, inputs=None, *, trace=False):
        result = self.inner.run(program, inputs, trace=trace)
        self.runs.append((program, inputs["tokens"].tolist(), result.stats))
        if self.tamper_next:
            result.outputs["next_token"] = (result.outputs["next_token"] + 7) % VOCAB
        return result


def backend(seq_len: int = 4, n_layer: int = 1, tamper_next: bool = False) -> Recording:
    return Recording(toy_binary(seq_len, n_layer), tamper_next)


# --- chunking and state carry -----------------------------------------------------------------
@pytest.mark.parametrize("n, seq_len, prefill_runs, remainder", [
    (3, 4, 0, 3),    # shorter than L: all through decode
    (4, 4, 1, 0),    # exactly L
    (10, 4, 2, 2),   # two chunks and a remainder
    (8, 4, 2, 0),    # two chunks
    (5, 1, 5, 0),    # L = 1: prefill only
    (7, 8, 0, 7),
])
def test_prompt_chunking(n, seq_len, prefill_runs, remainder):
    be = backend(seq_len)
    prompt = PROMPT[:n]
    result = generate(be, prompt, 3)
    fed = [(prog, toks) for prog, toks, _ in be.runs]
    chunks = [("prefill", prompt[i:i + seq_len]) for i in range(0, prefill_runs * seq_len, seq_len)]
    singles = [("decode", [t]) for t in prompt[prefill_runs * seq_len:]]
    assert fed[:len(chunks) + len(singles)] == chunks + singles
    assert fed[len(chunks) + len(singles):] == [("decode", [t]) for t in result.tokens[:-1]]  # the last is not fed
    assert result.prefill.programs == {k: v for k, v in (("prefill", prefill_runs), ("decode", remainder)) if v}
    assert result.prefill.tokens == n and result.prefill.runs == prefill_runs + remainder
    assert result.decode.programs == {"decode": 2} and result.decode.tokens == 2


@pytest.mark.parametrize("seq_len", [1, 2, 3, 4, 8])
def test_states_carry_from_run_to_run(seq_len):
    """The continuation depends on tokens 7 positions back, so it is right only when every run gets the last states."""
    result = generate(backend(seq_len), PROMPT, 20)
    assert result.tokens == greedy_continuation(PROMPT, 20)
    window = (PROMPT + result.tokens[:-1])[-WINDOW:]
    assert result.states["layers.0.ssm"].reshape(-1).tolist() == window
    assert result.states["layers.0.ssm"].dtype == np.int32 and result.states["layers.0.conv"].shape == CONV_SHAPE


def test_two_layers_carry_their_own_states():
    result = generate(backend(4, n_layer=2), PROMPT[:6], 5)
    assert result.tokens == greedy_continuation(PROMPT[:6], 5)
    assert np.array_equal(result.states["layers.1.ssm"], result.states["layers.0.ssm"])
    assert sorted(result.states) == ["layers.0.conv", "layers.0.ssm", "layers.1.conv", "layers.1.ssm"]


def test_no_new_tokens():
    be = backend(4)
    result = generate(be, PROMPT[:6], 0)
    assert result.tokens == [] and len(be.runs) == 3
    assert result.decode.runs == 0 and result.decode.cycles == 0 and result.decode.tokens_per_s == 0.0
    assert result.decode.to_dict()["utilization"] == dict.fromkeys(UNITS, 0.0)


# --- greedy and sampling --------------------------------------------------------------------------
def test_greedy_takes_the_devices_next_token():
    """A backend whose next_token is off by 7 changes greedy's tokens but not sampling's (which reads logits)."""
    tampered = generate(backend(4, tamper_next=True), PROMPT[:5], 4)
    assert tampered.tokens == greedy_continuation(PROMPT[:5], 4, shift=7)
    sampled = generate(backend(4, tamper_next=True), PROMPT[:5], 4, greedy=False, top_k=1, seed=0)
    assert sampled.tokens == greedy_continuation(PROMPT[:5], 4)


def test_sampling_is_seeded():
    def draw(seed):
        return generate(backend(4), PROMPT[:5], 12, greedy=False, temperature=30.0, seed=seed).tokens

    assert draw(3) == draw(3)
    assert draw(3) != draw(4)
    assert draw(3) != greedy_continuation(PROMPT[:5], 12)  # temperature 30 over logits 1 apart: not the argmax


def test_sample_top_k_temperature_and_allowed():
    logits = np.array([[0.0, 3.0, 2.0, 1.0, np.nan]], np.float32)
    rng = np.random.default_rng(0)
    draws = {sample(logits, temperature=1e3, top_k=2, rng=rng) for _ in range(200)}
    assert draws == {1, 2}
    assert {sample(logits, top_k=0, temperature=1e3, rng=rng) for _ in range(300)} == {0, 1, 2, 3}  # NaN never
    assert {sample(logits, temperature=1e3, rng=rng, allowed=2) for _ in range(100)} == {0, 1}
    assert sample(logits, temperature=1e-3, rng=rng) == 1
    with pytest.raises(FastmambaError, match="all NaN or infinite"):
        sample(np.full((1, 3), np.nan, np.float32), rng=rng)


# --- counters -------------------------------------------------------------------------------------
def test_counters_are_summed_per_phase():
    be = backend(4)
    result = generate(be, PROMPT, 6)
    n_prompt = 2 + 2
    for phase, runs in ((result.prefill, be.runs[:n_prompt]), (result.decode, be.runs[n_prompt:])):
        stats = [s for _, _, s in runs]
        assert phase.runs == len(stats)
        assert phase.cycles == sum(s.cycles for s in stats) > 0
        assert phase.seconds == pytest.approx(phase.cycles / TARGET.clock_hz)
        assert phase.tokens_per_s == pytest.approx(phase.tokens / phase.seconds)
        assert phase.ddr_bytes == sum(s.ddr_bytes_read + s.ddr_bytes_written for s in stats) > 0
        d = json.loads(json.dumps(phase.to_dict()))
        for u in UNITS:
            busy = sum(s.busy[u] for s in stats)
            assert d["busy_cycles"][u] == busy and d["utilization"][u] == pytest.approx(busy / phase.cycles)
        assert d["bundles"] == sum(s.bundles for s in stats) and d["clock_hz"] == TARGET.clock_hz
        assert d["utilization"]["LD"] > 0 and d["utilization"]["VEC"] > 0 and d["utilization"]["LIN"] == 0
    table = result.format_table()
    assert "prefill" in table and "tokens/s" in table and "VEC utilization" in table
    assert f"{result.prefill.cycles:,}" in table


# --- the golden check ---------------------------------------------------------------------------
def test_check_bit_exact():
    golden = ToyGolden()
    result = generate(backend(4), PROMPT, 5, check=golden)
    assert result.check.bit_exact and result.check.mismatch is None and result.check.runs_checked == 2 + 2 + 4
    assert golden.calls[:3] == [PROMPT[:4], PROMPT[4:8], [PROMPT[8]]]
    assert result.to_dict()["bit_exact"] is True and result.to_dict()["mismatch"] is None


@pytest.mark.parametrize("step, tensor, diff", [
    (0, "logits", 0.5),
    (3, "layers.0.ssm", 7.0),
    (5, "layers.1.conv", 2.0),
])
def test_check_finds_the_first_mismatch(step, tensor, diff):
    golden = ToyGolden(corrupt=(step, tensor))
    result = generate(backend(4, n_layer=2), PROMPT, 5, check=golden)
    m = result.check.mismatch
    assert not result.check.bit_exact and result.check.runs_checked == step + 1
    assert (m.step, m.tensor, m.max_abs_diff) == (step, tensor, diff)
    assert m.program == ("prefill" if step < 2 else "decode")
    assert m.positions == ((0, 4) if step == 0 else (step + 6, step + 7))  # runs 0, 1: prefill; 2, 3: tokens 8, 9
    assert len(golden.calls) == step + 1  # checking stops at the first mismatch; the generation goes on
    assert result.tokens == greedy_continuation(PROMPT, 5)
    assert f"step {step}" in m.describe() and tensor in m.describe()
    assert json.loads(json.dumps(result.to_dict()))["mismatch"]["tensor"] == tensor


def test_check_reports_next_token_and_shapes():
    class WrongShape(ToyGolden):
        def run(self, ids, states):
            logits, out = super().run(ids, states)
            return logits[:, :10], out

    m = generate(backend(4), PROMPT[:4], 1, check=WrongShape()).check.mismatch
    assert m.tensor == "logits" and m.max_abs_diff is None and "shape (1, 256)" in m.detail

    class ArgmaxElsewhere(ToyGolden):  # logits equal in bits except a NaN the device does not have
        def run(self, ids, states):
            logits, out = super().run(ids, states)
            logits[-1, 0] = np.nan
            return logits, out

    m = generate(backend(4), PROMPT[:4], 1, check=ArgmaxElsewhere()).check.mismatch
    assert m.tensor == "logits" and m.max_abs_diff is None and "NaN" in m.detail


# --- errors -------------------------------------------------------------------------------------
def test_prompt_errors():
    with pytest.raises(InputError, match="the prompt is empty"):
        generate(backend(4), [], 3)
    with pytest.raises(InputError, match="token id 256 outside the model's vocabulary of 256"):
        generate(backend(4), [1, 256], 3)
    with pytest.raises(InputError, match="temperature must be a positive number"):
        generate(backend(4), [1], 3, greedy=False, temperature=0.0)


def _edit(binary: Binary, program: str, **changes) -> Binary:
    """The binary with some tensors of `program` replaced (name -> TensorDesc, or None to drop it)."""
    progs = []
    for p in binary.programs:
        if p.name == program:
            tensors = [changes.get(t.name, t) for t in p.tensors if changes.get(t.name, t) is not None]
            p = Program(p.name, p.ddr_size, p.bundles, tuple(tensors), p.debug)
        progs.append(p)
    return Binary(tuple(progs), binary.const_image, binary.target_digest, binary.meta)


TOY = toy_binary(4)


@pytest.mark.parametrize("binary, message", [
    (Binary(TOY.programs[1:], TOY.const_image, TOY.target_digest), "no program 'prefill'"),
    (_edit(TOY, "decode", tokens=TensorDesc("tokens", "input", 262144, (2,), "i32")),
     r"program decode needs an input 'tokens' of dtype i32 and shape \(1,\), has input of dtype i32 and shape \(2,\)"),
    (_edit(TOY, "prefill", tokens=TensorDesc("tokens", "input", 262144, (4,), "i16")), "input 'tokens' of dtype i32"),
    (_edit(TOY, "prefill", logits=TensorDesc("logits", "output", 263168, (1, 128), "f32")),
     r"'logits' has shape \(1, 128\) in program prefill, \(1, 256\) in program decode"),
    (_edit(TOY, "decode", next_token=None), "needs an output 'next_token'"),
    (_edit(TOY, "decode", **{"layers.0.conv": None}), "states must be layers.{i}.conv and layers.{i}.ssm"),
    (_edit(TOY, "prefill", **{"layers.0.ssm": TensorDesc("layers.0.ssm", "state", 264256, (8,), "i32")}),
     r"program prefill needs a state 'layers.0.ssm' of dtype i32 and shape \(2, 2, 2\)"),
    (_edit(TOY, "decode", **{"layers.0.ssm": TensorDesc("layers.0.ssm", "state", 264256, (8,), "i16")}),
     "state 'layers.0.ssm' of dtype i32"),
])
def test_interface_violations(binary, message):
    with pytest.raises(InputError, match=message):
        interface(binary)


def test_interface_of_the_toy():
    iface = interface(TOY)
    assert isinstance(iface, Interface) and (iface.seq_len, iface.vocab, iface.n_layer) == (4, VOCAB, 1)
    assert [t.name for t in iface.states] == ["layers.0.conv", "layers.0.ssm"]
    zeros = zero_states(iface)
    assert zeros["layers.0.ssm"].shape == SSM_SHAPE and not zeros["layers.0.ssm"].any()
    assert zeros["layers.0.conv"].dtype == np.int16
    assert table()[3].argmax() == peak(3)


def test_read_meta():
    meta = read_meta(TOY)
    assert meta["seq_len"] == 4 and meta["format"] == "fastmamba/1" and meta["config"]["vocab_size"] == VOCAB
    with pytest.raises(InputError, match="no fastmamba metadata"):
        read_meta(toy_binary(4, with_meta=False))
    bad = json.loads(TOY.meta)
    for key, value, message in (("format", "other/2", "format 'other/2'"), ("plan", None,
                                                                            "'plan' is not a JSON object"),
                                ("seq_len", "4", "'seq_len' is not a JSON int")):
        with pytest.raises(InputError, match=message):
            read_meta(toy_binary(4, meta_doc={**bad, key: value}))
    del bad["model"]
    with pytest.raises(InputError, match="'model' is missing"):
        read_meta(toy_binary(4, meta_doc=bad))
