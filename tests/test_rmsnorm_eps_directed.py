"""RMSNorm where eps decides the result, through the VEC unit, isa.numerics and the golden model.

docs/NUMERICS.md §6: ss = binary32 sum of squares, mean = ss / group,
r = 1 / sqrt(mean + eps), x * r.  For x = [0.001, 0.002] (group 2) the mean of
squares is 2.5e-6, a quarter of eps = 1e-5, so eps changes r from 632.5 to
282.8: an implementation that drops eps, or a VEC instruction whose eps field
does not reach the arithmetic, gives [0.632, 1.265] instead of
[0.283, 0.566].  The expected values are computed below step by step in
binary32 from the document, and also stated in decimal.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastmamba.compiler.quant import fixed
from fastmamba.isa import numerics
from fastmamba.isa.instructions import Instruction
from fastmamba.isa.target import load_target
from fastmamba.simulator.effects import MachineState
from fastmamba.simulator.semantics import SEMANTICS

X = np.array([[0.001, 0.002], [3.0, 4.0]], np.float32)  # the second row: eps is negligible (NUMERICS.md's example)
EPS = 1e-5


def expected(eps: float) -> np.ndarray:
    f32 = np.float32
    out = np.empty_like(X)
    for r, (a, b) in enumerate(X):
        ss = f32(f32(a * a) + f32(b * b))
        mean = f32(ss / f32(2))
        inv = f32(f32(1) / f32(np.sqrt(f32(mean + f32(eps)))))
        out[r] = [f32(a * inv), f32(b * inv)]
    return out


def test_the_expected_values():
    np.testing.assert_allclose(expected(EPS)[0], [0.001 / np.sqrt(1.25e-5), 0.002 / np.sqrt(1.25e-5)], rtol=1e-6)
    np.testing.assert_allclose(expected(0.0)[0], [0.001 / np.sqrt(2.5e-6), 0.002 / np.sqrt(2.5e-6)], rtol=1e-6)
    np.testing.assert_allclose(expected(EPS)[1], [0.84852815, 1.1313709], rtol=1e-6)


@pytest.mark.parametrize("eps", [EPS, 0.0])
def test_vec_unit(eps):
    state = MachineState(ddr=np.zeros(8, np.uint8), buf=np.zeros(4096, np.uint8))
    state.buf[0:16] = X.view(np.uint8).ravel()
    instr = Instruction("vec", {"dst": 1024, "a": 0, "b": 0, "rows": 2, "cols": 2, "a_ld": 2, "b_ld": 2, "dst_ld": 2,
                                "a_type": "f32", "a_exp": 0, "b_type": "f32", "b_exp": 0, "b_mode": "none",
                                "op0": "rmsnorm", "op1": "none", "op2": "none", "op3": "none", "group": 2, "eps": eps,
                                "out_type": "f32", "out_scale": 1.0})
    SEMANTICS["vec"].execute(instr, state, load_target("vc709"))
    got = state.buf[1024:1040].view(np.float32).reshape(2, 2)
    assert np.array_equal(got, expected(eps))


@pytest.mark.parametrize("eps", [EPS, 0.0])
def test_isa_numerics_and_the_golden_model(eps):
    assert np.array_equal(numerics.vec_chain(X, ("rmsnorm",), group=2, eps=eps), expected(eps))
    assert np.array_equal(fixed.vec(X, ops=("rmsnorm",), group=2, eps=eps), expected(eps))
