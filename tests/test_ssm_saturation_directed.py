"""A multi-token scan whose state saturates and comes back, worked by hand, through every implementation.

docs/NUMERICS.md §5 with h = p = n = 1, dt_raw = dt_bias = 0 (dt = 4096) and
A = -4096 at a_frac = dt_frac = 12 (dA = 12110), the values of its worked
example; the state starts at 1000:
- token 0 (x = B = 32767): 4096 * 32767^2 saturates the state at 2^31 - 1, and
  y (C = 1) reads the saturated state;
- token 1 (x = 0): the state only decays, back into range: 793640960;
- token 2 (x = 1, B = -1000): 289208200; y adds D * x = 1.
Saturating once after the last token, or reading y before the update, gives
other numbers.  The simulator's arithmetic (isa/numerics.py) and the golden
model's (compiler/quant/fixed.py: its float64 path, in token blocks of 1, 2
and 32, and its int64 path) are checked against these numbers, not against
each other.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastmamba.compiler.quant import fixed
from fastmamba.isa import numerics

X = np.array([32767, 0, 1]).reshape(3, 1, 1)
B = np.array([32767, 32767, -1000]).reshape(3, 1, 1)
C = np.ones((3, 1, 1), np.int64)
STATES = [2**31 - 1, 793640960, 289208200]  # after each token
Y = [2**31 - 1, 793640960, 289208201]
FORMAT = dict(hpg=1, dt_frac=12, a_frac=12, dbx_shift=0, y_shift=0, d_shift=10, segments=8, bits=16)
ARGS = (X, B, C, np.zeros((3, 1)), np.array([-4096]), np.array([1024]), np.array([0]), np.array([[[1000]]]))


def test_the_hand_worked_numbers():
    decayed = (12110 * (2**31 - 1) + (1 << 14)) >> 15
    assert decayed == STATES[1] and ((12110 * decayed + (1 << 14)) >> 15) - 4096 * 1000 == STATES[2]


def test_isa_numerics():
    y, state = numerics.ssm_scan(*ARGS, state_bits=32, **FORMAT)
    assert y.ravel().tolist() == Y and state.item() == STATES[2]


@pytest.mark.parametrize("block", [1, 2, 32])
def test_golden_model_float_path(block):
    y, state = fixed.ssm_scan_q(*ARGS, state_bits=32, block=block, **FORMAT)
    assert y.ravel().tolist() == Y and state.item() == STATES[2]


def test_golden_model_int64_path():
    dt, dA, dx = np.full((3, 1), 4096), np.full((3, 1), 12110), np.array([0, 0, 1]).reshape(3, 1, 1)
    y, state = fixed._scan_int64(X, B, C, dt, dA, dx, np.array([[[1000]]]), dbx_shift=0, y_shift=0, one_shift=15,
                                 lo=-(2**31), hi=2**31 - 1)
    assert y.ravel().tolist() == Y and state.item() == STATES[2]
