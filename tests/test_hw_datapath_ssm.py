"""hardware.ssm_datapath in Amaranth's simulator against fastmamba.isa.numerics.ssm_scan, bit for bit.

The test plays the SSM controller (hardware/ssm_unit.py): it walks an op's
beats (tokens, heads, lane blocks of p and n) one per cycle, presents each
beat's state STATE_STAGE cycles later from a model of the buffer (a write
lands at the end of its cycle, a read sees the buffer as it was one cycle
earlier; `fwd` set where the controller sets it), writes `new_state` back,
and collects y.  Lanes beyond p and n carry random values, which must not
matter.  Cases: the worked example of docs/NUMERICS.md §5, rounding ties of
every shift, saturation of the state (ssm_state_bits 16, 24, 32) and of y,
dt_frac and a_frac at their extremes, the NLA's segment edges and the
largest exponents, heads-per-group layouts, one beat per token (the
forwarded state), and random ops.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fastmamba.hardware.ssm_datapath import SsmDatapath
from fastmamba.isa import numerics
from fastmamba.isa.target import PRESETS

SMALL = PRESETS["small"]
VC_LIKE = dataclasses.replace(SMALL, name="hw_ssm_wide", ssm_headdim_lanes=2, ssm_dstate_lanes=4, nla_bits=16,
                              nla_segments=8)

FIELDS = ("dt_frac", "a_frac", "dbx_shift", "y_shift", "d_shift")


def reference(op: dict, target) -> tuple[np.ndarray, np.ndarray]:
    y, st = numerics.ssm_scan(op["x"], op["B"], op["C"], op["dt_raw"], op["A"], op["D"], op["dt_bias"], op["state"],
                              hpg=op["hpg"], segments=target.nla_segments, bits=target.nla_bits,
                              state_bits=target.ssm_state_bits, **{f: op[f] for f in FIELDS})
    return y.astype(np.int64), st.astype(np.int64)


def beats(op: dict, P: int, N: int):
    """The controller's order: token, head, block of P channels, block of N state indices (innermost)."""
    t, h, p = np.shape(op["x"])
    n = np.shape(op["state"])[2]
    per_token = h * -(-p // P) * -(-n // N)
    for tt in range(t):
        for i in range(h):
            for j0 in range(0, p, P):
                for k0 in range(0, n, N):
                    yield dict(tt=tt, i=i, g=i // op["hpg"], j0=j0, k0=k0, pv=min(P, p - j0), nv=min(N, n - k0),
                               first=k0 == 0, last=k0 + N >= n, fwd=per_token == 1 and tt > 0)


def run_datapath(target, op: dict, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(y [t, h, p], final state [h, p, n]) of one ssm op through SsmDatapath(target) in Amaranth's simulator."""
    from amaranth.sim import Simulator

    comp = SsmDatapath(target)
    P, N = comp.P, comp.N
    rng = np.random.default_rng(seed)
    x, B, C = (np.asarray(op[k], np.int64) for k in ("x", "B", "C"))
    t, h, p = x.shape
    buf = np.array(op["state"], np.int64)
    plan = list(beats(op, P, N))
    y = np.zeros((t, h, p), np.int64)

    def lanes(values, count, width):
        out = rng.integers(-(1 << (width - 1)), 1 << (width - 1), count)
        out[:len(values)] = values
        return [int(v) for v in out]

    async def bench(ctx):
        pending = None  # the state write of the previous cycle: lands at its end, seen by reads one cycle later
        for cycle in range(len(plan) + comp.LATENCY + 1):
            if cycle < len(plan):
                b = plan[cycle]
                tt, i, g, j0, k0 = b["tt"], b["i"], b["g"], b["j0"], b["k0"]
                ctx.set(comp.dt_raw, int(op["dt_raw"][tt][i]))
                ctx.set(comp.a, int(op["A"][i]))
                ctx.set(comp.d, int(op["D"][i]))
                ctx.set(comp.dt_bias, int(op["dt_bias"][i]))
                ctx.set(comp.x, lanes(x[tt, i, j0:j0 + P], P, 16))
                ctx.set(comp.b, lanes(B[tt, g, k0:k0 + N], N, 16))
                ctx.set(comp.c, lanes(C[tt, g, k0:k0 + N], N, 16))
                ctx.set(comp.n_valid, b["nv"])
                for f in FIELDS:
                    ctx.set(getattr(comp, f), int(op[f]))
                for f in ("first", "last", "fwd"):
                    ctx.set(getattr(comp, f), int(b[f]))
            ctx.set(comp.valid, int(cycle < len(plan)))
            write = None
            sb = cycle - comp.STATE_STAGE
            if 0 <= sb < len(plan):
                b = plan[sb]
                i, j0, k0, pv, nv = b["i"], b["j0"], b["k0"], b["pv"], b["nv"]
                block = [lanes(buf[i, j0 + j, k0:k0 + nv] if j < pv else [], N, 32) for j in range(P)]
                ctx.set(comp.state, block)
                got = ctx.get(comp.new_state)
                write = (i, j0, k0, pv, nv, [[int(got[j][k]) for k in range(N)] for j in range(P)])
            if pending is not None:
                i, j0, k0, pv, nv, vals = pending
                for j in range(pv):
                    buf[i, j0 + j, k0:k0 + nv] = vals[j][:nv]
            pending = write
            if ctx.get(comp.y_valid):
                yb = cycle - comp.LATENCY
                b = plan[yb]
                assert b["last"], f"y after beat {yb}, which is not the last lane block of n"
                got = ctx.get(comp.y)
                y[b["tt"], b["i"], b["j0"]:b["j0"] + b["pv"]] = [int(got[j]) for j in range(b["pv"])]
            await ctx.tick()
        if pending is not None:
            i, j0, k0, pv, nv, vals = pending
            for j in range(pv):
                buf[i, j0 + j, k0:k0 + nv] = vals[j][:nv]

    sim = Simulator(comp)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return y, buf


def make_op(rng, t, h, p, n, hpg, *, dt_frac=12, a_frac=12, dbx_shift=17, y_shift=18, d_shift=10, big=False):
    groups = -(-h // hpg)
    lim = 32768 if big else 2000
    return dict(
        x=rng.integers(-lim, lim, (t, h, p)), B=rng.integers(-lim, lim, (t, groups, n)),
        C=rng.integers(-lim, lim, (t, groups, n)), dt_raw=rng.integers(-6000, 6000, (t, h)),
        A=-rng.integers(0, 1 << 14, h), D=rng.integers(-(1 << 12), 1 << 12, h),
        dt_bias=rng.integers(-4000, 4000, h), state=rng.integers(-(1 << 24), 1 << 24, (h, p, n)),
        hpg=hpg, dt_frac=dt_frac, a_frac=a_frac, dbx_shift=dbx_shift, y_shift=y_shift, d_shift=d_shift)


def check(target, op, seed=0):
    y, st = run_datapath(target, op, seed)
    ry, rst = reference(op, target)
    assert np.array_equal(st, rst), np.argwhere(st != rst)[:5]
    assert np.array_equal(y, ry), np.argwhere(y != ry)[:5]


def test_worked_example_of_numerics_section_5():
    vc709 = dataclasses.replace(PRESETS["vc709"], ssm_headdim_lanes=2, ssm_dstate_lanes=2)
    op = dict(x=[[[1024]]], B=[[[2048]]], C=[[[4096]]], dt_raw=[[0]], A=[-4096], D=[1024], dt_bias=[0],
              state=[[[1 << 20]]], hpg=1, dt_frac=12, a_frac=12, dbx_shift=17, y_shift=18, d_shift=10)
    y, st = run_datapath(vc709, op)
    assert st.tolist() == [[[453056]]] and y.tolist() == [[[8103]]]


def test_random_ops_every_lane_tiling():
    rng = np.random.default_rng(1)
    for t, h, p, n, hpg in ((3, 1, 4, 4, 1), (2, 2, 5, 3, 1), (2, 3, 3, 9, 2), (1, 4, 8, 8, 4), (4, 1, 1, 1, 1),
                            (2, 1, 2, 4, 1), (2, 2, 2, 2, 2)):
        check(SMALL, make_op(rng, t, h, p, n, hpg), seed=t * h)


def test_rounding_ties_of_every_shift():
    """dA = 0.5 (A = -2849 with dt = 1.0: z = -2849, y = -4096, u = -1, v = 0) and odd states: the decay's
    rshift_round by nla_bits - 1 is a tie for every odd state, of both signs; odd x * B with dt = 2^12 and
    dbx_shift 13, odd C * state and D * x with shifts 1 to 3: ties in the increment, the reduction and D * x."""
    rng = np.random.default_rng(2)
    for shift in (1, 2, 3):
        t, h, p, n = 3, 2, 3, 5
        odd = lambda shape: rng.integers(-8, 8, shape) * 2 + 1  # noqa: E731
        op = dict(x=odd((t, h, p)), B=odd((t, h, n)), C=odd((t, h, n)), dt_raw=np.zeros((t, h), np.int64),
                  A=np.array([-2849, -2849]), D=odd(h), dt_bias=np.zeros(h, np.int64), state=odd((h, p, n)),
                  hpg=1, dt_frac=12, a_frac=12, dbx_shift=12 + shift, y_shift=shift, d_shift=shift)
        dt = numerics.softplus_q(np.int64(0), 12, segments=SMALL.nla_segments, bits=SMALL.nla_bits)
        assert int(dt) == 4096
        assert int(numerics.exp_q(np.int64(-2849), 12, segments=8, bits=16)) == 1 << 14
        check(SMALL, op, seed=shift)


@pytest.mark.parametrize("state_bits", [16, 24, 32])
def test_saturation_of_the_state_and_y(state_bits):
    """No decay (A = 0: dA = 1.0) and the largest increments (dbx_shift 0) drive the state to both ends of
    ssm_state_bits; y = C . state + D x with shifts 0 saturates to int32 at both ends."""
    target = dataclasses.replace(SMALL, ssm_state_bits=state_bits)
    rng = np.random.default_rng(state_bits)
    t, h, p, n = 3, 2, 4, 6
    top = 32767
    sign = rng.choice([-1, 1], (t, h, p))
    op = dict(x=sign * top, B=np.full((t, h, n), top), C=rng.choice([-32768, 32767], (t, h, n)),
              dt_raw=np.full((t, h), 32767), A=np.zeros(h, np.int64), D=np.array([(1 << 31) - 1, -(1 << 31)]),
              dt_bias=np.full(h, (1 << 31) - 1), state=rng.integers(-(1 << 31), 1 << 31, (h, p, n)),
              hpg=1, dt_frac=3, a_frac=0, dbx_shift=0, y_shift=0, d_shift=0)
    _, st = reference(op, target)
    lim = 1 << (state_bits - 1)
    assert (st == lim - 1).any() and (st == -lim).any()
    check(target, op)


def test_dt_frac_and_a_frac_extremes():
    """dt_frac at log2(nla_segments) and nla_bits - 1, a_frac at 0 and 63; dt_raw and dt_bias at their ends
    (softplus clips to 2^nla_bits - 1), A from -2^31 (dA underflows to 0) to positive (taken as no decay)."""
    rng = np.random.default_rng(3)
    low, high = SMALL.nla_segments.bit_length() - 1, SMALL.nla_bits - 1
    t, h, p, n = 4, 6, 2, 3
    for dt_frac in (low, high):
        for a_frac in (0, 31, 63):
            op = make_op(rng, t, h, p, n, 3, dt_frac=dt_frac, a_frac=a_frac, dbx_shift=20, y_shift=20, d_shift=5)
            op["dt_raw"] = rng.choice([-32768, 32767, 0, 1, -1], (t, h))
            op["dt_bias"] = np.array([-(1 << 31), (1 << 31) - 1, 0, 5, -5, 1 << 20])
            op["A"] = np.array([-(1 << 31), -1, 0, (1 << 31) - 1, -(1 << 20), -3])
            check(SMALL, op, seed=dt_frac + a_frac)


def _edges(frac: int, segments: int) -> list[int]:
    """z values whose y = (z * 23) >> 4 lies at, and one step on each side of, every segment boundary of
    integer parts u = 0, -1 and around -15 (where dA leaves the Q1.(nla_bits-1) range) and -63."""
    log2s = segments.bit_length() - 1
    out = []
    for u in (0, 1, 14, 15, 16, 17, 63, 64):
        for seg in range(segments + 1):
            y = -(u << frac) + (seg << (frac - log2s))
            z = -(-y * 16 // 23)  # near the z with (z * 23) >> 4 == y
            out += [z - 1, z, z + 1]
    return sorted({v for v in out if -(1 << 31) <= v <= 0})


@pytest.mark.parametrize("frac", [3, 12, 15])
def test_nla_segment_edges(frac):
    """exp(z) at every segment edge, one head per value: z = A (dt = 1.0 from s = 0, a_frac = dt_frac); then
    softplus at the same edges: s = -dt_bias or +dt_bias."""
    segs, bits = SMALL.nla_segments, SMALL.nla_bits
    edges = _edges(frac, segs)
    assert int(numerics.softplus_q(np.int64(0), frac, segments=segs, bits=bits)) == 1 << frac
    rng = np.random.default_rng(frac)
    h = 96
    for lo in range(0, len(edges), h):
        values = np.array(edges[lo:lo + h], np.int64)
        hh = len(values)
        op = make_op(rng, 1, hh, 1, 2, hh, dt_frac=frac, a_frac=frac, dbx_shift=frac + 12, y_shift=14, d_shift=6)
        op["A"], op["dt_raw"], op["dt_bias"] = values, np.zeros((1, hh), np.int64), np.zeros(hh, np.int64)
        check(SMALL, op, seed=lo)
        op["dt_bias"] = np.where(np.arange(hh) % 2, values, -values)
        op["A"] = -rng.integers(0, 1 << 16, hh)
        check(SMALL, op, seed=lo + 1)


@pytest.mark.parametrize("h, hpg", [(1, 1), (2, 2), (3, 2), (5, 2), (5, 5), (8, 3), (8, 8)])
def test_heads_per_group_layouts(h, hpg):
    """One group, groups of several heads, and a last group partial when hpg does not divide h."""
    rng = np.random.default_rng(h * 10 + hpg)
    check(SMALL, make_op(rng, 2, h, 3, 5, hpg), seed=hpg)


def test_one_beat_per_token_uses_the_forwarded_state():
    """h = 1, p <= P, n <= N: each token's beat reads the state the previous beat is writing in the same cycle
    (the buffer returns the old bytes); the datapath takes its own previous result (fwd)."""
    rng = np.random.default_rng(9)
    for p, n in ((4, 4), (1, 3), (2, 1)):
        check(SMALL, make_op(rng, 6, 1, p, n, 1, big=True), seed=p * n)


def test_other_lane_counts_and_nla_tables():
    """A 2 x 4-lane build, and nla_bits 12 with 16 segments and nla_bits 20 with 4."""
    rng = np.random.default_rng(10)
    check(VC_LIKE, make_op(rng, 3, 2, 5, 7, 1))
    for bits, segs in ((12, 16), (20, 4)):
        target = dataclasses.replace(SMALL, nla_bits=bits, nla_segments=segs)
        for dt_frac in (segs.bit_length() - 1, bits - 1):
            check(target, make_op(rng, 3, 3, 3, 5, 2, dt_frac=dt_frac, a_frac=dt_frac, big=True), seed=dt_frac)
