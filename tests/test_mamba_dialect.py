"""The `mamba` dialect (compiler/dialects/mamba.py): verifiers and print/parse round trips."""

from __future__ import annotations

import pytest

from fastmamba.compiler.frontend.importer import import_model
from fastmamba.compiler.pipeline import parse_ir, print_ir
from fastmamba.isa.errors import InputError
from model_factory import make_config

GOOD = """\
builtin.module {
  func.func @f(%tokens: tensor<4xi64>, %st: tensor<4x2x3xf32>) -> (tensor<4x4xf32>, tensor<4x2x3xf32>) {
    %w = mamba.weight "table" : tensor<10x8xf32>
    %e = mamba.embedding %tokens, %w : (tensor<4xi64>, tensor<10x8xf32>) -> tensor<4x8xf32>
    %nw = mamba.weight "norm" : tensor<8xf32>
    %n = mamba.rmsnorm %e, %nw {eps = 1.000000e-05 : f64} : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
    %cw = mamba.weight "conv" : tensor<8x1x3xf32>
    %c, %cs = mamba.conv1d %n, %cw : tensor<4x8xf32>, tensor<8x1x3xf32> -> tensor<4x8xf32>, tensor<8x2xf32>
    %x = mamba.slice %c {axis = 1 : i64, start = 0 : i64, size = 8 : i64} : tensor<4x8xf32> -> tensor<4x8xf32>
    %dt = mamba.slice %c {axis = 1 : i64, start = 0 : i64, size = 4 : i64} : tensor<4x8xf32> -> tensor<4x4xf32>
    %b = mamba.slice %c {axis = 1 : i64, start = 0 : i64, size = 6 : i64} : tensor<4x8xf32> -> tensor<4x6xf32>
    %h = mamba.weight "per_head" : tensor<4xf32>
    %y, %s = mamba.ssm_scan %x, %dt, %h, %b, %b, %h state %st : tensor<4x8xf32>, tensor<4x4xf32>, tensor<4xf32>, \
tensor<4x6xf32>, tensor<4x6xf32>, tensor<4xf32> state tensor<4x2x3xf32> -> tensor<4x8xf32>, tensor<4x2x3xf32>
    %g = mamba.gated_rmsnorm %y, %x, %nw {eps = 1.000000e-05 : f64, group_size = 4 : i64} : (tensor<4x8xf32>, \
tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
    %ow = mamba.weight "out" : tensor<4x8xf32>
    %o = mamba.linear %g, %ow : (tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x4xf32>
    %sp = mamba.softplus %o : tensor<4x4xf32>
    %a = mamba.add %sp, %h : (tensor<4x4xf32>, tensor<4xf32>) -> tensor<4x4xf32>
    func.return %a, %s : tensor<4x4xf32>, tensor<4x2x3xf32>
  }
}
"""


def test_hand_written_ir_verifies_and_round_trips():
    text = print_ir(parse_ir(GOOD))
    assert text == GOOD
    assert print_ir(parse_ir(text)) == text


@pytest.mark.parametrize("program", ["prefill", "decode"])
def test_imported_ir_round_trips(program):
    module = import_model(make_config("groups2"), program, 5).module
    text = print_ir(module)
    again = print_ir(parse_ir(text))
    assert again == text
    assert print_ir(parse_ir(again)) == again


# (substring of GOOD, replacement, expected message part)
BAD = [
    ("%w = mamba.weight \"table\"", "%w = mamba.weight \"\"", "weight name is empty"),
    ("-> tensor<4x8xf32>, tensor<8x2xf32>", "-> tensor<4x8xf32>, tensor<8x3xf32>", "new state has shape"),
    ("eps = 1.000000e-05 : f64} : (tensor<4x8xf32>, tensor<8xf32>)",
     "eps = 1.5 : f64} : (tensor<4x8xf32>, tensor<8xf32>)",
     "eps must lie in"),
    ("start = 0 : i64, size = 8 : i64}", "start = 1 : i64, size = 8 : i64}", "out of range"),
    ("axis = 1 : i64, start = 0 : i64, size = 4", "axis = 2 : i64, start = 0 : i64, size = 4",
     "axis 2 is out of range"),
    ("group_size = 4 : i64", "group_size = 3 : i64", "group_size 3 does not divide"),
    ("tensor<4x8xf32>, tensor<4x8xf32>) -> tensor<4x4xf32>", "tensor<4x8xf32>, tensor<4x7xf32>) -> tensor<4x4xf32>",
     "x has 8 columns"),
    ("%a = mamba.add %sp, %h : (tensor<4x4xf32>, tensor<4xf32>)",
     "%a = mamba.add %h, %sp : (tensor<4xf32>, tensor<4x4xf32>)",
     "does not broadcast"),
    ("tensor<8xf32>", "tensor<8xf64>", "element types differ"),
    ("%st: tensor<4x2x3xf32>) ->", "%st: tensor<4x3x2xf32>) ->", "the state has shape"),
]


@pytest.mark.parametrize("old,new,message", BAD, ids=[b[2] for b in BAD])
def test_verifier_rejects(old, new, message):
    assert old in GOOD
    text = GOOD.replace(old, new)  # every occurrence, so the parser's own type checks pass
    text = text.replace("state tensor<4x2x3xf32> ->", "state tensor<4x3x2xf32> ->") if "4x3x2" in new else text
    if "4x7" in new:
        text = text.replace('"out" : tensor<4x8xf32>', '"out" : tensor<4x7xf32>')
    with pytest.raises(InputError, match=message):
        parse_ir(text)


def test_ssm_step_takes_one_token():
    text = GOOD.replace("mamba.ssm_scan", "mamba.ssm_step").replace(" state %st", ", %st").replace(
        "tensor<4xf32> state tensor<4x2x3xf32> ->", "tensor<4xf32>, tensor<4x2x3xf32> ->")
    text = text.replace("%b, %b, %h, %st : tensor<4x8xf32>", "%b, %b, %h, %st : (tensor<4x8xf32>").replace(
        "tensor<4x2x3xf32> -> tensor<4x8xf32>, tensor<4x2x3xf32>\n", "tensor<4x2x3xf32>) -> (tensor<4x8xf32>, "
                                                                     "tensor<4x2x3xf32>)\n")
    with pytest.raises(InputError, match="a step takes one token, got 4"):
        parse_ir(text)


def test_float_tokens_are_rejected():
    text = GOOD.replace("tensor<4xi64>", "tensor<4xf32>")
    with pytest.raises(InputError, match="tokens must be integers"):
        parse_ir(text)
