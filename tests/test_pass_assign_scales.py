"""assign-scales (passes/assign_scales.py): calibrated ops in -> quantized ops out, numbers against plain numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fastmamba.compiler.interpreters.mamba_quant import run_function
from fastmamba.compiler.pipeline import parse_ir, print_ir, run_pipeline
from fastmamba.isa.errors import InputError

LINEAR = """
builtin.module {
  func.func @f(%x: tensor<3x8xf32>) -> tensor<3x4xf32> {
    %w = mamba.weight "backbone.layers.0.mixer.in_proj.weight" : tensor<4x8xf32>
    %y = mamba.linear %x, %w {mamba_quant.range = {x = 2.0 : f64, xr = 2.0 : f64}} : (tensor<3x8xf32>, \
tensor<4x8xf32>) -> tensor<3x4xf32>
    func.return %y : tensor<3x4xf32>
  }
}
"""

ROTATED = """
builtin.module {
  func.func @f(%x: tensor<3x8xf32>) -> tensor<3x4xf32> {
    %w = mamba.weight "backbone.layers.0.mixer.in_proj.weight" : tensor<4x8xf32>
    %xr = mamba_quant.hadamard %x {block = 8 : i64} : tensor<3x8xf32> -> tensor<3x8xf32>
    %wr = mamba_quant.rotate_columns %w {block = 8 : i64} : tensor<4x8xf32> -> tensor<4x8xf32>
    %y = mamba.linear %xr, %wr {mamba_quant.range = {x = 2.0 : f64, xr = 6.0 : f64}} : (tensor<3x8xf32>, \
tensor<4x8xf32>) -> tensor<3x4xf32>
    func.return %y : tensor<3x4xf32>
  }
}
"""


def _w():
    rng = np.random.default_rng(0)
    return {"backbone.layers.0.mixer.in_proj.weight": rng.standard_normal((4, 8)).astype(np.float32)}


def _x():
    return (np.random.default_rng(1).uniform(-2, 2, (3, 8))).astype(np.float32)


def test_linear_without_rotation_is_w8a8_round_to_nearest():
    module = run_pipeline(parse_ir(LINEAR), "set-target,assign-scales")
    text = print_ir(module)
    assert "mamba.linear" not in text and "hlog2 = 0 : i64, qmul = 1 : i64, qshift = 0 : i64" in text
    assert "tensor<3x8xi8>" in text and 'granularity = "channel"' in text
    (got,) = run_function(module, _w(), "f", _x())
    # Plain numpy: activations x * 127/2 rounded (ties even), weights per row amax/127, int32 dot, rescale.
    w = _w()["backbone.layers.0.mixer.in_proj.weight"].astype(np.float64)
    s_x = np.float32(127.0 / 2.0)
    q = np.clip(np.rint(_x() * s_x), -128, 127)
    s_w = (np.abs(w).max(1) / 127.0).astype(np.float32)
    wq = np.clip(np.rint(w / s_w.astype(np.float64)[:, None]), -127, 127)
    scale = ((1.0 / float(s_x)) * s_w.astype(np.float64)).astype(np.float32)
    want = ((q @ wq.T).astype(np.float32) * scale).astype(np.float32)
    assert np.array_equal(got, want)
    assert np.abs(got - _x() @ w.T).max() < 0.1  # and it is a fair approximation of the float layer


def test_rotated_linear_requantizes_in_the_lin_unit():
    module = run_pipeline(parse_ir(ROTATED), "set-target,assign-scales{granularity=\"tensor\"}")
    text = print_ir(module)
    assert "mamba_quant.hadamard" not in text and "hlog2 = 3 : i64" in text and "tensor<3x8xi16>" in text
    assert 'granularity = "tensor"' in text
    op = next(o for o in module.walk() if o.name == "mamba_quant.qlinear")
    qmul, qshift, act = op.qmul.value.data, op.qshift.value.data, op.act_scale.value.data
    s_in = 2.0 / 32767
    assert qmul < 65536 and qmul / 2 ** qshift == pytest.approx(s_in / (math.sqrt(8) * 6.0 / 127), rel=1e-4)
    assert act == pytest.approx(s_in * 2 ** qshift / (math.sqrt(8) * qmul))
    (got,) = run_function(module, _w(), "f", _x())
    assert np.abs(got - _x() @ _w()["backbone.layers.0.mixer.in_proj.weight"].T).max() < 0.1


def test_dynamic_activations_scale_each_token_by_its_own_max():
    module = run_pipeline(parse_ir(LINEAR), 'set-target,assign-scales{activations="dynamic"}')
    text = print_ir(module)
    assert "mamba_quant.qlinear_dynamic" in text and "tensor<3x8xi16>" in text and "hlog2 = 0" in text
    x = _x()
    x[1] *= 0.01  # a quiet token: a static scale would leave it a few int8 steps, a dynamic one all 255
    (got,) = run_function(module, _w(), "f", x)
    w = _w()["backbone.layers.0.mixer.in_proj.weight"].astype(np.float64)
    a = np.clip(np.rint(x * np.float32(32767 / 2.0)), -32768, 32767)  # the VEC's i16 output
    s_w = (np.abs(w).max(1) / 127.0).astype(np.float32)
    wq = np.clip(np.rint(w / s_w.astype(np.float64)[:, None]), -127, 127)
    for m in range(3):  # per row: qmul / 2^qshift ~ 127 / max|a|, ties of the shift rounding toward +inf
        amax = np.abs(a[m]).max()
        shift = 63
        while round(127 / amax * 2 ** shift) > 65535:
            shift -= 1
        qmul = round(127 / amax * 2 ** shift)
        q = np.clip(np.floor((a[m] * qmul + 2 ** (shift - 1)) / 2 ** shift), -128, 127)
        assert np.abs(q).max() == 127
        scale = ((2.0 / 32767) * 2 ** shift / qmul * s_w.astype(np.float64)).astype(np.float32)
        assert np.array_equal(got[m], ((q @ wq.T).astype(np.float32) * scale).astype(np.float32))
    assert np.abs(got[1] - x[1] @ w.T).max() < 0.01 * np.abs(x[1] @ w.T).max() + 1e-4


HEAD = """
builtin.module {
  func.func @f(%x: tensor<3x8xf32>) -> tensor<3x4xf32> {
    %e = mamba.weight "backbone.embeddings.weight" : tensor<4x8xf32>
    %g = mamba.weight "backbone.norm_f.weight" : tensor<8xf32>
    %w = mamba_quant.scale_columns %e, %g : (tensor<4x8xf32>, tensor<8xf32>) -> tensor<4x8xf32>
    %y = mamba.lm_head %x, %w {mamba_quant.range = {x = 2.0 : f64, xr = 2.0 : f64}} : (tensor<3x8xf32>, \
tensor<4x8xf32>) -> tensor<3x4xf32>
    func.return %y : tensor<3x4xf32>
  }
}
"""


def test_lm_head_stays_binary32_unless_head_int8():
    w = {"backbone.embeddings.weight": _w()["backbone.layers.0.mixer.in_proj.weight"],
         "backbone.norm_f.weight": np.linspace(0.5, 1.5, 8).astype(np.float32)}
    assert "mamba.lm_head" in print_ir(run_pipeline(parse_ir(HEAD), "set-target,assign-scales"))
    assert "mamba.lm_head" in print_ir(run_pipeline(parse_ir(HEAD), 'set-target,assign-scales{head="f32"}'))
    module = run_pipeline(parse_ir(HEAD), 'set-target,assign-scales{head="int8"}')
    text = print_ir(module)
    assert "mamba.lm_head" not in text and "hlog2 = 0 : i64, qmul = 1 : i64, qshift = 0 : i64" in text
    (got,) = run_function(module, w, "f", _x())
    # The same numbers as the linear layer's, with the head's weight (norm_f folded in).
    folded = w["backbone.embeddings.weight"] * w["backbone.norm_f.weight"]
    (want,) = run_function(run_pipeline(parse_ir(LINEAR), "set-target,assign-scales"),
                           {"backbone.layers.0.mixer.in_proj.weight": folded}, "f", _x())
    assert np.array_equal(got, want)
    # An uncalibrated head stays binary32, as an uncalibrated linear does.
    mixed = HEAD.replace(" {mamba_quant.range = {x = 2.0 : f64, xr = 2.0 : f64}}", "").replace(
        "%y = mamba.lm_head", '%v = mamba.weight "backbone.layers.0.mixer.in_proj.weight" : tensor<8x8xf32>\n'
        '    %x2 = mamba.linear %x, %v {mamba_quant.range = {x = 2.0 : f64, xr = 2.0 : f64}} : (tensor<3x8xf32>, '
        'tensor<8x8xf32>) -> tensor<3x8xf32>\n'
        '    %y = mamba.lm_head').replace("mamba.lm_head %x,", "mamba.lm_head %x2,")
    text = print_ir(run_pipeline(parse_ir(mixed), 'set-target,assign-scales{head="int8"}'))
    assert "mamba.lm_head" in text and "mamba_quant.qlinear" in text


def test_uncalibrated_ir_is_an_error_and_bad_options_too():
    bare = LINEAR.replace(" {mamba_quant.range = {x = 2.0 : f64, xr = 2.0 : f64}}", "")
    with pytest.raises(InputError, match="run calibrate first"):
        run_pipeline(parse_ir(bare), "set-target,assign-scales")
    with pytest.raises(InputError, match="assign-scales: granularity must be one of 'channel', 'tensor', got 'row'"):
        run_pipeline(parse_ir(LINEAR), 'set-target,assign-scales{granularity="row"}')
    with pytest.raises(InputError, match="activations must be one of 'static', 'dynamic', got 'sometimes'"):
        run_pipeline(parse_ir(LINEAR), 'set-target,assign-scales{activations="sometimes"}')
    with pytest.raises(InputError, match="head must be one of 'f32', 'int8', got 'int4'"):
        run_pipeline(parse_ir(LINEAR), 'set-target,assign-scales{head="int4"}')
    partial = LINEAR.replace("xr = 2.0 : f64", "w = 1.0 : f64")
    with pytest.raises(InputError, match="no calibrated xr"):
        run_pipeline(parse_ir(partial), "set-target,assign-scales")


SSM = """
builtin.module {
  func.func @f(%x: tensor<2x4xf32>, %dt: tensor<2x2xf32>, %B: tensor<2x2xf32>, %C: tensor<2x2xf32>) -> tensor<2x4xf32> {
    %A = mamba.weight "backbone.layers.0.mixer.A_log" : tensor<2xf32>
    %D = mamba.weight "backbone.layers.0.mixer.D" : tensor<2xf32>
    %y, %s = mamba.ssm_scan %x, %dt, %A, %B, %C, %D {mamba_quant.range = {A = 2.0 : f64, B = 1.0 : f64, C = 1.0 : f64, \
D = 1.0 : f64, dt = 2.0 : f64, dt_raw = 2.0 : f64, state = 4.0 : f64, x = 1.0 : f64, y = 4.0 : f64}} : \
tensor<2x4xf32>, tensor<2x2xf32>, tensor<2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2xf32> -> tensor<2x4xf32>, \
tensor<2x2x2xf32>
    func.return %y : tensor<2x4xf32>
  }
}
"""


def test_ssm_without_softplus_dt_stays_float():
    """The SSM unit computes softplus(dt_raw + dt_bias) itself; a dt of another form cannot be quantized."""
    text = print_ir(run_pipeline(parse_ir(SSM), "set-target,assign-scales"))
    assert "mamba.ssm_scan" in text and "qssm_scan" not in text


def test_ssm_with_softplus_dt_is_quantized_and_close():
    ir = SSM.replace("%y, %s = mamba.ssm_scan %x, %dt,", """\
%bias = mamba.weight "backbone.layers.0.mixer.dt_bias" : tensor<2xf32>
    %s0 = mamba.add %dt, %bias : (tensor<2x2xf32>, tensor<2xf32>) -> tensor<2x2xf32>
    %d = mamba.softplus %s0 : tensor<2x2xf32>
    %y, %s = mamba.ssm_scan %x, %d,""")
    w = {"backbone.layers.0.mixer.A_log": np.array([0.1, 0.5], np.float32),
         "backbone.layers.0.mixer.D": np.array([0.5, -1.0], np.float32),
         "backbone.layers.0.mixer.dt_bias": np.array([-1.0, 0.2], np.float32)}
    rng = np.random.default_rng(2)
    inputs = [rng.uniform(-1, 1, s).astype(np.float32) for s in ((2, 4), (2, 2), (2, 2), (2, 2))]
    (want,) = run_function(parse_ir(ir), w, "f", *inputs)
    module = run_pipeline(parse_ir(ir), "set-target,assign-scales")
    text = print_ir(module)
    assert "mamba.softplus" not in text and "mamba.add" not in text and 'nonlinear = "exact"' in text
    (got,) = run_function(module, w, "f", *inputs)
    assert np.abs(got - want).max() < 2e-3 * np.abs(want).max()
