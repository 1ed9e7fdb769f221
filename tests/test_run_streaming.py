"""`fastmamba run` streams its text, and no command chooses a token its tokenizer cannot render (issue 16, 5-6).

A byte-level model with a 512-entry vocabulary (tests/model_factory.py, random weights) has ids 256..511 that
no text maps to.  The rule (compiler.tokenizer.UNRENDERABLE): they are never chosen, in `run` (greedy: the
argmax of the device's logits below 256 when its `next_token` is not; sampled: drawn below 256) and in
`generate` alike; the references below are written out here, independently of the runner.  Streaming: each
token's text is on stdout (flushed) before the next program run starts; Ctrl-C keeps it (exit 130).
"""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest
import torch

from fastmamba.compiler.cli import main
from fastmamba.compiler.tokenizer import UNRENDERABLE, ByteTokenizer, visible
from fastmamba.simulator.runtime import SimulatorBackend
from model_factory import make_config, random_hf_model, save_hf_dir

PROMPT = "Hi there"  # 8 bytes: two prefill chunks of 4


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return save_hf_dir(random_hf_model(make_config("tiny", n_layer=1, vocab_size=512), seed=5),
                       tmp_path_factory.mktemp("v512") / "model")


@pytest.fixture(scope="module")
def binary(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("bin") / "v512.fmb"
    assert main(["compile", "--model", str(model), "--seq-len", "4", "--calibration", "random",
                 "--calibration-windows", "1", "-o", str(path)]) == 0
    return path


class Stdout(io.StringIO):
    """stdout that remembers what had been flushed, and claims to be a terminal when asked to."""

    def __init__(self, tty: bool = False):
        super().__init__()
        self.flushed, self.tty = "", tty

    def flush(self) -> None:
        super().flush()
        self.flushed = self.getvalue()

    def isatty(self) -> bool:
        return self.tty


def run_cli(capsys, monkeypatch, *argv, stdout: Stdout | None = None) -> tuple[int, str, str]:
    stdout = stdout or Stdout()
    monkeypatch.setattr(sys, "stdout", stdout)
    code = main(["run", *map(str, argv)])
    monkeypatch.undo()
    return code, stdout.getvalue(), capsys.readouterr().err


def device_greedy(path, prompt: bytes, n: int) -> tuple[list[int], list[int]]:
    """The masked greedy continuation written out on the simulator: (tokens, the device's own next_token)."""
    from fastmamba.compiler.runner import interface, zero_states
    from fastmamba.isa.container import read_fmb
    from fastmamba.isa.target import load_target

    backend = SimulatorBackend(load_target("vc709"))
    backend.load(read_fmb(path))
    states = zero_states(interface(backend.binary))

    def step(program, ids):
        nonlocal states
        result = backend.run(program, {"tokens": np.asarray(ids, np.int32), **states})
        states = {name: result.states[name] for name in states}
        return result.outputs

    out = step("prefill", list(prompt[:4]))
    out = step("prefill", list(prompt[4:8]))
    tokens, raw = [], []
    for _ in range(n):
        raw.append(int(out["next_token"][0]))
        tokens.append(int(np.argmax(np.asarray(out["logits"]).reshape(-1)[:256])))
        out = step("decode", tokens[-1:])
    return tokens, raw


def test_greedy_run_never_chooses_an_unrenderable_id(binary, capsys, monkeypatch):
    code, out, err = run_cli(capsys, monkeypatch, binary, "--prompt", PROMPT, "--max-new-tokens", 12, "--greedy",
                             "--json")
    assert code == 0 and err == ""
    doc = json.loads(out)  # nothing but the JSON object on stdout
    tokens, raw = device_greedy(binary, PROMPT.encode(), 12)
    assert doc["tokens"] == tokens
    assert any(t >= 256 for t in raw)  # the device's own argmax was unrenderable: the rule was exercised
    assert doc["text"] == bytes(tokens).decode("utf-8", errors="replace")


def test_sampled_run_never_chooses_an_unrenderable_id(binary, capsys, monkeypatch):
    code, out, _ = run_cli(capsys, monkeypatch, binary, "--prompt", PROMPT, "--max-new-tokens", 40, "--seed", 3,
                           "--json")
    tokens = json.loads(out)["tokens"]
    assert code == 0 and len(tokens) == 40 and max(tokens) < 256  # unmasked, about half would be >= 256


def reference_greedy(model, n: int) -> tuple[list[int], int]:
    """The masked greedy continuation of PROMPT by the FP32 reference, run over the whole text at each step:
    (the new ids, how many times the unmasked argmax was unrenderable)."""
    from fastmamba.compiler.checkpoint import load_model
    from fastmamba.compiler.reference import Mamba2Reference

    reference = Mamba2Reference(*load_model(model))
    ids, unrenderable = list(PROMPT.encode()), 0
    for _ in range(n):
        logits, _ = reference.prefill(torch.tensor([ids]))
        unrenderable += int(torch.argmax(logits[0, -1])) >= 256
        ids.append(int(torch.argmax(logits[0, -1, :256])))
    return ids[len(PROMPT):], unrenderable


def test_generate_never_chooses_an_unrenderable_id(model, capsys):
    assert main(["generate", "--model", str(model), "--prompt", PROMPT, "--max-new-tokens", "8", "--greedy"]) == 0
    out = capsys.readouterr().out
    ids, unrenderable = reference_greedy(model, 8)
    assert unrenderable  # the rule was exercised
    assert out == PROMPT + bytes(ids).decode("utf-8", errors="replace") + "\n"


def test_the_rule_is_in_every_help():
    from fastmamba.compiler.cli import build_parser

    parser = build_parser(None)
    sub = next(a for a in parser._actions if a.choices and "run" in a.choices).choices
    for command in ("run", "generate", "demo"):
        assert " ".join(UNRENDERABLE.split()) in " ".join(sub[command].format_help().split()), command


def test_an_unrenderable_id_that_reaches_the_tokenizer_is_shown():
    tok = ByteTokenizer()
    assert tok.decode([72, 300, 0xC3, 0xA9, 0xC3, 511, 33]) == "H<|300|>é\ufffd<|511|>!"
    assert visible(300) == "<|300|>"


# --- streaming ---------------------------------------------------------------------------------------------
@pytest.fixture
def seen_at_each_run(monkeypatch):
    """(program, what stdout had flushed) at the start of every program run."""
    seen: list[tuple[str, str]] = []
    run = SimulatorBackend.run

    def spy(self, program, inputs, *args, **kwargs):
        seen.append((program, sys.stdout.flushed))
        return run(self, program, inputs, *args, **kwargs)

    monkeypatch.setattr(SimulatorBackend, "run", spy)
    return seen


def streamed(tokens: list[int]) -> str:
    stream = ByteTokenizer().stream()
    return "".join(stream.feed(t) for t in tokens)


def test_run_streams_each_token_before_the_next_run(binary, capsys, monkeypatch, seen_at_each_run):
    code, out, err = run_cli(capsys, monkeypatch, binary, "--prompt", PROMPT, "--max-new-tokens", 6, "--greedy")
    assert code == 0
    tokens, _ = device_greedy(binary, PROMPT.encode(), 6)
    assert [p for p, _ in seen_at_each_run] == ["prefill"] * 2 + ["decode"] * 5
    assert [text for _, text in seen_at_each_run] == ["", ""] + [PROMPT + streamed(tokens[:k + 1]) for k in range(5)]
    text = PROMPT + bytes(tokens).decode("utf-8", errors="replace")
    assert out.startswith(text + "\n\n") and "cycles" in out.splitlines()[-4 - 6 - 1]  # the counters follow


def test_ctrl_c_keeps_what_was_printed(binary, capsys, monkeypatch):
    runs = []
    original = SimulatorBackend.run

    def interrupt_at_the_fourth_decode(self, program, inputs, *args, **kwargs):
        runs.append(program)
        if len(runs) == 2 + 4:  # two prefill runs, three tokens fed back; the fourth token is chosen and printed
            raise KeyboardInterrupt
        return original(self, program, inputs, *args, **kwargs)

    monkeypatch.setattr(SimulatorBackend, "run", interrupt_at_the_fourth_decode)
    code, out, err = run_cli(capsys, monkeypatch, binary, "--prompt", PROMPT, "--max-new-tokens", 10, "--greedy")
    tokens, _ = device_greedy(binary, PROMPT.encode(), 4)
    assert code == 130 and err == "fastmamba run: interrupted\n"
    assert out == PROMPT + bytes(tokens).decode("utf-8", errors="replace") + "\n"  # four tokens, no counters


def test_decode_progress_stays_off_a_terminal(binary, capsys, monkeypatch):
    """On a terminal the streamed text is the progress: no decode line lands inside it (prefill lines come
    before the prompt is printed); redirected, the lines are on stderr."""
    for tty, lines in ((True, 0), (False, 2)):
        code, out, err = run_cli(capsys, monkeypatch, binary, "--prompt", PROMPT, "--max-new-tokens", 34, "--seed",
                                 1, stdout=Stdout(tty))
        assert code == 0 and len([line for line in err.splitlines() if line.startswith("decode: ")]) == lines


def test_generate_ctrl_c_keeps_what_was_printed(model, capsys, monkeypatch):
    from fastmamba.compiler.reference import Mamba2Reference

    calls = []
    decode_step = Mamba2Reference.decode_step

    def interrupt_at_the_third(self, *args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return decode_step(self, *args)

    monkeypatch.setattr(Mamba2Reference, "decode_step", interrupt_at_the_third)
    assert main(["generate", "--model", str(model), "--prompt", PROMPT, "--max-new-tokens", "8", "--greedy"]) == 130
    out, err = capsys.readouterr()
    assert err == "fastmamba generate: interrupted\n"
    assert out == PROMPT + bytes(reference_greedy(model, 3)[0]).decode("utf-8", errors="replace") + "\n"


def test_profile_follows_the_rule_as_run_does(binary, tmp_path, capsys):
    out = tmp_path / "profile"
    assert main(["profile", str(binary), "--prompt", PROMPT, "--max-new-tokens", "12", "-o", str(out)]) == 0
    capsys.readouterr()
    tokens, raw = device_greedy(binary, PROMPT.encode(), 12)
    assert json.loads((out / "profile.json").read_text())["tokens"] == tokens
    assert any(t >= 256 for t in raw)  # unmasked, profile would have chosen an unrenderable id
