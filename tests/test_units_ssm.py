"""SSM semantics against a per-element Python loop of docs/NUMERICS.md §5, and against the float recurrence."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from fastmamba.isa.instructions import Instruction
from fastmamba.isa.target import load_target
from fastmamba.simulator.effects import MachineState, SimulationError
from fastmamba.simulator.semantics import SEMANTICS
from buffer_io import get, put
from test_numerics import ref_exp_q, ref_softplus_q

TARGET = load_target("vc709")
BITS = TARGET.nla_bits
ADDR = dict(xbc=0x1000, dt=0x8000, params=0x9000, state=0x10000, y=0x20000)


def new_state() -> MachineState:
    return MachineState(ddr=np.zeros(8, np.uint8), buf=np.zeros(1 << 18, np.uint8))


def ssm(**kw):
    args = dict(ADDR, t=1, h=1, p=1, n=1, hpg=1, xbc_ld=3, b_off=1, c_off=2, dt_ld=1, y_ld=1, dt_frac=12, a_frac=8,
                dbx_shift=0, y_shift=0, d_shift=0)
    args.update(kw)
    return Instruction("ssm", args)


def issue(instr, state, target=TARGET):
    sem = SEMANTICS[instr.op]
    fp = sem.footprint(instr, state, target)
    sem.execute(instr, state, target)
    return fp


def rr(x: int, s: int) -> int:
    return x if s == 0 else (x + (1 << (s - 1))) >> s


def sat32(x: int) -> int:
    return max(-(2**31), min(2**31 - 1, x))


def sat_bits(x: int, bits: int) -> int:
    return max(-(2 ** (bits - 1)), min(2 ** (bits - 1) - 1, x))


def reference(xbc, dt_raw, params, st, *, h, p, n, hpg, b_off, c_off, dt_frac, a_frac, dbx_shift, y_shift, d_shift,
              state_bits=32):
    """docs/NUMERICS.md §5 one element at a time, Python integers."""
    t = xbc.shape[0]
    st = [[[int(st[i * p + j, k]) for k in range(n)] for j in range(p)] for i in range(h)]
    y = [[0] * (h * p) for _ in range(t)]
    for tt in range(t):
        for i in range(h):
            A, D, bias = (int(v) for v in params[i, :3])
            g = i // hpg
            dt = ref_softplus_q(int(dt_raw[tt, i]) + bias, dt_frac)
            z = sat32(rr(dt * A, a_frac))
            dA = ref_exp_q(z, dt_frac)
            for j in range(p):
                x = int(xbc[tt, i * p + j])
                for k in range(n):
                    B = int(xbc[tt, b_off + g * n + k])
                    st[i][j][k] = sat_bits(rr(dA * st[i][j][k], BITS - 1) + rr(dt * x * B, dbx_shift), state_bits)
                cs = sum(int(xbc[tt, c_off + g * n + k]) * st[i][j][k] for k in range(n))
                y[tt][i * p + j] = sat32(rr(cs, y_shift) + rr(D * x, d_shift))
    return np.array(y), np.array(st).reshape(h * p, n)


def make_case(rng, t, h, p, n, hpg, c_first=False, big=False):
    groups = -(-h // hpg)
    if c_first:  # C before B in the row: offsets are free
        c_off, b_off = h * p, h * p + groups * n
    else:
        b_off, c_off = h * p, h * p + groups * n
    cols = h * p + 2 * groups * n
    lim = 32768 if big else 4096
    xbc = rng.integers(-lim, lim, (t, cols)).astype(np.int16)
    dt_raw = rng.integers(-lim, lim, (t, h)).astype(np.int16)
    params = np.zeros((h, 4), np.int32)
    params[:, 0] = rng.integers(-(16 << 8), -(1 << 4), h)  # A < 0, a_frac = 8
    params[:, 1] = rng.integers(-(2 << 12), 2 << 12, h)
    params[:, 2] = rng.integers(-(6 << 12), 1 << 12, h)
    st = rng.integers(-(2**31) if big else -(1 << 24), 2**31 - 1 if big else 1 << 24, (h * p, n)).astype(np.int32)
    return xbc, dt_raw, params, st, b_off, c_off


@pytest.mark.parametrize("h,hpg,c_first,big", [(4, 2, False, False), (4, 4, True, False), (3, 1, False, True),
                                               (5, 3, True, True)])
def test_ssm_bit_exact_against_element_loop(h, hpg, c_first, big):
    rng = np.random.default_rng(h * 10 + hpg)
    t, p, n = 3, 3, 5
    xbc, dt_raw, params, st, b_off, c_off = make_case(rng, t, h, p, n, hpg, c_first, big)
    xbc_ld, dt_ld, y_ld = xbc.shape[1] + 3, h + 2, h * p + 1
    fmt = dict(dt_frac=12, a_frac=8, dbx_shift=22, y_shift=17, d_shift=12)
    if big:  # small shifts: the int32 saturation paths are reached
        fmt.update(dbx_shift=6, y_shift=4, d_shift=0)
    state = new_state()
    put(state, ADDR["xbc"], xbc, xbc_ld)
    put(state, ADDR["dt"], dt_raw, dt_ld)
    put(state, ADDR["params"], params)
    put(state, ADDR["state"], st)
    issue(ssm(t=t, h=h, p=p, n=n, hpg=hpg, xbc_ld=xbc_ld, b_off=b_off, c_off=c_off, dt_ld=dt_ld, y_ld=y_ld, **fmt),
          state)
    y, final = reference(xbc, dt_raw, params, st, h=h, p=p, n=n, hpg=hpg, b_off=b_off, c_off=c_off, **fmt)
    got_y = get(state, ADDR["y"], t, h * p, np.int32, y_ld)
    assert got_y.tolist() == y.tolist()
    assert get(state, ADDR["state"], h * p, n, np.int32).tolist() == final.tolist()
    if big:
        extremes = {2**31 - 1, -(2**31)}
        assert extremes & set(got_y.ravel().tolist()) and extremes & set(final.ravel().tolist())


@pytest.mark.parametrize("state_bits", [16, 24])
def test_ssm_state_saturates_to_the_target_state_bits(state_bits):
    target = dataclasses.replace(TARGET, ssm_state_bits=state_bits)
    rng = np.random.default_rng(state_bits)
    t, h, p, n, hpg = 3, 2, 3, 4, 1
    xbc, dt_raw, params, st, b_off, c_off = make_case(rng, t, h, p, n, hpg, big=True)
    lim = 1 << (state_bits - 1)
    st = np.clip(st, -lim, lim - 1).astype(np.int32)  # a stored state within the format
    fmt = dict(dt_frac=12, a_frac=8, dbx_shift=10, y_shift=4, d_shift=0)
    state = new_state()
    put(state, ADDR["xbc"], xbc)
    put(state, ADDR["dt"], dt_raw)
    put(state, ADDR["params"], params)
    put(state, ADDR["state"], st)
    issue(ssm(t=t, h=h, p=p, n=n, hpg=hpg, xbc_ld=xbc.shape[1], b_off=b_off, c_off=c_off, dt_ld=h, y_ld=h * p, **fmt),
          state, target)
    y, final = reference(xbc, dt_raw, params, st, h=h, p=p, n=n, hpg=hpg, b_off=b_off, c_off=c_off,
                         state_bits=state_bits, **fmt)
    got = get(state, ADDR["state"], h * p, n, np.int32)
    assert got.tolist() == final.tolist()
    assert get(state, ADDR["y"], t, h * p, np.int32).tolist() == y.tolist()
    assert {lim - 1, -lim} & set(got.ravel().tolist()) and np.abs(got.astype(np.int64)).max() <= lim


def test_ssm_split_over_tokens_carries_the_state():
    rng = np.random.default_rng(4)
    t, h, p, n, hpg = 6, 2, 4, 8, 1
    xbc, dt_raw, params, st, b_off, c_off = make_case(rng, t, h, p, n, hpg)
    cols = xbc.shape[1]
    fmt = dict(dt_frac=12, a_frac=8, dbx_shift=22, y_shift=17, d_shift=12)
    common = dict(h=h, p=p, n=n, hpg=hpg, xbc_ld=cols, b_off=b_off, c_off=c_off, dt_ld=h, y_ld=h * p, **fmt)
    states = []
    for splits in (((0, t),), ((0, 2), (2, t))):
        state = new_state()
        put(state, ADDR["xbc"], xbc)
        put(state, ADDR["dt"], dt_raw)
        put(state, ADDR["params"], params)
        put(state, ADDR["state"], st)
        for lo, hi in splits:
            issue(ssm(t=hi - lo, xbc=ADDR["xbc"] + 2 * cols * lo, dt=ADDR["dt"] + 2 * h * lo,
                      y=ADDR["y"] + 4 * h * p * lo, **common), state)
        states.append(state.buf)
    assert np.array_equal(*states)


def test_ssm_follows_the_float_recurrence():
    """A sensible format choice (x, B, C with 11 fraction bits, state 16, dt 12): close to float math."""
    rng = np.random.default_rng(21)
    t, h, p, n, hpg = 24, 4, 8, 16, 2
    groups = h // hpg
    fx = fb = fc = 11
    fh, fy, fd, dt_frac, a_frac = 16, 12, 12, 12, 8
    x = rng.standard_normal((t, h, p)) * 1.5
    B = rng.standard_normal((t, groups, n))
    C = rng.standard_normal((t, groups, n))
    dt_true = np.exp(rng.uniform(math.log(1e-3), math.log(1e-1), (t, h)))
    s_true = np.log(np.expm1(dt_true))  # softplus^-1: the pre-activation a model would produce
    A = -np.exp(rng.uniform(0, math.log(16), h))
    D = rng.uniform(0.5, 1.5, h)
    q = lambda v, f: np.rint(np.asarray(v) * 2.0**f).astype(np.int64)  # noqa: E731
    xbc = np.concatenate([q(x, fx).reshape(t, h * p), q(B, fb).reshape(t, -1), q(C, fc).reshape(t, -1)], axis=1)
    xbc = xbc.astype(np.int16)
    dt_raw = q(s_true, dt_frac).astype(np.int16)
    params = np.stack([q(A, a_frac), q(D, fd), np.zeros(h, np.int64), np.zeros(h, np.int64)], axis=1).astype(np.int32)
    state = new_state()
    put(state, ADDR["xbc"], xbc)
    put(state, ADDR["dt"], dt_raw)
    put(state, ADDR["params"], params)
    issue(ssm(t=t, h=h, p=p, n=n, hpg=hpg, xbc_ld=xbc.shape[1], b_off=h * p, c_off=h * p + groups * n, dt_ld=h,
              y_ld=h * p, dt_frac=dt_frac, a_frac=a_frac, dbx_shift=dt_frac + fx + fb - fh, y_shift=fc + fh - fy,
              d_shift=fd + fx - fy), state)
    y_q = get(state, ADDR["y"], t, h * p, np.int32).reshape(t, h, p) / 2.0**fy
    # the float recurrence on the same (dequantized) inputs, with the true softplus and exp, and with the NLA's
    xd = (xbc[:, :h * p] / 2.0**fx).reshape(t, h, p)
    Bd = (xbc[:, h * p:h * p + groups * n] / 2.0**fb).reshape(t, groups, n)
    Cd = (xbc[:, h * p + groups * n:] / 2.0**fc).reshape(t, groups, n)
    one = 2.0 ** (BITS - 1)

    def recurrence(nla: bool):
        hstate = np.zeros((h, p, n))
        y_f = np.zeros((t, h, p))
        for tt in range(t):
            for i in range(h):
                g = i // hpg
                if nla:
                    dt_q = ref_softplus_q(int(dt_raw[tt, i]), dt_frac)
                    dt = dt_q / 2.0**dt_frac
                    da = ref_exp_q(rr(dt_q * int(params[i, 0]), a_frac), dt_frac) / one
                else:
                    dt = math.log1p(math.exp(dt_raw[tt, i] / 2.0**dt_frac))
                    da = math.exp(dt * params[i, 0] / 2.0**a_frac)
                hstate[i] = da * hstate[i] + dt * np.outer(xd[tt, i], Bd[tt, g])
                y_f[tt, i] = hstate[i] @ Cd[tt, g] + params[i, 1] / 2.0**fd * xd[tt, i]
        return y_f

    for nla, max_rel, rms_rel in ((True, 2e-3, 1e-3), (False, 0.05, 0.025)):
        y_f = recurrence(nla)
        err = np.abs(y_q - y_f)
        assert err.max() < max_rel * np.abs(y_f).max(), (nla, err.max(), np.abs(y_f).max())
        assert np.sqrt(np.mean(err**2)) < rms_rel * np.sqrt(np.mean(y_f**2)), (nla, err, y_f)


def test_ssm_footprint_cost():
    state = new_state()
    t, h, p, n = 3, 30, 4, 16
    fp = SEMANTICS["ssm"].footprint(ssm(t=t, h=h, p=p, n=n, hpg=h, xbc_ld=h * p + 2 * n, b_off=h * p, c_off=h * p + n,
                                        dt_ld=h, y_ld=h * p), state, TARGET)
    per_token = max(math.ceil(h * p * n / TARGET.ssm_elems_per_cycle), math.ceil(h / TARGET.nla_lanes))
    assert fp.occupancy == t * per_token and fp.latency == TARGET.ssm_latency and fp.macs == 3 * t * h * p * n
    state_range = [r for r in fp.writes if r.start == ADDR["state"]]
    assert state_range == [r for r in fp.reads if r.start == ADDR["state"]]
    assert state_range[0].stop - state_range[0].start == 4 * h * p * n
    # many heads with tiny head dims are NLA-bound: ceil(h / nla_lanes) per token
    fp = SEMANTICS["ssm"].footprint(ssm(h=TARGET.nla_lanes * 2, hpg=TARGET.nla_lanes * 2,
                                        xbc_ld=TARGET.nla_lanes * 2 + 2,
                                        b_off=TARGET.nla_lanes * 2, c_off=TARGET.nla_lanes * 2 + 1,
                                        dt_ld=TARGET.nla_lanes * 2, y_ld=TARGET.nla_lanes * 2), state, TARGET)
    assert fp.occupancy == 2


def test_ssm_validation_names_the_field():
    state = new_state()
    low = TARGET.nla_segments.bit_length() - 1
    cases = [
        (ssm(dt_frac=BITS), r"^ssm: field dt_frac = 16 outside"),
        (ssm(dt_frac=low - 1), rf"^ssm: field dt_frac = {low - 1} outside"),
        (ssm(hpg=0), r"^ssm: field hpg must be at least 1"),
        (ssm(n=0), r"^ssm: field n must be at least 1"),
        (ssm(params=ADDR["params"] + 2), r"^ssm: field params = .* is not aligned to 4 bytes"),
        (ssm(xbc=ADDR["xbc"] + 1), r"^ssm: field xbc = .* is not aligned to 2 bytes"),
        (ssm(y=(1 << 18) - 2), r"^ssm: field y = .* is not aligned"),
        (ssm(y=(1 << 18) - 4, t=2, y_ld=1), r"^ssm: field y: buf bytes"),
        (ssm(t=2, h=2, p=2, y_ld=3, xbc_ld=6, b_off=4, c_off=5, dt_ld=2),
         r"^ssm: field y_ld: written rows of y overlap"),
        (ssm(y=ADDR["state"]), r"^ssm: field state: the written buf bytes .* overlap operand y"),
    ]
    for instr, pattern in cases:
        with pytest.raises(SimulationError, match=pattern):
            SEMANTICS["ssm"].footprint(instr, state, TARGET)


def test_ssm_shifts_past_the_word_give_zero():
    """Shift fields reach 127: shifts of 63 or more round every term to 0, as the reference's exact rounding does."""
    rng = np.random.default_rng(63)
    t, h, p, n, hpg = 2, 2, 2, 3, 2
    xbc, dt_raw, params, st, b_off, c_off = make_case(rng, t, h, p, n, hpg, big=True)
    for fmt in (dict(dbx_shift=63, y_shift=0, d_shift=127), dict(dbx_shift=127, y_shift=64, d_shift=62)):
        fmt.update(dt_frac=12, a_frac=8)
        state = new_state()
        put(state, ADDR["xbc"], xbc)
        put(state, ADDR["dt"], dt_raw)
        put(state, ADDR["params"], params)
        put(state, ADDR["state"], st)
        issue(ssm(t=t, h=h, p=p, n=n, hpg=hpg, xbc_ld=xbc.shape[1], b_off=b_off, c_off=c_off, dt_ld=h, y_ld=h * p,
                  **fmt), state)
        y, final = reference(xbc, dt_raw, params, st, h=h, p=p, n=n, hpg=hpg, b_off=b_off, c_off=c_off, **fmt)
        assert get(state, ADDR["y"], t, h * p, np.int32).tolist() == y.tolist()
        assert get(state, ADDR["state"], h * p, n, np.int32).tolist() == final.tolist()


def test_ssm_saturates_the_state_at_every_token_and_y_reads_the_saturated_state():
    """Three tokens, worked by hand from docs/NUMERICS.md §5 (dt = 4096 and dA = 12110 as in its worked example):
    token 0 injects dt*x*B = 4096 * 32767^2 and saturates the state at 2^31 - 1 (y reads it); token 1 only decays
    it, back into range; token 2 subtracts 4096*1000.  Saturating once after the last token instead, or reading y
    before the update, gives other numbers (2^31 - 1 for every state, and y0 = 1000)."""
    xbc = np.array([[32767, 32767, 1], [0, 32767, 1], [1, -1000, 1]], np.int16)  # x | B | C per token
    state = new_state()
    put(state, ADDR["xbc"], xbc)
    put(state, ADDR["dt"], np.zeros((3, 1), np.int16))
    put(state, ADDR["params"], np.array([[-4096, 1024, 0, 0]], np.int32))  # A = -1.0, D = 1.0, dt_bias = 0
    put(state, ADDR["state"], np.array([[1000]], np.int32))
    issue(ssm(t=3, dt_frac=12, a_frac=12, dbx_shift=0, y_shift=0, d_shift=10), state)
    decayed_max = (12110 * (2**31 - 1) + (1 << 14)) >> 15  # token 1: rshift_round(dA * state, 15)
    assert decayed_max == 793640960
    token2 = ((12110 * decayed_max + (1 << 14)) >> 15) - 4096 * 1000
    assert get(state, ADDR["y"], 3, 1, np.int32).ravel().tolist() == [2**31 - 1, decayed_max, token2 + 1]
    assert get(state, ADDR["state"], 1, 1, np.int32).item() == token2 == 289208200
