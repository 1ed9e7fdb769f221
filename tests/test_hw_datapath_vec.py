"""hardware.vec_datapath: the VEC datapath in Amaranth's simulator, bit for bit against fastmamba.isa.numerics.

Directed cases, each micro-op at every stage position: silu, softplus and gate at their table edges (e^-|x| at
every 2^(k/32) segment, log1p at every j/32 boundary and one ulp either side), the threshold 20, signed zeros,
subnormals, +-inf and NaN; dequantization of every type with power-of-two scales out of the normal range and the
int32 -> binary32 ties; quantization with ties to even, saturation, +-inf and NaN; rmsnorm over groups spanning
several beats and partial beats, in the contract's summation order; argmax with ties, signed zeros and NaN.  The
datapath is built with 2 lanes (the unit's beat order is emulated here: a group's sum-of-squares beats, then its
second-pass beats) so that Amaranth's simulator stays fast; tests/test_hw_vec.py runs the 8-lane `small` build
under Verilator.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np
import pytest

from fastmamba.hardware import vec_datapath
from fastmamba.hardware.vec_datapath import MICRO_OPS, TYPES, VecDatapath, datapath_latency
from fastmamba.isa import numerics
from fastmamba.isa.target import PRESETS
from hw_datapath_bulk import stream_sim

LANES = 1


@lru_cache(maxsize=None)
def _target():
    return dataclasses.replace(PRESETS["small"], vec_lanes=LANES)


def _bits(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32).view(np.uint32)


def _raw(a: np.ndarray) -> np.ndarray:
    """Element bits as the unit presents them: zero-extended to 32 bits."""
    a = np.asarray(a)
    if a.dtype == np.float32:
        return a.view(np.uint32).astype(np.int64)
    return a.astype(np.int64) & ((1 << (8 * a.dtype.itemsize)) - 1)


def _type_code(arr: np.ndarray) -> int:
    return TYPES.index({"float32": "f32", "int8": "i8", "int16": "i16", "int32": "i32"}[arr.dtype.name])


def _case_beats(case: dict):
    """The beats of one vec case in the unit's order, and where each writing beat's lanes go."""
    a = np.atleast_2d(case["a"])
    rows, cols = a.shape
    b = case.get("b")
    b = None if b is None else np.broadcast_to(np.atleast_2d(b), a.shape)
    ops = list(case.get("ops", ()))
    codes = [MICRO_OPS.index(o) for o in ops] + [0] * (4 - len(ops))
    rms = "rmsnorm" in ops
    group = case.get("group", 0)
    glen = group if rms else cols
    common = {"a_type": _type_code(a), "a_exp": case.get("a_exp", 0), "b_exp": case.get("b_exp", 0),
              "b_type": _type_code(b) if b is not None else 0, "group": group, "eps": int(_bits(case.get("eps", 0.0))),
              "out_type": TYPES.index(case.get("out_type", "f32")), "out_scale": int(_bits(case.get("out_scale", 1.0))),
              "argmax": 0, "row_first": 0, "col0": 0}
    for s, c in enumerate(codes):
        common[f"ops.{s}"] = c
    araw, braw = _raw(a), (_raw(b) if b is not None else None)
    vectors, where = [], []
    for r in range(rows):
        for g0 in range(0, cols, glen):
            for p in range(2 if rms else 1):
                for bc in range(0, glen, LANES):
                    n = min(LANES, glen - bc)
                    v = dict(common, sum_pass=int(rms and p == 0), group_first=int(rms and p == 0 and bc == 0), lanes=n)
                    for lane in range(LANES):
                        c = g0 + bc + min(lane, n - 1)
                        v[f"a.{lane}"] = int(araw[r, c])
                        v[f"b.{lane}"] = int(braw[r, c]) if braw is not None else 0
                    vectors.append(v)
                    where.append((r, g0 + bc, n) if (p == 1 or not rms) else None)
    return vectors, where, (rows, cols)


def _argmax_beats(a: np.ndarray):
    rows, cols = a.shape
    vectors, where = [], []
    for r in range(rows):
        for c0 in range(0, cols, LANES):
            n = min(LANES, cols - c0)
            v = {"argmax": 1, "row_first": int(c0 == 0), "col0": c0, "lanes": n, "a_type": TYPES.index("f32"),
                 "sum_pass": 0, "group_first": 0, "out_type": TYPES.index("f32"),
                 **{f"ops.{s}": MICRO_OPS.index("none") for s in range(4)}}  # as the unit: no micro-ops
            for lane in range(LANES):
                v[f"a.{lane}"] = int(a.view(np.uint32)[r, c0 + min(lane, n - 1)])
            vectors.append(v)
            where.append(r if c0 + LANES >= cols else None)
    return vectors, where


def run_cases(cases: list[dict]) -> list[np.ndarray]:
    """Every case (a vec chain's fields, or {"argmax": a}) through one simulation of the datapath, beat after beat;
    each case's dst as numpy."""
    streams = []
    for case in cases:
        streams.append(_argmax_beats(np.atleast_2d(case["argmax"])) if "argmax" in case else _case_beats(case))
    vectors = [v for s in streams for v in s[0]]
    k = [len([o for o in case.get("ops", ()) if o != "none"]) for case in cases]  # an argmax: no micro-ops
    passes = [max(1, -(-n // _target().vec_stages)) for n in k]  # isa.costs.vec_beat_cycles
    holds = [p for p, s in zip(passes, streams) for _ in s[0]]
    outs = stream_sim(VecDatapath(_target()), vectors, tuple(f"y.{i}" for i in range(LANES)) + ("index",),
                      datapath_latency(_target()), holds=holds)
    results, at = [], 0
    for case, stream in zip(cases, streams):
        got = outs[at:at + len(stream[0])]
        at += len(stream[0])
        if "argmax" in case:
            results.append(np.array([g["index"] for g, w in zip(got, stream[1]) if w is not None], np.int32))
            continue
        rows, cols = stream[2]
        dst = np.zeros((rows, cols), dtype=np.uint32)
        for g, w in zip(got, stream[1]):
            if w is not None:
                r, c, n = w
                dst[r, c:c + n] = [g[f"y.{i}"] & 0xFFFFFFFF for i in range(n)]
        out_type = case.get("out_type", "f32")
        if out_type == "f32":
            results.append(dst.view(np.float32))
        else:
            dt = np.dtype(numerics.NUMPY_DTYPES[out_type])
            results.append((dst & ((1 << (8 * dt.itemsize)) - 1)).astype(f"<u{dt.itemsize}").view(dt))
    return results


def reference(case: dict) -> np.ndarray:
    if "argmax" in case:
        return numerics.argmax(np.atleast_2d(case["argmax"]))
    a = np.atleast_2d(case["a"])
    x = numerics.dequant(a, case.get("a_exp", 0))
    b = case.get("b")
    bb = None if b is None else numerics.dequant(np.broadcast_to(np.atleast_2d(b), a.shape), case.get("b_exp", 0))
    ops = list(case.get("ops", ()))
    x = numerics.vec_chain(x, ops + ["none"] * (4 - len(ops)), bb, group=case.get("group", 0),
                           eps=float(np.float32(case.get("eps", 0.0))))
    return numerics.vec_output(x, case.get("out_type", "f32"), float(np.float32(case.get("out_scale", 1.0))))


def _same_bits(got: np.ndarray, want: np.ndarray, case: dict) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, want.dtype, got.shape, want.shape)
    gb, wb = got.view(f"u{got.dtype.itemsize}"), want.view(f"u{want.dtype.itemsize}")
    bad = np.argwhere(gb != wb)
    if bad.size:
        i = tuple(bad[0])
        src = np.atleast_2d(case.get("a", case.get("argmax")))
        raise AssertionError(f"{case.get('ops', 'argmax')}: {len(bad)} differ, first at {i} "
                             f"(a = {src[i] if src.ndim == 2 and len(i) == 2 else '-'}): "
                             f"got {gb[i]:#x}, want {wb[i]:#x}")


def check(*cases: dict) -> list[np.ndarray]:
    """Run the cases in one simulation and compare each with the reference bit for bit; return the results."""
    results = run_cases(list(cases))
    for case, got in zip(cases, results):
        _same_bits(got, reference(case), case)
    return results


def _f(words) -> np.ndarray:
    return np.asarray(words, dtype=np.uint32).view(np.float32)


# Every case below runs in one simulation (the module's fixture): a beat per lane group, about 100 beats.
WORKED = np.array([1.0, -1.0, 0.0, -0.0, 20.0, 25.0, -20.0, -100.0, -1000.0, np.inf, -np.inf, 1e-45, -1e-45],
                  dtype=np.float32)
TIES = np.array([0.5, 1.5, 2.5, 3.5, -2.5, 300.7, -300.7, 2.0**31, np.inf, -np.inf, np.nan, -0.0], np.float32)
ORDER = np.array([[4096.0, 1.0, 1.0, 1.0, 1.0, 1.0]], np.float32)
ARGMAX = _f([[0x3F800000, 0x40000000, 0x40000000, 0x3F800000],  # a tie: the first 2.0
             [0x80000000, 0x00000000, 0xBF800000, 0x80000000],  # -0 and +0 equal: index 0
             [0x3F800000, 0x7FC00000, 0x7F800000, 0x7FA00001],  # the first NaN
             [0xFF800000, 0xFF800000, 0xFF7FFFFF, 0xFF800000]])
def _random_operands() -> np.ndarray:
    """binary32 operands as tests/hw_programs.py draws them for random VEC programs (ties, signed zeros,
    subnormals, +-inf among them)."""
    import random

    from hw_programs import _vec_values

    return _vec_values(random.Random(3), np.random.default_rng(3), (1, 24), "f32", nan=None, inf=True)


RANDOM_QUANT = {"a": _random_operands(), "out_type": "i16", "ops": ["add"], "b": np.float32(0.0)}
CASES = {
    "silu": {"a": WORKED, "ops": ["silu"]},
    "softplus": {"a": WORKED, "ops": ["softplus"]},
    "nan": {"a": _f([0x7FA00001, 0xFFC00000]), "ops": ["softplus", "silu"]},
    # e^-|x| below half the smallest subnormal with T[k] * p not a power of two (ldexp rounds to +0): a random
    # program's operand that an ldexp rounding narrow significands up to 2^-149 got wrong
    "underflow_silu": {"a": _f([0xC2D33E1B, 0xC2DC0000]), "ops": ["silu"]},
    "underflow_softplus": {"a": _f([0xC2D33E1B, 0xC2DC0000]), "ops": ["softplus"]},
    "gate": {"a": _f([0x3FC00000, 0xC0000000, 0x7F800000, 0]), "b": _f([0xFF800000, 0x41A00001, 0, 0x7F800000]),
             "ops": ["gate"]},
    "stages": {"a": np.array([1.5, -7.25], np.float32), "b": np.array([-0.75, 3.0], np.float32),
               "ops": ["softplus", "gate", "add", "silu"]},
    "stages2": {"a": np.array([1.5, -7.25], np.float32), "b": np.array([-0.75, 3.0], np.float32),
                "ops": ["mul", "silu", "softplus", "mul"]},
    "dequant_i8": {"a": np.array([-128, 127], np.int8), "b": np.array([3, -5], np.int8), "ops": ["add"],
                   "a_exp": -128, "b_exp": 127},
    "dequant_i32": {"a": np.array([(1 << 24) + 1, (1 << 24) + 3], np.int32), "b": np.array([1, -3], np.int16),
                    "ops": ["mul"], "b_exp": -140 + 12},
    "quant_i8": {"a": TIES, "out_type": "i8"},
    "quant_i32": {"a": TIES, "out_type": "i32", "out_scale": 0.5},
    "rms_order": {"a": ORDER, "ops": ["rmsnorm"], "group": 6},
    "rms_example": {"a": np.array([[3.0, 4.0]], np.float32), "ops": ["rmsnorm"], "group": 2},
    "rms_groups": {"a": np.array([[1.0, -2.0, np.inf, 0.5], [3.0, 1e-20, -4.0, 2.0]], np.float32),
                   "b": np.array([0.5, -1.0, 2.0, 1.5], np.float32), "ops": ["add", "rmsnorm", "mul"], "group": 2,
                   "eps": 1e-5},
    "argmax": {"argmax": ARGMAX},
    "random_quant": RANDOM_QUANT,
}


@pytest.fixture(scope="module")
def results() -> dict:
    """Every case through one simulation, compared with the reference bit for bit."""
    return dict(zip(CASES, check(*CASES.values())))


def test_silu_softplus_worked_examples_and_specials(results):
    silu, sp = results["silu"].view(np.uint32)[0], results["softplus"].view(np.uint32)[0]
    assert silu[:2].tolist() == [0x3F3B26A8, 0xBE89B2B1] and sp[:2].tolist() == [0x3FA818F6, 0x3EA063D6]  # §6
    assert silu[7] == 0x80000A8C and sp[7] == 0x0000001B  # subnormal results
    assert silu[8] == 0x80000000 and sp[8] == 0 and silu[3] == 0x80000000 and sp[2] == sp[3] == 0x3F317218
    assert silu[10] == 0x80000000 and sp[10] == 0 and silu[9] == sp[9] == 0x7F800000
    assert silu[11] == 0 and silu[12] == 0x80000000 and sp[11] == sp[12] == 0x3F317218  # §6: x / 2 rounds to 0
    assert results["nan"].view(np.uint32)[0].tolist() == [0x7FE00001, 0xFFC00000]
    assert results["underflow_silu"].view(np.uint32)[0].tolist() == [0x80000000] * 2  # -105.62, -110: E = +0
    assert results["underflow_softplus"].view(np.uint32)[0].tolist() == [0, 0]


def test_gate_and_every_stage(results):
    assert results["gate"].view(np.uint32)[0, 0] == 0x80000000  # 1.5 * silu(-inf) = -0
    assert results["stages"].shape == results["stages2"].shape == (1, 2)  # (bit-exact in the fixture)


def test_dequantize_out_of_the_normal_range_and_int_ties(results):
    assert results["dequant_i8"][0, 0] == np.inf  # 3 * 2^127 overflows
    assert results["dequant_i32"][0, 0] == np.float32(2.0**24 * 2.0**-128)  # 2^24 + 1 rounds to even first


def test_quantize_ties_to_even_saturation_and_non_finite(results):
    assert results["quant_i8"][0].tolist() == [0, 2, 2, 4, -2, 127, -128, 127, 127, -128, 0, 0]
    assert results["quant_i32"][0].tolist()[:8] == [0, 1, 1, 2, -1, 150, -150, 1 << 30]


def test_rmsnorm_sums_left_to_right_over_beats(results):
    # squares 2^24 then 1s: left to right each + 1 is lost to rounding (a pairwise sum would keep them)
    r = np.float32(1) / np.sqrt(np.float32(2.0**24) / np.float32(6))
    assert np.array_equal(results["rms_order"], ORDER * r)
    assert results["rms_example"].tolist() == [[np.float32(0.84852815), np.float32(1.1313709)]]  # §6
    assert np.isnan(results["rms_groups"][0, 2]) and results["rms_groups"][0, 3] == 0  # inf * (1 / sqrt(inf))


def test_argmax_first_of_ties_signed_zeros_nan(results):
    assert results["argmax"].tolist() == [1, 0, 1, 2]


def test_a_wrong_rounding_is_caught_by_random_operands(results, monkeypatch):
    """The datapath built with rint's ties away from zero (a deliberately wrong rounding, in quantization and in
    e^-x's steps) differs from the simulator's arithmetic on random operands, which the correct build matches
    (the fixture's case `random_quant`)."""
    monkeypatch.setattr(vec_datapath, "TIES_TO_EVEN", False)
    (wrong,) = run_cases([RANDOM_QUANT])
    want = reference(RANDOM_QUANT)
    assert np.array_equal(results["random_quant"], want) and not np.array_equal(wrong, want)
