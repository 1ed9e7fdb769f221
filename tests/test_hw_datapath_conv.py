"""hardware.conv_datapath in Amaranth's simulator against fastmamba.isa.numerics.conv, bit for bit.

The test sequences tokens as the CONV controller would (slot j of the taps
holds xx[t + j]) and compares whole conv ops: the worked example of
docs/NUMERICS.md §3, rounding ties, saturation to i16 and i32, the largest
shifts, every kernel width from 2 to conv_kernel_max (with garbage in the
unused slots), and random ops.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fastmamba.hardware.conv_datapath import OUT_TYPES, ConvDatapath
from fastmamba.isa import numerics
from fastmamba.isa.target import load_target
from hw_datapath_bulk import stream_sim

VC709 = load_target("vc709")
SMALL = dataclasses.replace(VC709, name="hw_small", conv_channels=3, conv_kernel_max=6)


def run_conv(comp: ConvDatapath, ops: list[dict], rng=None) -> list[np.ndarray]:
    """Each op: src [t, c], state [kw-1, c], wgt [kw, c], bias [c], shift, out ("i16"/"i32"); c <= the lanes.
    Unused tap slots (j >= kw) and lanes carry random values, which must not matter.  Returns dst per op."""
    rng = rng or np.random.default_rng(0)
    lanes, kernel = comp.channels, comp.kernel
    vectors, shapes = [], []
    for op in ops:
        src, state, wgt = (np.asarray(op[k], dtype=np.int64) for k in ("src", "state", "wgt"))
        kw, (t, c) = wgt.shape[0], src.shape
        xx = np.concatenate([state, src])
        for i in range(t):
            x = rng.integers(-32768, 32768, (kernel, lanes))
            w = rng.integers(-32768, 32768, (kernel, lanes))
            bias = rng.integers(-(1 << 31), 1 << 31, lanes)
            x[:kw, :c] = xx[i:i + kw]
            w[:kw, :c] = wgt
            bias[:c] = op["bias"]
            vectors.append({"x": x.tolist(), "w": w.tolist(), "bias": bias.tolist(), "kw": kw, "shift": op["shift"],
                            "out_type": OUT_TYPES.index(op["out"])})
        shapes.append((t, c))
    got = stream_sim(comp, vectors, ("y",), comp.LATENCY)
    rows = [list(g["y"]) for g in got]
    out, at = [], 0
    for t, c in shapes:
        out.append(np.array([r[:c] for r in rows[at:at + t]], dtype=np.int64))
        at += t
    return out


def _reference(op: dict) -> np.ndarray:
    dst, _ = numerics.conv(op["src"], op["state"], op["wgt"], op["bias"], op["shift"], op["out"])
    return dst.astype(np.int64)


def test_worked_example_of_numerics_section_3():
    op = {"src": [[10], [20]], "state": [[1], [2], [3]], "wgt": [[1], [2], [3], [4]], "bias": [5], "shift": 1,
          "out": "i16"}
    (dst,) = run_conv(ConvDatapath(VC709), [op])
    assert dst.tolist() == [[30], [62]] == _reference(op).tolist()


def test_ties_saturation_and_largest_shifts():
    c = 3
    ops = []
    # kw = 2, wgt = [0, 1]: acc = src + bias, so every acc value is chosen directly.
    def direct(values, bias, shift, out):
        src = np.array(values, dtype=np.int64).reshape(-1, c)
        return {"src": src, "state": np.zeros((1, c), dtype=np.int64), "wgt": np.array([[0] * c, [1] * c]),
                "bias": np.full(c, bias), "shift": shift, "out": out}

    ties = [5, -5, 3, -3, 1, -1, 7, -7, 2, -2, 0, 32767]
    for shift in (1, 2, 3):
        ops.append(direct(ties, 0, shift, "i16"))
    ops.append(direct([1, -1, 3], (1 << 20) * 3 - 1, 21, "i16"))  # 1.5 * 2^21 exactly (a tie) and both sides
    ops.append(direct([32767, -32768, 0], (1 << 31) - 1, 0, "i32"))  # acc beyond int32: saturates
    ops.append(direct([-32768, 32767, -1], -(1 << 31), 0, "i32"))
    ops.append(direct([32767, -32768, 100], 0, 0, "i16"))
    ops.append(direct([-32768, 32767, 1], 32767, 0, "i16"))  # 32767 + 32767 -> 32767; -1 -> fine
    ops.append(direct([-32768, 32767, 1], -32768, 1, "i16"))  # -65536 / 2 = -32768 exactly, -0.5 -> 0
    for shift in (31, 32, 33, 34, 35, 36, 63, 64, 127):  # the largest accumulators and the largest shifts
        ops.append(direct([-32768, 32767, 0], -(1 << 31), shift, "i32"))
    # Four taps at the extremes: |acc| = 4 * 2^30 + 2^31, the widest the accumulator holds, both signs.
    full = {"src": np.array([[-32768, -32768, 32767]]), "state": np.array([[-32768, 32767, -32768]] * 3),
            "wgt": np.array([[-32768, 32767, -32768]] * 4), "shift": 0, "out": "i32"}
    ops.append({**full, "bias": np.array([(1 << 31) - 1, -(1 << 31), 0])})
    ops.append({**full, "bias": np.array([(1 << 31) - 1, -(1 << 31), 0]), "shift": 3})
    ops.append({**full, "bias": np.array([-(1 << 31), (1 << 31) - 1, 5]), "shift": 20, "out": "i16"})
    comp = ConvDatapath(VC709)
    for op, got in zip(ops, run_conv(comp, ops)):
        assert got.tolist() == _reference(op).tolist(), op
    # By value: ties round up for both signs.
    first = run_conv(ConvDatapath(SMALL), ops[:1])[0]
    assert first.ravel().tolist()[:4] == [3, -2, 2, -1]


@pytest.mark.parametrize("target", [VC709, SMALL], ids=["vc709", "kernel6"])
def test_every_kernel_width_and_random_ops(target):
    rng = np.random.default_rng(target.conv_kernel_max)
    comp = ConvDatapath(target)
    ops = []
    for kw in range(2, target.conv_kernel_max + 1):
        for out in ("i16", "i32"):
            t = int(rng.integers(1, 4))
            c = int(rng.integers(1, target.conv_channels + 1))
            small = kw % 2 == 0
            hi = 256 if small else 32768
            src = rng.integers(-hi, hi, (t, c))
            state = rng.integers(-hi, hi, (kw - 1, c))
            wgt = rng.integers(-hi, hi, (kw, c))
            bias = rng.integers(-(1 << 31), 1 << 31, c) if not small else rng.integers(-1000, 1000, c)
            bound = int(np.abs(wgt).sum(axis=0).max()) * hi + int(np.abs(bias).max())
            shift = max(bound.bit_length() - (15 if out == "i16" else 31) + int(rng.integers(-2, 2)), 0)
            ops.append({"src": src, "state": state, "wgt": wgt, "bias": bias, "shift": shift, "out": out})
    for op, got in zip(ops, run_conv(comp, ops, rng)):
        assert got.tolist() == _reference(op).tolist(), op


def test_tokens_split_across_ops_carry_the_state():
    """Running t tokens in one op equals two ops with the state carried (the controller's upd = 1 path)."""
    rng = np.random.default_rng(9)
    kw, c = 4, 5
    src = rng.integers(-32768, 32768, (6, c))
    state = rng.integers(-32768, 32768, (kw - 1, c))
    wgt = rng.integers(-32768, 32768, (kw, c))
    bias = rng.integers(-(1 << 20), 1 << 20, c)
    whole = {"src": src, "state": state, "wgt": wgt, "bias": bias, "shift": 17, "out": "i16"}
    _, mid_state = numerics.conv(src[:2], state, wgt, bias, 17, "i16")
    first = {**whole, "src": src[:2]}
    second = {**whole, "src": src[2:], "state": mid_state}
    comp = ConvDatapath(VC709)
    got_whole, got_first, got_second = run_conv(comp, [whole, first, second], rng)
    assert got_whole.tolist() == np.concatenate([got_first, got_second]).tolist() == _reference(whole).tolist()
