"""`fastmamba generate` and `fastmamba eval`: results against transformers, and every error path.

Results are checked against an independent computation with transformers'
Mamba2ForCausalLM on the same weights (greedy continuation by full forward
passes; cross entropy of the tail).  Errors must be one line on stderr and a
non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fastmamba.compiler.commands.eval as eval_command
from fastmamba.compiler.checkpoint import DEFAULT_MODEL_DIR
from fastmamba.compiler.cli import main
from model_factory import make_config, random_hf_model, save_hf_dir, save_mamba_ssm_dir

REPO = Path(__file__).resolve().parents[1]
# The evaluation text: char-rnn's tiny Shakespeare (1,115,394 bytes), beside the checkout as shared/data/ holds it,
# or wherever FASTMAMBA_EVAL_TEXT names.  Tests that need it skip, naming the file, when it is absent.
SHAKESPEARE = Path(os.environ.get("FASTMAMBA_EVAL_TEXT") or REPO.parent / "shared" / "data" / "tinyshakespeare.txt")
NEEDS_TEXT = pytest.mark.skipif(not SHAKESPEARE.is_file(),
                                reason=f"the evaluation text {SHAKESPEARE} is absent (char-rnn's tiny Shakespeare; "
                                       "set FASTMAMBA_EVAL_TEXT to its path)")
HAVE_DEFAULT = (DEFAULT_MODEL_DIR / "config.json").is_file() and (DEFAULT_MODEL_DIR / "model.safetensors").is_file()
NEEDS_DEFAULT = pytest.mark.skipif(not HAVE_DEFAULT,
                                   reason=f"bundled model not trained yet ({DEFAULT_MODEL_DIR} is absent)")
TEXT = ("ROMEO:\nBut soft, what light through yonder window breaks? It is the east, and Juliet is the sun. "
        "Arise, fair sun, and kill the envious moon. \u00c9t\u00e9 \u2014 caf\u00e9.\n") * 6


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(HF model, its save_pretrained directory): a byte-level model (vocab 256)."""
    config = make_config("tiny")
    model = random_hf_model(config, seed=31)
    return model, save_hf_dir(model, tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def cli(capsys, *argv):
    capsys.readouterr()  # drop what set-up printed (save_pretrained's progress bar)
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def hf_greedy(model, ids, n):
    ids = list(ids)
    with torch.no_grad():
        for _ in range(n):
            ids.append(int(model(torch.tensor([ids]), use_cache=False).logits[0, -1].argmax()))
    return ids


def hf_total_bits(model, ids):
    with torch.no_grad():
        logits = model(torch.tensor([ids]), use_cache=False).logits[0].double()
    nats = torch.nn.functional.cross_entropy(logits[:-1], torch.tensor(ids[1:]), reduction="sum")
    return float(nats) / math.log(2)


# --- generate ---------------------------------------------------------------------------------------------------------


def test_generate_greedy_matches_transformers(tiny, capsys):
    model, directory = tiny
    prompt = "ROMEO: caf\u00e9"
    rc, out, err = cli(capsys, "generate", "--model", str(directory), "--prompt", prompt, "--max-new-tokens", "24",
                       "--greedy")
    assert rc == 0, err
    expected = hf_greedy(model, list(prompt.encode()), 24)
    assert out == bytes(expected).decode("utf-8", errors="replace") + "\n"


def test_generate_sampling_is_seeded(tiny, capsys):
    _, directory = tiny
    args = ("generate", "--model", str(directory), "--prompt", "To be", "--max-new-tokens", "30")
    first = cli(capsys, *args, "--seed", "5")
    again = cli(capsys, *args, "--seed", "5")
    assert first[0] == 0 and first == again
    assert first[1].startswith("To be")
    assert len(first[1].encode("utf-8", errors="surrogateescape")) >= len("To be") + 1


def test_generate_zero_tokens_prints_the_prompt(tiny, capsys):
    rc, out, _ = cli(capsys, "generate", "--model", str(tiny[1]), "--prompt", "Hi", "--max-new-tokens", "0")
    assert (rc, out) == (0, "Hi\n")


def test_generate_from_mamba_ssm_layout(tiny, tmp_path, capsys):
    model, _ = tiny
    directory = save_mamba_ssm_dir(model, make_config("tiny"), tmp_path, fmt="bin")
    rc, out, _ = cli(capsys, "generate", "--model", str(directory), "--prompt", "ab", "--max-new-tokens", "8",
                     "--greedy")
    assert rc == 0
    assert out == bytes(hf_greedy(model, list(b"ab"), 8)).decode("utf-8", errors="replace") + "\n"


# --- eval -------------------------------------------------------------------------------------------------------------


def test_eval_json_matches_transformers_cross_entropy(tiny, text_file, capsys, monkeypatch):
    model, directory = tiny
    monkeypatch.setattr(eval_command, "SEGMENT_TOKENS", 50)  # several segments: the state must carry across them
    rc, out, err = cli(capsys, "eval", "--model", str(directory), "--text", str(text_file), "--tail-fraction", "0.25",
                       "--json")
    assert rc == 0, err
    report = json.loads(out)
    data = text_file.read_bytes()
    tail = data[int(len(data) * 0.75):]
    while 0x80 <= tail[0] < 0xC0:
        tail = tail[1:]
    assert report["tail_bytes"] == len(tail) and report["tokenizer"] == "bytes"
    fp32 = report["fp32"]
    expected_bits = hf_total_bits(model, list(tail))
    assert fp32["tokens_scored"] == fp32["bytes_scored"] == len(tail) - 1
    assert fp32["bits_per_byte"] == pytest.approx(expected_bits / (len(tail) - 1), rel=1e-5)
    assert fp32["perplexity"] == pytest.approx(2 ** fp32["bits_per_byte"], rel=1e-12)


def test_eval_text_output_and_segment_independence(tiny, text_file, capsys, monkeypatch):
    _, directory = tiny
    rc, out, _ = cli(capsys, "eval", "--model", str(directory), "--text", str(text_file), "--json")
    whole = json.loads(out)["fp32"]["bits_per_byte"]
    monkeypatch.setattr(eval_command, "SEGMENT_TOKENS", 7)
    rc, out, _ = cli(capsys, "eval", "--model", str(directory), "--text", str(text_file))
    assert rc == 0
    assert "fp32:" in out and "bits/byte" in out and "per byte" in out
    assert float(out.split("fp32: ")[1].split()[0]) == pytest.approx(whole, abs=1e-4)


def test_eval_reports_progress_on_stderr(tiny, text_file, capsys, monkeypatch):
    monkeypatch.setattr(eval_command, "SEGMENT_TOKENS", 64)
    monkeypatch.setattr(eval_command, "PROGRESS_EVERY_S", 0.0)
    rc, out, err = cli(capsys, "eval", "--model", str(tiny[1]), "--text", str(text_file), "--tail-fraction", "0.5",
                       "--json",
                       "--schemes", "fp32")
    assert rc == 0
    total = json.loads(out)["tail_bytes"]  # stdout stays pure JSON
    lines = err.strip().splitlines()
    assert len(lines) == -(-total // 64)
    assert lines[-1].startswith(f"fastmamba eval: fp32: {total}/{total} tokens")


@pytest.fixture(scope="module")
def bpe_model(tmp_path_factory):
    """(HF model, directory with a byte-level BPE tokenizer.json of < 300 tokens, the tokenizer): vocab 300."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([TEXT], trainers.BpeTrainer(vocab_size=290,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    assert tok.get_vocab_size() <= 300
    config = make_config("groups4_k2")  # vocab 300
    model = random_hf_model(config, seed=33)
    directory = save_hf_dir(model, tmp_path_factory.mktemp("bpe"))
    tok.save(str(directory / "tokenizer.json"))
    return model, directory, tok


def test_generate_with_tokenizer_json(bpe_model, capsys):
    model, directory, tok = bpe_model
    prompt = "Juliet is the"
    rc, out, err = cli(capsys, "generate", "--model", str(directory), "--prompt", prompt, "--max-new-tokens", "12",
                       "--greedy")
    assert rc == 0, err
    ids = tok.encode(prompt, add_special_tokens=False).ids
    allowed = tok.get_vocab_size()
    expected = list(ids)
    with torch.no_grad():
        for _ in range(12):
            expected.append(int(model(torch.tensor([expected]), use_cache=False).logits[0, -1, :allowed].argmax()))
    assert out == prompt + tok.decode(expected[len(ids):]) + "\n"


def test_eval_with_tokenizer_json(bpe_model, text_file, capsys):
    model, directory, tok = bpe_model
    rc, out, err = cli(capsys, "eval", "--model", str(directory), "--text", str(text_file), "--tail-fraction", "0.5",
                       "--json")
    assert rc == 0, err
    report = json.loads(out)
    fp32 = report["fp32"]
    data = text_file.read_bytes()
    tail = data[int(len(data) * 0.5):].decode("utf-8")
    ids = tok.encode(tail, add_special_tokens=False).ids
    assert len(ids) < len(tail.encode()) and report["tokenizer"] == "tokenizer.json"
    bits = hf_total_bits(model, ids)
    assert fp32["tokens_scored"] == len(ids) - 1
    assert fp32["bytes_scored"] == len(tail.encode()) - len(tok.decode(ids[:1]).encode())
    assert fp32["bits_per_byte"] == pytest.approx(bits / fp32["bytes_scored"], rel=1e-5)
    assert fp32["perplexity"] == pytest.approx(2 ** (bits / (len(ids) - 1)), rel=1e-5)


# --- help and errors --------------------------------------------------------------------------------------------------


def test_help(capsys):
    for command, phrase in [("generate", "UTF-8"), ("eval", "2 ** bits_per_byte")]:
        with pytest.raises(SystemExit) as exit_:
            main([command, "--help"])
        out = capsys.readouterr().out
        assert exit_.value.code == 0 and phrase in out and "--model" in out
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "generate" in out and "eval" in out


def assert_one_line_error(rc, out, err, *phrases):
    assert rc != 0
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in err, err
    for phrase in phrases:
        assert phrase in lines[0], lines[0]


@pytest.mark.parametrize("extra,phrases", [
    (["--max-new-tokens", "-1"], ["--max-new-tokens"]),
    (["--max-new-tokens", "many"], ["--max-new-tokens", "'many'"]),
    (["--max-new-tokens", "3", "--seed", "x"], ["--seed"]),
    (["--max-new-tokens", "3", "--seed", "-2"], ["--seed"]),
    (["--max-new-tokens", "3", "--prompt", ""], ["--prompt is empty"]),
])
def test_generate_bad_values(tiny, capsys, extra, phrases):
    argv = ["generate", "--model", str(tiny[1]), "--prompt", "a", *extra]
    assert_one_line_error(*cli(capsys, *argv), *phrases)


@pytest.mark.parametrize("fraction", ["0", "-0.5", "1.5", "abc", "nan"])
def test_eval_bad_tail_fraction(tiny, text_file, capsys, fraction):
    argv = ["eval", "--model", str(tiny[1]), "--text", str(text_file), "--tail-fraction", fraction]
    assert_one_line_error(*cli(capsys, *argv), "--tail-fraction")


def test_eval_bad_text(tiny, tmp_path, capsys):
    base = ["eval", "--model", str(tiny[1]), "--text"]
    assert_one_line_error(*cli(capsys, *base, str(tmp_path / "absent.txt")), "not found", "absent.txt")
    assert_one_line_error(*cli(capsys, *base, str(tmp_path)), "not a file")
    short = tmp_path / "short.txt"
    short.write_bytes(b"abc")
    assert_one_line_error(*cli(capsys, *base, str(short)), "at least 2")


@pytest.mark.parametrize("command", ["generate", "eval"])
def test_bad_model_directories(tiny, tmp_path, text_file, capsys, command):
    tail = ["--prompt", "a", "--max-new-tokens", "1"] if command == "generate" else ["--text", str(text_file)]
    assert_one_line_error(*cli(capsys, command, "--model", str(tmp_path / "nope"), *tail), "not found")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(*cli(capsys, command, "--model", str(empty), *tail), "no config.json")
    bad = tmp_path / "bad"
    bad.mkdir()
    raw = json.loads((tiny[1] / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**raw, "hidden_act": "relu"}))
    assert_one_line_error(*cli(capsys, command, "--model", str(bad), *tail), "hidden_act")


def test_large_vocabulary_without_tokenizer_json(tmp_path, capsys):
    config = make_config("tiny", vocab_size=1000)
    directory = save_hf_dir(random_hf_model(config, seed=34), tmp_path)
    rc, out, err = cli(capsys, "generate", "--model", str(directory), "--prompt", "a", "--max-new-tokens", "1")
    assert_one_line_error(rc, out, err, "tokenizer.json", "vocab_size=1000")


def test_command_line_entry_point_has_no_traceback(tmp_path):
    """The real process: `python -m fastmamba`, as the `fastmamba` script runs it."""
    proc = subprocess.run([sys.executable, "-m", "fastmamba", "eval", "--model", str(tmp_path), "--text",
                           str(tmp_path / "t")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"fastmamba eval: error: --text file not found: {tmp_path / 't'}"


# --- the bundled model ------------------------------------------------------------------------------------------------


@NEEDS_DEFAULT
def test_default_model_generate_matches_transformers(capsys):
    import transformers

    model = transformers.Mamba2ForCausalLM.from_pretrained(DEFAULT_MODEL_DIR).eval()
    rc, out, err = cli(capsys, "generate", "--prompt", "ROMEO:", "--max-new-tokens", "16", "--greedy")
    assert rc == 0, err
    assert out == bytes(hf_greedy(model, list(b"ROMEO:"), 16)).decode("utf-8", errors="replace") + "\n"


@NEEDS_DEFAULT
@NEEDS_TEXT
def test_default_model_eval_matches_transformers(tmp_path, capsys):
    import transformers

    text = tmp_path / "excerpt.txt"
    text.write_bytes(SHAKESPEARE.read_bytes()[-20000:])
    rc, out, err = cli(capsys, "eval", "--text", str(text), "--json")
    assert rc == 0, err
    fp32 = json.loads(out)["fp32"]
    model = transformers.Mamba2ForCausalLM.from_pretrained(DEFAULT_MODEL_DIR).eval()
    data = text.read_bytes()
    tail = list(data[int(len(data) * 0.9):])
    assert fp32["bits_per_byte"] == pytest.approx(hf_total_bits(model, tail) / (len(tail) - 1), rel=1e-5)
    assert fp32["bits_per_byte"] < 3.0  # a trained model, far below the 8 bits of a uniform guess
