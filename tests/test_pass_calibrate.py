"""calibrate (passes/calibrate.py): ranges recorded on IR ops, against numpy on the same values."""

from __future__ import annotations

import numpy as np
import pytest

from fastmamba.compiler.pipeline import parse_ir, print_ir, run_pipeline
from fastmamba.compiler.quant.plan import HEAD_SITE
from fastmamba.isa.errors import InputError
from fastmamba.passes.calibrate import RANGE_ATTR, calibrate_module

IR = """
builtin.module {
  func.func @prefill(%tokens: tensor<4xi64>) -> tensor<4x8xf32> {
    %e = mamba.weight "backbone.embeddings.weight" : tensor<16x8xf32>
    %x = mamba.embedding %tokens, %e : (tensor<4xi64>, tensor<16x8xf32>) -> tensor<4x8xf32>
    %w = mamba.weight "backbone.layers.0.mixer.in_proj.weight" : tensor<8x8xf32>
    %y = mamba.linear %x, %w : (tensor<4x8xf32>, tensor<8x8xf32>) -> tensor<4x8xf32>
    func.return %y : tensor<4x8xf32>
  }
}
"""


def _weights():
    rng = np.random.default_rng(0)
    e = rng.standard_normal((16, 8)).astype(np.float32)
    e[:, 3] *= 10.0  # an outlier channel
    return {"backbone.embeddings.weight": e,
            "backbone.layers.0.mixer.in_proj.weight": rng.standard_normal((8, 8)).astype(np.float32)}


def _ranges(module) -> dict[str, float]:
    op = next(o for o in module.walk() if o.name == "mamba.linear")
    return {k: v.value.data for k, v in op.attributes[RANGE_ATTR].data.items()}


def test_max_ranges_of_a_linear_input_with_and_without_rotation():
    w = _weights()
    tokens = np.array([1, 5, 7, 2, 9, 11, 0, 3, 15, 4])  # two windows of 4 (the last 2 tokens are unused)
    module = parse_ir(IR)
    calibrate_module(module, w, tokens, windows=8)
    seen = w["backbone.embeddings.weight"][tokens[:8]]
    r = _ranges(module)
    assert r["x"] == pytest.approx(np.abs(seen).max()) and r["xr"] == r["x"]
    assert r["w"] == pytest.approx(np.abs(w["backbone.layers.0.mixer.in_proj.weight"]).max())

    rotated = run_pipeline(parse_ir(IR), "set-target,insert-hadamard{block=8}")
    calibrate_module(rotated, w, tokens, windows=8)
    r = _ranges(rotated)
    h = np.array([[1.0]])
    while h.shape[0] < 8:
        h = np.block([[h, h], [h, -h]])
    assert r["x"] == pytest.approx(np.abs(seen).max())
    assert r["xr"] == pytest.approx(np.abs(seen @ h / np.sqrt(8)).max(), rel=1e-6)
    assert r["xr"] < r["x"] / 2  # the rotation spreads the outlier channel
    # The attribute survives printing and parsing.
    assert RANGE_ATTR in print_ir(parse_ir(print_ir(rotated)))


def test_the_head_is_calibrated_as_a_linear_at_site_lm_head():
    """The LM head's input gets "x" and "xr" like a projection's, under HEAD_SITE also when tied to the embeddings."""
    w = _weights()
    tokens = np.arange(8)
    head = IR.replace("-> tensor<4x8xf32> {", "-> tensor<4x16xf32> {").replace(
        "func.return %y : tensor<4x8xf32>",
        "%l = mamba.lm_head %y, %e : (tensor<4x8xf32>, tensor<16x8xf32>) -> tensor<4x16xf32>\n    func.return %l : "
        "tensor<4x16xf32>")
    module = parse_ir(head)
    ranges = calibrate_module(module, w, tokens, windows=2)
    assert HEAD_SITE == "lm_head" and set(ranges) == {"backbone.layers.0.mixer.in_proj", "lm_head"}
    y = w["backbone.embeddings.weight"][tokens] @ w["backbone.layers.0.mixer.in_proj.weight"].T
    r = ranges["lm_head"]
    assert r["x"] == pytest.approx(np.abs(y).max(), rel=1e-6) and r["xr"] == r["x"]
    assert r["w"] == pytest.approx(np.abs(w["backbone.embeddings.weight"]).max())
    rotated = run_pipeline(parse_ir(head), "set-target,insert-hadamard{head=true}")
    r = calibrate_module(rotated, w, tokens, windows=2)["lm_head"]
    assert r["x"] == pytest.approx(np.abs(y).max(), rel=1e-6) and r["xr"] != r["x"]


def test_percentile_is_below_max():
    w = _weights()
    tokens = np.arange(16) % 16
    a, b = parse_ir(IR), parse_ir(IR)
    calibrate_module(a, w, tokens, windows=4)
    calibrate_module(b, w, tokens, method="percentile", percentile=50.0, windows=4)
    seen = np.abs(w["backbone.embeddings.weight"][tokens])
    want = np.mean([np.percentile(seen[i * 4:(i + 1) * 4], 50.0) for i in range(4)])
    assert _ranges(b)["x"] == pytest.approx(want) and _ranges(b)["x"] < _ranges(a)["x"]


def test_bad_inputs_are_one_line_errors(tmp_path):
    w = _weights()
    with pytest.raises(InputError, match="needs 4"):
        calibrate_module(parse_ir(IR), w, np.array([1, 2]))
    with pytest.raises(InputError, match="method"):
        calibrate_module(parse_ir(IR), w, np.arange(8), method="median")
    with pytest.raises(InputError, match="no function @decode"):
        calibrate_module(parse_ir(IR), w, np.arange(8), function="decode")
    decode = IR.replace("@prefill(%tokens: tensor<4xi64>)", "@prefill(%tokens: tensor<4xi64>, %s: tensor<2xf32>)")
    with pytest.raises(InputError, match="only a token tensor"):
        calibrate_module(parse_ir(decode), w, np.arange(8))
    with pytest.raises(InputError, match="calibration text"):
        run_pipeline(parse_ir(IR), "calibrate")
    with pytest.raises(InputError, match="cannot read"):
        run_pipeline(parse_ir(IR), f'calibrate{{text="{tmp_path / "missing.txt"}"}}')
    with pytest.raises(InputError, match="calibrate: method must be one of 'max', 'percentile', got 'median'"):
        run_pipeline(parse_ir(IR), 'calibrate{method="median"}')
    with pytest.raises(InputError, match="give text or random=true, not both"):
        run_pipeline(parse_ir(IR), f'set-target,calibrate{{text="{tmp_path / "t.txt"}" random=true}}')


def test_cli_calibrates_with_a_model_directory(tmp_path, capsys):
    from fastmamba.compiler.cli import main
    from model_factory import make_config, random_hf_model, save_hf_dir

    model = save_hf_dir(random_hf_model(make_config("tiny"), seed=4), tmp_path / "m")
    text = tmp_path / "calib.txt"
    text.write_text("To be, or not to be, that is the question. " * 4)
    ir = tmp_path / "in.mlir"
    assert main(["import", "--model", str(model), "--seq-len", "8", "-o", str(ir)]) == 0
    spec = f'set-target,fold-norm-weights,insert-hadamard,calibrate{{text="{text}" model="{model}" windows=2}}'
    assert main(["opt", str(ir), "-p", spec, "-o", str(tmp_path / "out.mlir")]) == 0
    out = (tmp_path / "out.mlir").read_text()
    assert out.count(RANGE_ATTR) == 2 * 4 + 1  # per layer in_proj, conv1d, SSM, out_proj; and the head
    assert main(["opt", str(tmp_path / "out.mlir"), "-p", "assign-scales,approximate-nonlinear,fuse-elementwise",
                 "--print-ir-after-all"]) == 0
    captured = capsys.readouterr()
    for name in ("assign-scales", "approximate-nonlinear", "fuse-elementwise"):
        assert f"IR Dump After {name}" in captured.err
    assert "mamba_quant.qlinear" in captured.out and "mamba_quant.fused" in captured.out


def test_random_tokens_and_copy_to_as_options(tmp_path):
    """calibrate{random=true seed=S windows=W model=DIR copy_to="decode"} records what calibrate_module records on
    seed S's uniform tokens with that model's weights, and gives @decode's ops the same ranges site by site."""
    from fastmamba.compiler.checkpoint import load_model
    from fastmamba.compiler.compile import merge_decode
    from fastmamba.compiler.frontend.importer import import_model
    from fastmamba.compiler.weights import NumpyWeights
    from fastmamba.passes.calibrate import recorded_ranges
    from model_factory import make_config, random_hf_model, save_hf_dir

    model = save_hf_dir(random_hf_model(make_config("tiny"), seed=4), tmp_path / "m")
    config, store = load_model(model)
    module = import_model(model, "prefill", 6).module
    merge_decode(module, import_model(model, "prefill", 1).module)
    reference = run_pipeline(module.clone(), "set-target,fold-norm-weights,insert-hadamard,dce")
    tokens = np.random.default_rng(7).integers(0, config.vocab_size, 2 * 6)
    want = calibrate_module(reference, NumpyWeights(store), tokens, windows=2)
    run_pipeline(module, f'set-target,fold-norm-weights,insert-hadamard,dce,'
                         f'calibrate{{random=true seed=7 windows=2 model="{model}" copy_to="decode"}}')
    assert recorded_ranges(module, "prefill") == want and len(want) == 2 * 4 + 1
    assert recorded_ranges(module, "decode") == want
    other = np.random.default_rng(8).integers(0, config.vocab_size, 2 * 6)
    assert calibrate_module(reference, NumpyWeights(store), other, windows=2) != want  # the seed matters
