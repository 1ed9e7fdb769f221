"""fold-norm-weights (passes/fold_norm_weights.py): small IR in -> IR out, numbers against the unfolded IR."""

from __future__ import annotations

import numpy as np

from fastmamba.compiler.interpreters.mamba_quant import run_function
from fastmamba.compiler.pipeline import parse_ir, print_ir, run_pipeline

IR = """
builtin.module {
  func.func @f(%x: tensor<3x8xf32>, %y: tensor<3x16xf32>, %z: tensor<3x16xf32>) -> (tensor<3x4xf32>, tensor<1x4xf32>, \
tensor<3x8xf32>, tensor<3x8xf32>) {
    %g = mamba.weight "norm.weight" : tensor<8xf32>
    %w = mamba.weight "proj.weight" : tensor<4x8xf32>
    %n = mamba.rmsnorm %x, %g {eps = 1.000000e-05 : f64} : (tensor<3x8xf32>, tensor<8xf32>) -> tensor<3x8xf32>
    %a = mamba.linear %n, %w : (tensor<3x8xf32>, tensor<4x8xf32>) -> tensor<3x4xf32>
    %r = mamba.slice %n {axis = 0 : i64, start = 2 : i64, size = 1 : i64} : tensor<3x8xf32> -> tensor<1x8xf32>
    %b = mamba.lm_head %r, %w : (tensor<1x8xf32>, tensor<4x8xf32>) -> tensor<1x4xf32>
    %h = mamba.weight "other.weight" : tensor<8xf32>
    %m = mamba.rmsnorm %x, %h {eps = 1.000000e-05 : f64} : (tensor<3x8xf32>, tensor<8xf32>) -> tensor<3x8xf32>
    %s = mamba.add %m, %x : (tensor<3x8xf32>, tensor<3x8xf32>) -> tensor<3x8xf32>
    %gw = mamba.weight "gated.weight" : tensor<16xf32>
    %o = mamba.weight "out.weight" : tensor<8x16xf32>
    %q = mamba.gated_rmsnorm %y, %z, %gw {eps = 1.000000e-05 : f64, group_size = 8 : i64} : (tensor<3x16xf32>, \
tensor<3x16xf32>, tensor<16xf32>) -> tensor<3x16xf32>
    %p = mamba.linear %q, %o : (tensor<3x16xf32>, tensor<8x16xf32>) -> tensor<3x8xf32>
    func.return %a, %b, %s, %p : tensor<3x4xf32>, tensor<1x4xf32>, tensor<3x8xf32>, tensor<3x8xf32>
  }
}
"""


def _weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"norm.weight": rng.uniform(0.5, 2.0, 8).astype(np.float32),
            "proj.weight": rng.standard_normal((4, 8)).astype(np.float32),
            "other.weight": rng.uniform(0.5, 2.0, 8).astype(np.float32),
            "gated.weight": rng.uniform(0.5, 2.0, 16).astype(np.float32),
            "out.weight": rng.standard_normal((8, 16)).astype(np.float32)}


def _inputs(seed: int = 1):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(np.float32) for s in ((3, 8), (3, 16), (3, 16))]


def test_folds_into_linear_readers_and_keeps_other_norms():
    module = run_pipeline(parse_ir(IR), "fold-norm-weights")
    text = print_ir(module)
    # The norm read by linear and (through a row slice) by lm_head: unit weight, both weights scaled.
    assert text.count("mamba_quant.fill") == 2  # rmsnorm %n and the gated norm
    assert text.count("mamba_quant.scale_columns") == 3  # linear %a, lm_head %b, linear %p
    assert 'mamba.rmsnorm %x, %g ' not in text
    # The norm read by an add is the negative case: its weight stays.
    assert "mamba.rmsnorm %x, %h " in text
    # Idempotent: a second run changes nothing.
    assert print_ir(run_pipeline(parse_ir(text), "fold-norm-weights")) == text


def test_outputs_equal_the_unfolded_ir():
    weights = _weights()
    before = run_function(parse_ir(IR), weights, "f", *_inputs())
    after = run_function(run_pipeline(parse_ir(IR), "fold-norm-weights"), weights, "f", *_inputs())
    for b, a in zip(before, after):
        assert np.abs(a - b).max() <= 1e-5 * max(1.0, np.abs(b).max())
    assert np.array_equal(before[2], after[2])  # the unfolded norm computes exactly as before


def test_nothing_to_fold_leaves_the_ir_unchanged():
    text = IR.replace("%a = mamba.linear %n, %w", "%a = mamba.linear %x, %w").replace(
        "%r = mamba.slice %n", "%r = mamba.slice %x").replace("%p = mamba.linear %q, %o", "%p = mamba.linear %y, %o")
    out = print_ir(run_pipeline(parse_ir(text), "fold-norm-weights"))
    assert "mamba_quant" not in out and "mamba.gated_rmsnorm %y, %z, %gw" not in out  # (the walker drops dead ops)
    assert "mamba.rmsnorm %x, %h " in out


def test_cli_opt_runs_the_pass(tmp_path, capsys):
    from fastmamba.compiler.cli import main

    path = tmp_path / "in.mlir"
    path.write_text(IR)
    assert main(["opt", str(path), "-p", "fold-norm-weights", "--print-ir-after", "fold-norm-weights"]) == 0
    out, err = capsys.readouterr()
    assert "IR Dump After fold-norm-weights" in err and "mamba_quant.scale_columns" in out
    assert main(["opt", str(path), "-p", "fold-norm-weights{bogus=1}"]) == 1
    assert "error" in capsys.readouterr().err
