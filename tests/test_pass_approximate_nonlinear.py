"""approximate-nonlinear (passes/approximate_nonlinear.py): softplus and the SSM's exp by the NLA's approximations."""

from __future__ import annotations

import numpy as np

from fastmamba.compiler.interpreters.mamba_quant import run_function
from fastmamba.compiler.pipeline import parse_ir, print_ir, run_pipeline

IR = """
builtin.module {
  func.func @f(%x: tensor<1x7xf32>) -> (tensor<1x7xf32>, tensor<1x7xf32>) {
    %s = mamba.softplus %x : tensor<1x7xf32>
    %t = mamba.silu %x : tensor<1x7xf32>
    func.return %s, %t : tensor<1x7xf32>, tensor<1x7xf32>
  }
}
"""


def test_softplus_becomes_the_first_order_approximation():
    module = run_pipeline(parse_ir(IR), "approximate-nonlinear")
    text = print_ir(module)
    assert "mamba_quant.softplus_approx" in text and "mamba.softplus" not in text
    assert "mamba.silu" in text  # SiLU stays float
    x = np.array([[-3.0, -1.0, -0.25, 0.0, 0.5, 1.0, 4.0]], np.float32)
    (got, silu) = run_function(module, {}, "f", x)
    # Independently: e^-|x| = 2^(-1.4375|x|), 2^v by chords between 2^(i/8); softplus = e^x (x<=0), x + e^-x.
    want = []
    for v in x[0].astype(float):
        y = -abs(v) * 1.4375
        u = np.floor(y)
        f = (y - u) * 8
        i = min(int(f), 7)
        p = 2 ** (i / 8) + (2 ** ((i + 1) / 8) - 2 ** (i / 8)) * (f - i)
        e = p * 2.0 ** u
        want.append(v + e if v > 0 else e)
    assert np.allclose(got[0], want, rtol=1e-6)
    assert got[0][3] == 1.0  # the approximation's largest error: softplus(0) = ln 2 becomes 1
    assert np.abs(got[0] - np.log1p(np.exp(x[0]))).max() < 0.31


def test_qssm_switches_to_the_table_and_nothing_else_changes():
    ir = """
builtin.module {
  func.func @f(%x: tensor<1x2xi16>, %dt: tensor<1x1xi16>, %p: tensor<1x4xi32>, %b: tensor<1x2xi16>, %c: \
tensor<1x2xi16>) -> tensor<1x2xi32> {
    %y, %s = mamba_quant.qssm_scan %x, %dt, %p, %b, %c {dt_frac = 12 : i64, a_frac = 12 : i64, dbx_shift = 17 : i64, \
y_shift = 18 : i64, d_shift = 10 : i64, nonlinear = "exact"} : tensor<1x2xi16>, tensor<1x1xi16>, tensor<1x4xi32>, \
tensor<1x2xi16>, tensor<1x2xi16> -> tensor<1x2xi32>, tensor<1x2x2xi32>
    func.return %y : tensor<1x2xi32>
  }
}
"""
    args = (np.array([[1024, 512]]), np.array([[0]]), np.array([[-4096, 1024, 0, 0]]), np.array([[2048, 0]]),
            np.array([[4096, 0]]))
    exact = run_function(parse_ir(ir), {}, "f", *args)[0]
    module = run_pipeline(parse_ir(ir), "approximate-nonlinear")
    assert 'nonlinear = "table"' in print_ir(module)
    table = run_function(module, {}, "f", *args)[0]
    # NUMERICS.md §5 worked example, from a zero state: dt = softplus_q(0) = 4096, x*B*dt >> 17 = 2^16,
    # C.state >> 18 = 1024
    # plus D*x >> 10 = 1024 -> 2048 (channel 1, x = 512: 512 + 512); with exact nonlinearities
    # dt = round(ln 2 * 4096) = 2839 -> 710 + 1024 and 355 + 512.
    assert table[0].tolist() == [2048, 1024] and exact[0].tolist() == [1734, 867]


def test_nothing_to_approximate_leaves_the_ir_unchanged():
    ir = IR.replace("%s = mamba.softplus %x", "%s = mamba.silu %x")
    assert print_ir(run_pipeline(parse_ir(ir), "approximate-nonlinear")) == print_ir(parse_ir(ir))
