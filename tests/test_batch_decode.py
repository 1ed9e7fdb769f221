"""Batched decode (`fastmamba compile --batch B`, `fastmamba run --prompt A --prompt B ...`) on the bundled model.

One compile of the bundled model with --batch 3 (prefill length 4, one calibration window) serves the module.
The references are independent of the batched program: the golden model's step_batch against its own
one-sequence `run` slot by slot, and the batched generation against one-sequence generation through the
binary's prefill/decode programs (the continuations must be the same tokens), besides --check's bit-for-bit
comparison of every batched run with the golden model.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from fastmamba.compiler.batching import BATCH_PROGRAM, batch_slots, generate_batch
from fastmamba.compiler.checkpoint import DEFAULT_MODEL_DIR
from fastmamba.compiler.cli import main
from fastmamba.compiler.commands.run import build_golden, model_config
from fastmamba.compiler.runner import generate, read_meta
from fastmamba.isa.container import read_fmb, write_fmb
from fastmamba.isa.target import load_target
from fastmamba.simulator.runtime import SimulatorBackend
from toy_compiled import TARGET, toy_binary

B = 3
PROMPTS = ["ROMEO: ", "To be or not to be, that", "a"]  # 7, 24 and 1 tokens: chunks of 4 plus remainders


@pytest.fixture(scope="module")
def batched(tmp_path_factory):
    from fastmamba.compiler.compile import CompileOptions, compile_model

    result = compile_model(DEFAULT_MODEL_DIR, CompileOptions(seq_len=4, calibration_windows=1, batch=B),
                           calibration_random=True, log=io.StringIO())
    path = tmp_path_factory.mktemp("batch") / "b3.fmb"
    write_fmb(path, result.binary, load_target("vc709"))
    return path


@pytest.fixture(scope="module")
def loaded(batched):
    """The simulator with the binary loaded, the golden model of its metadata, the metadata."""
    binary = read_fmb(batched)
    meta = read_meta(binary)
    target = load_target(meta["target"])
    device = SimulatorBackend(target)
    device.load(binary)
    return device, build_golden(meta, model_config(meta), Path(meta["model"]), target), meta


def _run(capsys, *argv):
    code = main(["run", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_batched_program(batched):
    binary = read_fmb(batched)
    meta = json.loads(binary.meta)
    assert meta["batch"] == B and batch_slots(binary) == B
    prog, single = binary.program(BATCH_PROGRAM), binary.program("decode")
    tensors = {t.name: t for t in prog.tensors}
    n_layer = meta["config"]["n_layer"]
    assert tensors["tokens"].shape == (B,) and tensors["next_token"].shape == (B,)
    assert tensors["logits"].shape == (B, meta["config"]["vocab_size"])
    for i in range(n_layer):
        assert tensors[f"layers.{i}.conv"].shape == (B, *single.tensors[[t.name for t in single.tensors].index(
            f"layers.{i}.conv")].shape)
        assert tensors[f"layers.{i}.ssm"].shape[0] == B
    ops = [op for bundle in prog.bundles for op in bundle.ops]
    one = [op for bundle in single.bundles for op in bundle.ops]
    lin = [op for op in ops if op.op == "lin"]
    # every weight once, over all B rows: the one-token step's weights (k x n summed over its LIN ops), m = B
    assert sum(int(op["k"]) * int(op["n"]) for op in lin) == sum(
        int(op["k"]) * int(op["n"]) for op in one if op.op == "lin")
    assert {int(op["m"]) for op in lin} == {B}
    conv = [op for op in ops if op.op == "conv"]
    assert len(conv) == B * n_layer and {int(op["t"]) for op in conv} == {1}
    assert {int(op["t"]) for op in ops if op.op == "ssm"} == {1}


def test_golden_step_batch_is_each_sequence_step(loaded):
    _, golden, meta = loaded
    rng = np.random.default_rng(1)
    vocab = meta["config"]["vocab_size"]
    states = [golden.run(rng.integers(0, vocab, size=n), None)[1] for n in (2, 1, 3)] + [None]
    ids = rng.integers(0, vocab, size=4)
    logits, new = golden.step_batch(ids, states)
    for b in range(4):
        one, after = golden.run(ids[b:b + 1], states[b])
        assert np.array_equal(one[0].view(np.uint32), np.asarray(logits[b], np.float32).view(np.uint32))
        for (c1, s1), (c2, s2) in zip(after, new[b]):
            assert np.array_equal(c1, c2) and np.array_equal(s1, s2)


def test_run_three_prompts_bit_exact(batched, capsys):
    """Prompts of 7, 24 and 1 tokens, --check: every batched run equals the golden model's, slot by slot."""
    code, out, err = _run(capsys, batched, *(a for p in PROMPTS for a in ("--prompt", p)), "--max-new-tokens", 3,
                          "--greedy", "--check", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["bit_exact"] is True and doc["batch"] == B and doc["steps"] == 2
    assert doc["runs_checked"] == (1 + 3) + (6 + 0) + (0 + 1) + 2  # each prompt's runs, then the batched ones
    assert doc["decode"]["programs"] == {BATCH_PROGRAM: 2} and doc["decode"]["tokens"] == 2 * B
    assert [len(seq["tokens"]) for seq in doc["sequences"]] == [3, 3, 3]
    code, out, _ = _run(capsys, batched, "--prompt", "a", "--prompt", "Be", "--max-new-tokens", 2, "--greedy")
    assert code == 0 and "--- sequence 2 ---\nBe" in out and "aggregate:" in out and "per sequence:" in out


def test_batched_tokens_are_each_sequence_alone(loaded):
    """B = 1 of the batched step (one slot used, two idle) and B = 2 with prompts of 6 and 1 tokens, checked;
    each sequence's tokens equal its generation alone through prefill/decode."""
    device, golden, _ = loaded
    prompts = [[5, 6, 7, 8, 9, 10], [200]]
    for group in (prompts[:1], prompts):
        result = generate_batch(device, group, 4, check=golden)
        assert result.check is not None and result.check.bit_exact and result.steps == 3
        for ids, seq in zip(group, result.sequences):
            assert seq.tokens == generate(device, ids, 4).tokens


def _error(capsys, *argv):
    code, out, err = _run(capsys, *argv)
    assert code != 0 and out == "" and err.count("\n") == 1 and "Traceback" not in err, (code, out, err)
    return err


def test_bad_input(batched, capsys, tmp_path):
    four = [a for p in ("a", "b", "c", "d") for a in ("--prompt", p)]
    assert "4 prompts, but" in _error(capsys, batched, *four, "--max-new-tokens", 1) and "--batch 4" in \
        _error(capsys, batched, *four, "--max-new-tokens", 1)
    assert "--prompt 2 is empty" in _error(capsys, batched, "--prompt", "a", "--prompt", "", "--max-new-tokens", 1)
    lines = tmp_path / "prompts.txt"
    lines.write_text("one\n\nthree\n")
    assert "line 2 is empty" in _error(capsys, batched, "--prompts", lines, "--max-new-tokens", 1)
    assert "--prompt TEXT (repeatable) or --prompts FILE" in _error(capsys, batched, "--max-new-tokens", 1)
    toy = tmp_path / "toy.fmb"
    write_fmb(toy, toy_binary(4), TARGET)  # no batched program: one sequence at a time
    assert "at most 1 sequence(s)" in _error(capsys, toy, "--prompt", "a", "--prompt", "b", "--max-new-tokens", 1)
    code = main(["compile", "--batch", "0", "-o", str(tmp_path / "x.fmb"), "--calibration", "random"])
    err = capsys.readouterr().err
    assert code != 0 and "--batch must be at least 1" in err and err.count("\n") == 1
    assert not (tmp_path / "x.fmb").exists()


def test_prompts_file(batched, capsys, tmp_path):
    lines = tmp_path / "prompts.txt"
    lines.write_text("ROMEO: \nTo be\n")
    code, out, err = _run(capsys, batched, "--prompts", lines, "--max-new-tokens", 1, "--greedy", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["prompts"] == ["ROMEO: ", "To be"] and [len(s["tokens"]) for s in doc["sequences"]] == [1, 1]
