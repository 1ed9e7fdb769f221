"""`fastmamba run` on hand-built binaries (tests/toy_compiled.py): text, counters table, JSON, --check, errors.

The toy model is byte-level (vocab 256), so its tokenizer needs no model
directory; --check needs one (the weights of the golden model).
"""

from __future__ import annotations

import json

import pytest

import fastmamba.compiler.commands.run as run_command
from fastmamba.compiler.cli import main
from fastmamba.isa.container import write_fmb
from toy_compiled import CONFIG, TARGET, ToyGolden, greedy_continuation, meta, toy_binary

PROMPT = "ROMEO:"  # 6 bytes: one prefill chunk of 4, two decode runs


@pytest.fixture
def fmb(tmp_path):
    path = tmp_path / "toy.fmb"
    write_fmb(path, toy_binary(4), TARGET)
    return path


def _run(capsys, *argv):
    code = main(["run", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_text_and_table(fmb, capsys):
    code, out, err = _run(capsys, fmb, "--prompt", PROMPT, "--max-new-tokens", 5, "--greedy")
    assert code == 0 and err == ""
    tokens = greedy_continuation(list(PROMPT.encode()), 5)
    text = bytes(tokens).decode("utf-8", errors="replace")
    assert out.startswith(PROMPT + text + "\n")
    for row in ("programs run", "1 prefill, 2 decode", "4 decode", "cycles", "time (ms)", "tokens/s", "DDR bytes",
                "LD utilization", "VEC utilization"):
        assert row in out
    assert "check" not in out


def test_json(fmb, capsys):
    code, out, err = _run(capsys, fmb, "--prompt", PROMPT, "--max-new-tokens", 40, "--greedy", "--json")
    assert code == 0 and err == ""  # no progress lines with --json
    doc = json.loads(out)
    tokens = greedy_continuation(list(PROMPT.encode()), 40)
    assert doc["tokens"] == tokens and doc["prompt"] == PROMPT and doc["prompt_tokens"] == 6
    assert doc["text"] == bytes(tokens).decode("utf-8", errors="replace")
    assert doc["seq_len"] == 4 and doc["target"] == "vc709" and doc["greedy"] is True
    for phase, runs, n in (("prefill", {"prefill": 1, "decode": 2}, 6), ("decode", {"decode": 39}, 39)):
        d = doc[phase]
        assert d["programs"] == runs and d["tokens"] == n and d["cycles"] > 0 and d["ddr_bytes"] > 0
        assert d["seconds"] == pytest.approx(d["cycles"] / TARGET.clock_hz)
        assert d["tokens_per_s"] == pytest.approx(n / d["seconds"])
        assert set(d["utilization"]) == {"LD", "ST", "LIN", "CONV", "SSM", "VEC"}
    assert "bit_exact" not in doc


def test_progress_on_stderr(fmb, capsys):
    code, out, err = _run(capsys, fmb, "--prompt", PROMPT, "--max-new-tokens", 40, "--greedy")
    assert code == 0
    assert err.splitlines() == [line for line in err.splitlines() if line.startswith("decode: ")]
    assert [line.split(",")[1] for line in err.splitlines()] == [" 16 runs", " 32 runs"]


def test_sampling_is_seeded(fmb, capsys):
    def draw(*extra):
        code, out, _ = _run(capsys, fmb, "--prompt", PROMPT, "--max-new-tokens", 10, "--json", *extra)
        assert code == 0
        return json.loads(out)["tokens"]

    assert draw("--seed", 5, "--temperature", 50) == draw("--seed", 5, "--temperature", 50)
    assert draw("--seed", 1, "--top-k", 1) == greedy_continuation(list(PROMPT.encode()), 10)


def test_check_bit_exact(fmb, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(run_command, "build_golden", lambda meta, config, model_dir, target: ToyGolden())
    code, out, err = _run(capsys, fmb, "--prompt", PROMPT, "--max-new-tokens", 5, "--greedy", "--check")
    assert code == 0 and err == "" and "check: bit exact with the golden model (7 runs compared)" in out
    code, out, _ = _run(capsys, fmb, "--prompt", PROMPT, "--max-new-tokens", 5, "--greedy", "--check", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["bit_exact"] is True and doc["mismatch"] is None


def test_check_mismatch_exits_1(fmb, capsys, monkeypatch):
    monkeypatch.setattr(run_command, "build_golden",
                        lambda meta, config, model_dir, target: ToyGolden(corrupt=(2, "layers.0.ssm")))
    code, out, err = _run(capsys, fmb, "--prompt", PROMPT, "--max-new-tokens", 5, "--greedy", "--check", "--json")
    assert code == 1
    doc = json.loads(out)  # the JSON is still printed
    assert doc["bit_exact"] is False and doc["mismatch"]["step"] == 2 and doc["mismatch"]["tensor"] == "layers.0.ssm"
    assert err.count("\n") == 1
    assert err.startswith("fastmamba run: error: --check: not bit exact: step 2 (decode, tokens 5..5)")
    assert "layers.0.ssm differs" in err and "max abs diff 7" in err


def test_check_with_the_real_golden_model(tmp_path, capsys):
    """The toy's programs are not the model its metadata names, and the golden model (float plan) says so."""
    import torch

    from fastmamba.compiler.checkpoint import expected_shapes, save_hf_layout

    gen = torch.Generator().manual_seed(0)
    weights = {name: torch.rand(shape, generator=gen) for name, shape in expected_shapes(CONFIG).items()}
    model = save_hf_layout(CONFIG, weights, tmp_path / "model")
    path = tmp_path / "real.fmb"
    write_fmb(path, toy_binary(4, meta_doc=meta(4, model=str(model))), TARGET)
    code, out, err = _run(capsys, path, "--prompt", PROMPT, "--max-new-tokens", 2, "--greedy", "--check")
    assert code == 1
    assert err.startswith("fastmamba run: error: --check: not bit exact: step 0 (prefill, tokens 0..3): logits")
    assert out.startswith(PROMPT)


# --- errors ------------------------------------------------------------------------------------
def _error(capsys, *argv, code=1):
    got, out, err = _run(capsys, *argv)
    assert got == code and out == "" and err.count("\n") == 1, (got, out, err)
    return err


def test_missing_and_foreign_files(tmp_path, capsys):
    err = _error(capsys, tmp_path / "nope.fmb", "--prompt", "a", "--max-new-tokens", 1)
    assert err.startswith("fastmamba run: error: cannot read") and "nope.fmb" in err
    garbage = tmp_path / "garbage.fmb"
    garbage.write_bytes(b"PK\x03\x04 not a binary at all")
    assert "not a .fmb file" in _error(capsys, garbage, "--prompt", "a", "--max-new-tokens", 1)


def test_binary_without_meta(tmp_path, capsys):
    path = tmp_path / "bare.fmb"
    write_fmb(path, toy_binary(4, with_meta=False), TARGET)
    err = _error(capsys, path, "--prompt", "a", "--max-new-tokens", 1)
    assert f"{path}: the binary has no fastmamba metadata (no meta section)" in err


def test_check_without_the_model_directory(fmb, capsys):
    err = _error(capsys, fmb, "--prompt", "a", "--max-new-tokens", 1, "--check")
    assert "--check needs the model's weights" in err and "/nonexistent/toy-model" in err and "--model DIR" in err


@pytest.mark.parametrize("argv, message", [
    (("--prompt", "", "--max-new-tokens", 1), "--prompt is empty"),
    (("--prompt", "a", "--max-new-tokens", -1), "--max-new-tokens must lie in"),
    (("--prompt", "a", "--max-new-tokens", 1, "--temperature", "0"), "--temperature must be a positive number"),
    (("--prompt", "a", "--max-new-tokens", 1, "--temperature", "warm"), "--temperature must be a number"),
    (("--prompt", "a", "--max-new-tokens", 1, "--top-k", "-2"), "--top-k must lie in"),
    (("--prompt", "a", "--max-new-tokens", 1, "--greedy", "--top-k", "3"), "--greedy does not sample"),
    (("--prompt", "a", "--max-new-tokens", 1, "--model", "/nonexistent/dir"),
     "--model /nonexistent/dir: no such directory"),
    (("--prompt", "a", "--max-new-tokens", 1, "--target", "nosuch"), "unknown target 'nosuch'"),
])
def test_bad_arguments(fmb, capsys, argv, message):
    assert message in _error(capsys, fmb, *argv)


def test_foreign_target(fmb, tmp_path, capsys):
    other = tmp_path / "fast.json"
    other.write_text(json.dumps({"vec_latency": 12}))
    assert "built for another target" in _error(capsys, fmb, "--prompt", "a", "--max-new-tokens", 1, "--target", other)


# --- end to end: a model compiled by `fastmamba compile` ----------------------------------------
def test_compiled_model_is_bit_exact(tmp_path, capsys):
    """A compiled tiny model through run --check: prompt of two chunks and a remainder, greedy and sampled."""
    from model_factory import make_config, random_hf_model, save_hf_dir

    model = save_hf_dir(random_hf_model(make_config("tiny", n_layer=1), seed=7), tmp_path / "model")
    out = tmp_path / "m.fmb"
    assert main(["compile", "--model", str(model), "-o", str(out), "--seq-len", "4", "--calibration-windows", "1"]) == 0
    capsys.readouterr()
    for extra in (("--greedy",), ("--seed", "2", "--top-k", "20")):
        code, text, err = _run(capsys, out, "--prompt", "But soft!", "--max-new-tokens", 6, "--check", "--json", *extra)
        assert code == 0 and err == "", err
        doc = json.loads(text)
        assert doc["bit_exact"] is True and doc["runs_checked"] == 2 + 1 + 5 and len(doc["tokens"]) == 6
        assert doc["prefill"]["programs"] == {"prefill": 2, "decode": 1} and doc["decode"]["programs"] == {"decode": 5}
        assert doc["prefill"]["utilization"]["LIN"] > 0 and doc["decode"]["utilization"]["SSM"] > 0
