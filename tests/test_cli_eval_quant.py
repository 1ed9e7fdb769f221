"""`fastmamba eval` with the quantized schemes (compiler/commands/eval.py, compiler/quant/evaluate.py)."""

from __future__ import annotations

import json

import pytest

from fastmamba.compiler.cli import main
from model_factory import make_config, random_hf_model, save_hf_dir

SCHEMES = ["fp32", "w8a8_rtn", "w8a8_hadamard_linear", "fastmamba"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalq")
    model = save_hf_dir(random_hf_model(make_config("tiny"), seed=5), root / "model")
    text = root / "text.txt"
    text.write_text("First Citizen:\nBefore we proceed any further, hear me speak.\n" * 12)
    return model, text


def _eval(capsys, *args):
    rc = main(["eval", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_json_has_the_four_schemes_in_order(setup, capsys):
    model, text = setup
    rc, out, _ = _eval(capsys, "--model", str(model), "--text", str(text), "--json", "--tail-fraction", "0.3",
                       "--outliers")
    assert rc == 0
    report = json.loads(out)
    assert [k for k in report if k in SCHEMES] == SCHEMES
    for name in SCHEMES:
        m = report[name]
        assert m["perplexity"] == pytest.approx(2 ** (m["total_bits"] / m["tokens_scored"]))
        assert 0 < m["bits_per_byte"] < 16 and m["tokens_scored"] == report["fp32"]["tokens_scored"]
    assert report["w8a8_rtn"]["bits_per_byte"] != report["fp32"]["bits_per_byte"]
    # Quantization costs something but not everything (a random tiny model is hard to quantize, hence 15%).
    for name in SCHEMES[1:]:
        assert abs(report[name]["perplexity"] / report["fp32"]["perplexity"] - 1) < 0.15
    assert report["calibration_bytes"] > 0 and report["injected_outlier_channels"] == 0
    sites = report["outliers"]
    assert len(sites) == 4 and all(set(r) == {"before", "after"} and r["before"] >= 1 for r in sites.values())


def test_injected_outliers_are_reported_before_and_after_rotation(setup, capsys):
    model, text = setup
    rc, out, _ = _eval(capsys, "--model", str(model), "--text", str(text), "--json", "--tail-fraction", "0.3",
                       "--schemes", "w8a8_hadamard_linear,fp32,w8a8_rtn", "--inject-outliers", "2", "--outliers")
    assert rc == 0
    report = json.loads(out)
    assert [k for k in report if k in SCHEMES] == ["fp32", "w8a8_rtn", "w8a8_hadamard_linear"]
    assert report["injected_outlier_channels"] == 2
    assert all(r["before"] > 10 and r["after"] < r["before"] / 3 for r in report["outliers"].values())


def test_text_output_lists_each_scheme(setup, capsys):
    model, text = setup
    rc, out, _ = _eval(capsys, "--model", str(model), "--text", str(text), "--tail-fraction", "0.2",
                       "--schemes", "fp32,fastmamba", "--outliers")
    assert rc == 0
    assert out.count("bits/byte") == 2 and "fastmamba:" in out and "outliers backbone.layers.0.mixer.in_proj" in out


@pytest.mark.parametrize("args,message", [
    (["--schemes", "fp32,int4"], "unknown scheme(s) int4"),
    (["--schemes", ","], "(none given)"),
    (["--calibration-bytes", "0"], "--calibration-bytes must be positive"),
])
def test_bad_flags_are_one_line_errors(setup, capsys, args, message):
    model, text = setup
    rc, _, err = _eval(capsys, "--model", str(model), "--text", str(text), *args)
    assert rc == 1 and message in err and err.count("\n") == 1
