"""examples/ssm_step.s: one SSM step assembled and run through the CLI, checked two ways.

(a) Bit for bit against a plain-Python integer implementation of
    docs/NUMERICS.md §1, §4 and §5 written here from the document (no
    isa.numerics, no simulator code).
(b) Against the float recurrence (softplus, exp, h = exp(dt*A)*h + dt*x*B,
    y = C.h + D*x, in float64) within a per-element bound propagated from the
    approximation errors NUMERICS.md states (see `float_error_bounds`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fastmamba.compiler.cli import main
from fastmamba.isa.assembler import assemble
from fastmamba.isa.target import load_target
from fastmamba.simulator.effects import SimulationError
from fastmamba.simulator.runtime import SimulatorBackend

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "ssm_step.s"
TARGET = load_target("vc709")

# The formats the example documents (fraction bits) and the shape it runs.
H, P, N, HPG = 2, 4, 8, 2
FX, FB, FC, DT_FRAC, A_FRAC, FD, FH, FY = 10, 11, 12, 12, 12, 10, 16, 10
DBX_SHIFT, Y_SHIFT, D_SHIFT = DT_FRAC + FX + FB - FH, FC + FH - FY, FD + FX - FY
SEGMENTS, BITS = 8, 16  # vc709's nla_segments, nla_bits (NUMERICS.md §4)
STATE_BITS = 32  # vc709's ssm_state_bits: sat_S of §5
I32 = (-(1 << 31), (1 << 31) - 1)
STATE_RANGE = (-(1 << (STATE_BITS - 1)), (1 << (STATE_BITS - 1)) - 1)

# NUMERICS.md §4, "Accuracy": max abs error of exp_q on [-16, 0] (z on the grid of 12 fraction bits),
# printed there as 1.73e-3 (three digits): the bound below is the largest value that rounds to it.
EXP_Q_PRINTED_ERROR = "1.73e−3"
EXP_Q_MAX_ABS_ERROR = 1.735e-3


# ---------------------------------------------------------------------------
# (a) NUMERICS.md in plain Python integers.
# ---------------------------------------------------------------------------
def rshift_round(x: int, s: int) -> int:
    return x if s == 0 else (x + (1 << (s - 1))) >> s


def sat(x: int, lo_hi=I32) -> int:
    return min(max(x, lo_hi[0]), lo_hi[1])


def exp2_table(segments: int, bits: int) -> tuple[list[int], list[int]]:
    base = [round(2 ** (i / segments) * 2 ** (bits - 1)) for i in range(segments)] + [2 ** bits]
    return base, [base[i + 1] - base[i] for i in range(segments)]


BASE, SLOPE = exp2_table(SEGMENTS, BITS)
L = SEGMENTS.bit_length() - 1


def exp_q(z: int, f: int) -> int:
    z = min(z, 0)
    y = (z * 23) >> 4
    u = y >> f
    v = y - (u << f)
    seg = v >> (f - L)
    dv = v - (seg << (f - L))
    p = BASE[seg] + ((SLOPE[seg] * dv) >> (f - L))
    return 0 if -u >= 63 else rshift_round(p, -u)


def softplus_q(s: int, f: int) -> int:
    e = rshift_round(exp_q(-abs(s), f), BITS - 1 - f)
    return min(max(s + e if s > 0 else e, 0), 2 ** BITS - 1)


def ssm_step_reference(x, B, C, dt_raw, params, state) -> tuple[np.ndarray, np.ndarray]:
    """y [h, p] and the new state [h, p, n] (int32) of one token, element by element."""
    y = np.zeros((H, P), np.int64)
    new = np.zeros((H, P, N), np.int64)
    for i in range(H):
        a, d, dt_bias = (int(v) for v in params[i, :3])
        g = i // HPG
        dt = softplus_q(int(dt_raw[i]) + dt_bias, DT_FRAC)
        z = sat(rshift_round(dt * a, A_FRAC))
        da = exp_q(z, DT_FRAC)
        for j in range(P):
            xj = int(x[i, j])
            acc = 0
            for k in range(N):
                h = sat(rshift_round(da * int(state[i, j, k]), BITS - 1)
                        + rshift_round(dt * xj * int(B[g, k]), DBX_SHIFT), STATE_RANGE)
                new[i, j, k] = h
                acc += int(C[g, k]) * h
            y[i, j] = sat(rshift_round(acc, Y_SHIFT) + rshift_round(d * xj, D_SHIFT))
    return y.astype(np.int32), new.astype(np.int32)


# ---------------------------------------------------------------------------
# (b) The float recurrence and its error bound.
# ---------------------------------------------------------------------------
def _reals(x, B, C, dt_raw, params, state):
    return (x / 2.0 ** FX, B / 2.0 ** FB, C / 2.0 ** FC, dt_raw / 2.0 ** DT_FRAC, params[:, 0] / 2.0 ** A_FRAC,
            params[:, 1] / 2.0 ** FD, params[:, 2] / 2.0 ** DT_FRAC, state / 2.0 ** FH)


def float_step(x, B, C, dt_raw, params, state) -> tuple[np.ndarray, np.ndarray]:
    """y [h, p] and the state [h, p, n] in float64 from the inputs' real values."""
    x, B, C, dt_raw, A, D, dt_bias, h = _reals(x, B, C, dt_raw, params, state)
    groups = np.arange(H) // HPG
    dt = np.log1p(np.exp(dt_raw + dt_bias))
    dA = np.exp(dt * A)
    h = dA[:, None, None] * h + dt[:, None, None] * x[:, :, None] * B[groups][:, None, :]
    y = np.einsum("hpn,hn->hp", h, C[groups]) + D[:, None] * x
    return y, h


def float_error_bounds(x, B, C, dt_raw, params, state) -> tuple[np.ndarray, np.ndarray]:
    """Per-element bounds on |fixed-point result - float result| (y [h, p], state [h, p, n]), in real units.

    From NUMERICS.md, with s = dt_raw + dt_bias (exact) and e = EXP_Q_MAX_ABS_ERROR:
    - dt: softplus_q(s) is g(s) = max(s, 0) + e^-|s| with e^-|s| from exp_q (error <= e) rounded to
      dt_frac bits (<= 2^-(dt_frac+1)); g(s) itself differs from ln(1 + e^s) by |g(s) - softplus(s)|.
    - dA: z = dt*A rounded to dt_frac bits (<= 2^-(dt_frac+1)) plus A times dt's error; exp is
      1-Lipschitz for z <= 0 and exp_q adds at most e (z in [-16, 0], checked).
    - state: dA's error times |h|, dt's error times |x*B|, plus two roundings to fh bits.
    - y: sum_k |C_k| times the state's errors, plus two roundings to fy bits.
    """
    xr, Br, Cr, dtr, A, D, dtb, h = _reals(x, B, C, dt_raw, params, state)
    groups = np.arange(H) // HPG
    s = dtr + dtb
    g = np.maximum(s, 0.0) + np.exp(-np.abs(s))
    d_dt = np.abs(g - np.log1p(np.exp(s))) + EXP_Q_MAX_ABS_ERROR + 2.0 ** -(DT_FRAC + 1)
    assert np.all(-(g + d_dt) * np.abs(A) >= -16), "dt*A outside the range the exp_q error bound covers"
    d_da = EXP_Q_MAX_ABS_ERROR + np.abs(A) * d_dt + 2.0 ** -(DT_FRAC + 1)
    xb = np.abs(xr[:, :, None] * Br[groups][:, None, :])
    d_h = d_da[:, None, None] * np.abs(h) + d_dt[:, None, None] * xb + 2 * 2.0 ** -(FH + 1)
    d_y = np.einsum("hpn,hn->hp", d_h, np.abs(Cr[groups])) + 2 * 2.0 ** -(FY + 1)
    slack = 1e-9  # float64 evaluation of the reference itself
    return d_y + slack, d_h + slack


# ---------------------------------------------------------------------------
# Running the example.
# ---------------------------------------------------------------------------
def _shipped_inputs() -> dict[str, np.ndarray]:
    """The example's own data, read from its binary's constant image (descriptor by descriptor)."""
    from fastmamba.isa.assembler import assemble_file
    from fastmamba.simulator.runtime import numpy_dtype

    binary = assemble_file(EXAMPLE, TARGET)
    prog = binary.program("main")
    return {t.name: np.frombuffer(binary.const_image[t.ddr:t.ddr + t.nbytes], numpy_dtype(t.dtype)).reshape(t.shape)
            for t in prog.tensors if t.role in ("input", "state")}


def _cli_run(tmp_path: Path, capsys, inputs: dict[str, np.ndarray] | None = None):
    fmb, out_dir = tmp_path / "ssm.fmb", tmp_path / "out"
    assert main(["asm", str(EXAMPLE), "-o", str(fmb)]) == 0
    args = ["sim", str(fmb), "--output-dir", str(out_dir)]
    for name, array in (inputs or {}).items():
        path = tmp_path / f"{name}.npy"
        np.save(path, array)
        args += ["--input", f"{name}={path}"]
    capsys.readouterr()
    assert main(args) == 0
    text = capsys.readouterr().out
    return np.load(out_dir / "y.npy"), np.load(out_dir / "state.npy"), text


def _check(ins: dict[str, np.ndarray], y: np.ndarray, state: np.ndarray) -> None:
    operands = (ins["x"], ins["B"], ins["C"], ins["dt"], ins["params"], ins["state"])
    ref_y, ref_state = ssm_step_reference(*operands)
    assert y.dtype == np.int32 and y.shape == (H, P) and state.dtype == np.int32 and state.shape == (H, P, N)
    assert np.array_equal(y, ref_y)
    assert np.array_equal(state, ref_state)
    fy, fh = float_step(*(np.asarray(a, np.float64) for a in operands))
    bound_y, bound_h = float_error_bounds(*(np.asarray(a, np.float64) for a in operands))
    assert np.all(np.abs(y / 2.0 ** FY - fy) <= bound_y)
    assert np.all(np.abs(state / 2.0 ** FH - fh) <= bound_h)


def test_reference_matches_the_worked_examples_of_numerics_md():
    assert BASE == [32768, 35734, 38968, 42495, 46341, 50535, 55109, 60097, 65536]
    assert (TARGET.nla_segments, TARGET.nla_bits, TARGET.ssm_state_bits) == (SEGMENTS, BITS, STATE_BITS)
    assert [exp_q(-4096, 12), exp_q(0, 12), exp_q(-1, 12)] == [12110, 32768, 32757]
    assert [softplus_q(4096, 12), softplus_q(-4096, 12), softplus_q(0, 12)] == [5610, 1514, 4096]
    # §5's worked example (t = h = p = n = 1), through the same formulas
    dt = softplus_q(0, 12)
    da = exp_q(sat(rshift_round(dt * -4096, 12)), 12)
    h = rshift_round(da * 2 ** 20, 15) + rshift_round(dt * 1024 * 2048, 17)
    assert (dt, da, h, rshift_round(4096 * h, 18) + rshift_round(1024 * 1024, 10)) == (4096, 12110, 453056, 8103)


def test_shipped_data_exercises_both_softplus_branches_and_a_nonzero_state():
    ins = _shipped_inputs()
    s = ins["dt"].astype(np.int64) + ins["params"][:, 2]
    assert s.min() <= 0 < s.max()
    assert np.count_nonzero(ins["state"]) > ins["state"].size // 2
    assert np.all(ins["params"][:, 0] < 0) and np.all(ins["params"][:, 3] == 0)


def test_example_runs_as_is(tmp_path, capsys):
    ins = _shipped_inputs()
    y, state, text = _cli_run(tmp_path, capsys)
    _check(ins, y, state)
    assert not np.array_equal(state, ins["state"])
    assert f"output y int32[2, 4] = {y.tolist()}" in text
    assert "state state int32[2, 4, 8]: min " in text
    readme = (EXAMPLE.parent / "README.md").read_text()  # what the README says to expect
    shown = [line for line in readme.splitlines() if line.startswith(("program main: 158", "output y", "state state"))]
    assert len(shown) == 3 and all(line in text.splitlines() for line in shown)
    # the float check is not vacuous: the bound is well below the values it bounds
    bound_y, _ = float_error_bounds(*(np.asarray(ins[k], np.float64) for k in ("x", "B", "C", "dt", "params", "state")))
    assert bound_y.max() < 0.1 * np.abs(y / 2.0 ** FY).max()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_inputs_replaced_from_npy_files(tmp_path, capsys, seed):
    rng = np.random.default_rng(seed)
    one = 1 << DT_FRAC
    dt_bias = rng.integers(-3 * one // 2, 3 * one // 2, H)
    s = np.concatenate((rng.integers(-6 * one, 1, H // 2), rng.integers(1, 6 * one, H - H // 2)))  # <= 0 and > 0
    params = np.stack((rng.integers(-5 * (1 << A_FRAC) // 2, -(1 << A_FRAC) // 10, H),  # A in [-2.5, -0.1)
                       rng.integers(-2 << FD, 2 << FD, H), dt_bias, np.zeros(H, np.int64)), axis=1).astype(np.int32)
    ins = {
        "x": rng.integers(-3 << FX, 3 << FX, (H, P)).astype(np.int16),
        "B": rng.integers(-2 << FB, 2 << FB, (1, N)).astype(np.int16),
        "C": rng.integers(-2 << FC, 2 << FC, (1, N)).astype(np.int16),
        "dt": (s - dt_bias).astype(np.int16),
        "params": params,
        "state": rng.integers(-4 << FH, 4 << FH, (H, P, N)).astype(np.int32),
    }
    assert np.array_equal(ins["dt"].astype(np.int64), s - dt_bias)  # no int16 wrap-around
    y, state, _ = _cli_run(tmp_path, capsys, ins)
    _check(ins, y, state)


@pytest.mark.parametrize("edit, match", [
    (lambda t: t.replace("ctl.wait sem=1, count=4\n", "", 1),
     r"^bundle 4, slot SSM: .*RAW hazard.*\(bundle 0, slot LD\)"),
    (lambda t: t.replace("d_shift=10 ; delay=12\n", "d_shift=10 ; delay=11\n", 1),
     r"^bundle 6, slot ST: .*RAW hazard.*\(bundle 5, slot SSM\)"),
])
def test_without_its_wait_or_delay_the_example_is_a_hazard(edit, match):
    text = EXAMPLE.read_text()
    broken = edit(text)
    assert broken != text
    backend = SimulatorBackend(TARGET)
    backend.load(assemble(broken, "broken.s", TARGET))
    with pytest.raises(SimulationError, match=match):
        backend.run("main")


def test_error_bound_constants_follow_numerics_md():
    doc = (Path(__file__).resolve().parent.parent / "docs" / "NUMERICS.md").read_text()
    assert f"| exp_q | [−16, 0] | {EXP_Q_PRINTED_ERROR} |" in doc
    assert f"{EXP_Q_MAX_ABS_ERROR - 1e-9:.2e}" == EXP_Q_PRINTED_ERROR.replace("−", "-0")
