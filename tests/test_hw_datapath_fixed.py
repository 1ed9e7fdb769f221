"""hardware.fixed: rshift_round and saturation in Amaranth's simulator, against fastmamba.isa.numerics bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from fastmamba.hardware.fixed import rshift_round, saturate, saturate_unsigned
from fastmamba.isa import numerics


def _comb_eval(inputs: dict, outputs: dict, vectors: list[dict]) -> list[dict]:
    """Drive combinational logic with each vector of input values; return every output's value after settling."""
    m = Module()
    for name, value in outputs.items():
        sig = Signal(value.shape(), name=name)
        m.d.comb += sig.eq(value)
        outputs[name] = sig
    results = []

    async def bench(ctx):
        for vec in vectors:
            for name, val in vec.items():
                ctx.set(inputs[name], val)
            results.append({name: ctx.get(sig) for name, sig in outputs.items()})

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return results


def _directed_rshift_cases(width: int) -> list[tuple[int, int]]:
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    cases = []
    for s in range(0, 128):
        half = 1 << (s - 1) if s else 0
        for k in (0, 1, 2, 3, 7, -1, -2, -3, -8):  # ties: (k + 1/2) * 2^s, both signs, and their neighbours
            for x in (k * (1 << s) + half, k * (1 << s) + half - 1, k * (1 << s) + half + 1, k * (1 << s)):
                if lo <= x <= hi:
                    cases.append((x, s))
        for x in (lo, hi, lo + 1, hi - 1, 0, 1, -1):
            cases.append((x, s))
    return cases


@pytest.mark.parametrize("width", [63, 20])
def test_rshift_round_variable_shift_matches_numerics(width):
    x = Signal(signed(width))
    s = Signal(unsigned(7))
    cases = _directed_rshift_cases(width)
    rng = np.random.default_rng(width)
    for _ in range(400):
        bits = int(rng.integers(1, width))
        cases.append((int(rng.integers(-(1 << (bits - 1)), 1 << (bits - 1))), int(rng.integers(0, 128))))
    got = _comb_eval({"x": x, "s": s}, {"r": rshift_round(x, s)}, [{"x": a, "s": b} for a, b in cases])
    want = numerics.rshift_round(np.array([a for a, _ in cases], dtype=np.int64), np.array([b for _, b in cases]))
    assert [g["r"] for g in got] == want.tolist()
    assert rshift_round(x, s).shape() == signed(width)


def test_rshift_round_worked_table_and_constant_shifts():
    # NUMERICS §1's table: 5>>1 = 3, -5>>1 = -2, 6>>2 = 2, -6>>2 = -1, 7>>2 = 2, -7>>2 = -2.
    x = Signal(signed(40))
    table = [(5, 1, 3), (-5, 1, -2), (6, 2, 2), (-6, 2, -1), (7, 2, 2), (-7, 2, -2)]
    outs = {f"c{s}": rshift_round(x, s) for s in (0, 1, 2, 5, 39, 40, 63, 64, 127)}
    values = [v for v, _, _ in table] + [(1 << 39) - 1, -(1 << 39), 1 << 38, -(1 << 38), 16, -16, 48, -48]
    got = _comb_eval({"x": x}, outs, [{"x": v} for v in values])
    for (_, s, want), g in zip(table, got):
        assert g[f"c{s}"] == want
    for v, g in zip(values, got):
        for s in (0, 1, 2, 5, 39, 40, 63, 64, 127):
            assert g[f"c{s}"] == int(numerics.rshift_round(v, s)), (v, s)


def test_rshift_round_unsigned_input():
    x = Signal(unsigned(16))
    s = Signal(unsigned(5))
    vecs = [{"x": v, "s": sh} for v in (0, 1, 2, 3, 0x8000, 0xFFFF, 0x7FFF, 0xC000) for sh in range(32)]
    got = _comb_eval({"x": x, "s": s}, {"r": rshift_round(x, s)}, vecs)
    want = numerics.rshift_round(np.array([v["x"] for v in vecs]), np.array([v["s"] for v in vecs]))
    assert [g["r"] for g in got] == want.tolist()


def test_saturate_signed_and_unsigned():
    x = Signal(signed(36))
    outs = {"i8": saturate(x, 8), "i16": saturate(x, 16), "i32": saturate(x, 32), "wide": saturate(x, 40),
            "u8": saturate_unsigned(x, 8), "u16": saturate_unsigned(x, 16)}
    values = [0, 1, -1, 127, 128, -128, -129, 200, -200, 32767, 32768, -32768, -32769,
              (1 << 31) - 1, 1 << 31, -(1 << 31), -(1 << 31) - 1, 255, 256, 65535, 65536,
              (1 << 35) - 1, -(1 << 35)]
    rng = np.random.default_rng(1)
    values += [int(v) for v in rng.integers(-(1 << 35), 1 << 35, 100)]
    got = _comb_eval({"x": x}, outs, [{"x": v} for v in values])
    for v, g in zip(values, got):
        for name in ("i8", "i16", "i32"):
            assert g[name] == int(numerics.saturate(v, name)), (v, name)
        assert g["wide"] == v
        assert g["u8"] == min(max(v, 0), 255)
        assert g["u16"] == min(max(v, 0), 65535)
    assert outs["i8"].shape() == signed(8) and outs["u16"].shape() == unsigned(16)
