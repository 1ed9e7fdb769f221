"""fuse-elementwise (passes/fuse_elementwise.py): element-wise chains -> single VEC passes, values unchanged."""

from __future__ import annotations

import numpy as np

from fastmamba.compiler.interpreters.mamba_quant import run_function
from fastmamba.compiler.pipeline import parse_ir, print_ir, run_pipeline

IR = """
builtin.module {
  func.func @f(%c: tensor<4x8xi16>, %z: tensor<4x8xf32>, %u: tensor<4x8xf32>) -> (tensor<4x8xi16>, tensor<4x8xf32>, \
tensor<4x8xf32>) {
    %d = mamba_quant.dequantize %c {exp = -10 : i64} : tensor<4x8xi16> -> tensor<4x8xf32>
    %s = mamba.silu %d : tensor<4x8xf32>
    %one = mamba_quant.fill {value = 1.0 : f64} : tensor<8xf32>
    %g = mamba.gated_rmsnorm %s, %z, %one {eps = 1.000000e-05 : f64, group_size = 4 : i64} : (tensor<4x8xf32>, \
tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
    %q = mamba_quant.quantize %g {out_scale = 1000.0 : f32} : tensor<4x8xf32> -> tensor<4x8xi16>
    %a = mamba.add %u, %z : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x8xf32>
    %n = mamba.rmsnorm %a, %one {eps = 1.000000e-05 : f64} : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
    func.return %q, %a, %n : tensor<4x8xi16>, tensor<4x8xf32>, tensor<4x8xf32>
  }
}
"""


def _inputs():
    rng = np.random.default_rng(0)
    return (rng.integers(-3000, 3000, (4, 8)), rng.standard_normal((4, 8)).astype(np.float32),
            rng.standard_normal((4, 8)).astype(np.float32))


def test_chains_fuse_into_vec_passes_and_are_counted():
    module = run_pipeline(parse_ir(IR), "fuse-elementwise")
    text = print_ir(module)
    vecs = [line for line in text.splitlines() if "mamba_quant.vec" in line]
    # dequantize -> silu -> gate+rmsnorm -> quantize: one pass (4 micro-ops would not fit a b twice, here 3 ops).
    assert any('ops = ["silu", "gate", "rmsnorm"], a_exp = -10' in v and "out_scale = 1.000000e+03" in v for v in vecs)
    # add has two uses (returned, and the norm): it stays its own pass; the norm is another.
    assert any('ops = ["add"]' in v for v in vecs) and any('ops = ["rmsnorm"]' in v for v in vecs)
    assert len(vecs) == 3
    assert "mamba_quant.fused = {converted = 6 : i64, fused = 3 : i64, passes = 3 : i64}" in text


def test_fused_values_match_a_float64_reference():
    converted_only = run_pipeline(parse_ir(IR), "fuse-elementwise")
    fused = run_function(converted_only, {}, "f", *_inputs())
    c, z, u = _inputs()
    # Independent reference in float64, rounded where the unit rounds (close, not bit-exact).
    x = c * 2.0 ** -10
    s = x / (1 + np.exp(-x))
    g = (s * z / (1 + np.exp(-z))).reshape(4, 2, 4)
    g = (g / np.sqrt((g * g).mean(-1, keepdims=True) + 1e-5)).reshape(4, 8)
    assert np.abs(fused[0] - np.rint(g * 1000)).max() <= 1
    assert np.array_equal(fused[1], u + z)
    a = (u + z).astype(np.float64)
    assert np.allclose(fused[2], a / np.sqrt((a * a).mean(-1, keepdims=True) + 1e-5), rtol=1e-5)


def test_no_elementwise_ops_no_change():
    ir = """
builtin.module {
  func.func @f(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {
    %w = mamba.weight "w" : tensor<8x8xf32>
    %y = mamba.linear %x, %w : (tensor<2x8xf32>, tensor<8x8xf32>) -> tensor<2x8xf32>
    func.return %y : tensor<2x8xf32>
  }
}
"""
    text = print_ir(run_pipeline(parse_ir(ir), "fuse-elementwise"))
    assert "mamba_quant.vec" not in text and "converted = 0 : i64, fused = 0 : i64, passes = 0 : i64" in text


def test_a_weighted_gated_norm_is_left_alone():
    ir = IR.replace('%one = mamba_quant.fill {value = 1.0 : f64} : tensor<8xf32>',
                    '%one = mamba.weight "norm" : tensor<8xf32>')
    text = print_ir(run_pipeline(parse_ir(ir), "fuse-elementwise"))
    assert "mamba.gated_rmsnorm" in text  # gate and a weight multiply would need two b operands
    assert 'ops = ["rmsnorm", "mul"]' in text  # a weighted rmsnorm is one pass with the weight as b


SLICED = """
builtin.module {
  func.func @f(%c: tensor<4x10xi16>) -> (tensor<4x6xi16>, tensor<4x4xi16>) {
    %d = mamba_quant.dequantize %c {exp = -10 : i64} : tensor<4x10xi16> -> tensor<4x10xf32>
    %s = mamba.silu %d : tensor<4x10xf32>
    %x = mamba.slice %s {axis = 1 : i64, start = 0 : i64, size = 6 : i64} : tensor<4x10xf32> -> tensor<4x6xf32>
    %b = mamba.slice %s {axis = 1 : i64, start = 6 : i64, size = 4 : i64} : tensor<4x10xf32> -> tensor<4x4xf32>
    %qx = mamba_quant.quantize %x {out_scale = 512.0 : f32} : tensor<4x6xf32> -> tensor<4x6xi16>
    %qb = mamba_quant.quantize %b {out_scale = 2048.0 : f32} : tensor<4x4xf32> -> tensor<4x4xi16>
    func.return %qx, %qb : tensor<4x6xi16>, tensor<4x4xi16>
  }
}
"""


def test_a_columnwise_pass_merges_into_the_vecs_of_its_slices():
    """silu, then slices quantized with their own scales: one pass per slice reading the slice of the input."""
    before = parse_ir(SLICED)
    c = np.random.default_rng(1).integers(-9000, 9000, (4, 10))
    converted = run_pipeline(parse_ir(SLICED), "fuse-elementwise")
    text = print_ir(converted)
    vecs = [line for line in text.splitlines() if "mamba_quant.vec" in line]
    assert len(vecs) == 2 and all('ops = ["silu"], a_exp = -10' in v and "xi16> -> tensor<4x" in v for v in vecs)
    assert text.count("mamba.slice") == 2 and "tensor<4x10xf32>" not in text  # slices of the i16 input
    assert "fused = 3 : i64, passes = 2 : i64" in text
    want = run_function(before, {}, "f", c)  # the unfused ops, as the interpreter runs them
    got = run_function(converted, {}, "f", c)
    assert all(np.array_equal(a, b) for a, b in zip(got, want))
