"""The mamba_quant dialect (compiler/dialects/mamba_quant.py): verifiers reject bad IR with one-line messages."""

from __future__ import annotations

import pytest

from fastmamba.compiler.pipeline import parse_ir, print_ir
from fastmamba.isa.errors import InputError

GOOD = """
builtin.module {
  func.func @f(%a: tensor<2x8xi16>, %w: tensor<4x8xf32>, %c: tensor<3x4xi16>, %cw: tensor<4x1x3xi16>, %cb: \
tensor<4xi32>,
               %x: tensor<3x4xi16>, %dt: tensor<3x2xi16>, %p: tensor<2x4xi32>, %b: tensor<3x2xi16>, %z: \
tensor<2x8xf32>) -> (tensor<2x4xf32>, tensor<3x4xi16>, tensor<3x4xi32>, tensor<2x8xi8>) {
    %wq, %ws = mamba_quant.quantize_weight %w {granularity = "channel"} : tensor<4x8xf32> -> tensor<4x8xi8>, \
tensor<4xf32>
    %y = mamba_quant.qlinear %a, %wq, %ws {hlog2 = 3 : i64, qmul = 300 : i64, qshift = 12 : i64, act_scale = 0.5 : \
f64} : (tensor<2x8xi16>, tensor<4x8xi8>, tensor<4xf32>) -> tensor<2x4xf32>
    %o, %s = mamba_quant.qconv1d %c, %cw, %cb {shift = 3 : i64} : tensor<3x4xi16>, tensor<4x1x3xi16>, tensor<4xi32> -> \
tensor<3x4xi16>, tensor<4x2xi16>
    %sy, %ss = mamba_quant.qssm_scan %x, %dt, %p, %b, %b {dt_frac = 12 : i64, a_frac = 12 : i64, dbx_shift = 17 : i64, \
y_shift = 18 : i64, d_shift = 10 : i64, nonlinear = "table"} : tensor<3x4xi16>, tensor<3x2xi16>, tensor<2x4xi32>, \
tensor<3x2xi16>, tensor<3x2xi16> -> tensor<3x4xi32>, tensor<2x2x2xi32>
    %v = mamba_quant.vec %a, %z {ops = ["gate", "rmsnorm"], a_exp = -8 : i64, b_exp = 0 : i64, group = 4 : i64, eps = \
1.0e-05 : f64, out_scale = 100.0 : f32} : tensor<2x8xi16>, tensor<2x8xf32> -> tensor<2x8xi8>
    func.return %y, %o, %sy, %v : tensor<2x4xf32>, tensor<3x4xi16>, tensor<3x4xi32>, tensor<2x8xi8>
  }
}
"""


def test_good_ir_round_trips():
    text = print_ir(parse_ir(GOOD))
    assert print_ir(parse_ir(text)) == text


@pytest.mark.parametrize("old,new,message", [
    ("qmul = 300 : i64", "qmul = 70000 : i64", "qmul must lie in"),
    ("hlog2 = 3 : i64", "hlog2 = 4 : i64", "block 16 does not divide"),
    ('granularity = "channel"', 'granularity = "row"', "granularity must be"),
    ("{shift = 3 : i64}", "{shift = 64 : i64}", "shift must lie in"),
    ('nonlinear = "table"', 'nonlinear = "cubic"', "nonlinear must be one of"),
    ('ops = ["gate", "rmsnorm"]', 'ops = ["gate", "rmsnorm", "silu", "silu", "silu"]', "at most 4 micro-ops"),
    ('ops = ["gate", "rmsnorm"]', 'ops = ["tanh"]', "at most 4 micro-ops"),
    ("group = 4 : i64", "group = 3 : i64", "group 3 does not divide"),
    ("a_exp = -8 : i64", "a_exp = -200 : i64", "a_exp must lie in"),
])
def test_bad_attributes_are_rejected(old, new, message):
    assert old in GOOD
    with pytest.raises(InputError, match=message):
        parse_ir(GOOD.replace(old, new))


def test_wrong_element_types_are_rejected():
    bad = GOOD.replace("%cb: tensor<4xi32>", "%cb: tensor<4xi16>").replace(
        "tensor<4x1x3xi16>, tensor<4xi32> ->", "tensor<4x1x3xi16>, tensor<4xi16> ->")
    with pytest.raises(InputError, match="the bias must be i32"):
        parse_ir(bad)
    no_b = GOOD.replace("%v = mamba_quant.vec %a, %z", "%v = mamba_quant.vec %a").replace(
        "tensor<2x8xi16>, tensor<2x8xf32> -> tensor<2x8xi8>", "tensor<2x8xi16> -> tensor<2x8xi8>")
    with pytest.raises(InputError, match="need a b operand"):
        parse_ir(no_b)
