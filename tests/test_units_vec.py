"""VEC semantics (vec, vec.argmax): chains bit-exact against per-element binary32 re-derivations, close to float64."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fastmamba.isa.instructions import Bundle, Instruction
from fastmamba.isa.target import load_target
from fastmamba.simulator.effects import MachineState, Range, SimulationError
from fastmamba.simulator.engine import simulate
from fastmamba.simulator.semantics import SEMANTICS

from buffer_io import get, put
import vec_reference as vr

TARGET = load_target("vc709")
F = np.float32
NP = {"i8": np.int8, "i16": np.int16, "i32": np.int32, "f32": np.float32}
ADDR = dict(a=0x1000, b=0x8000, dst=0x10000)


def new_state() -> MachineState:
    return MachineState(ddr=np.zeros(8, np.uint8), buf=np.zeros(1 << 18, np.uint8))


def vec(ops=("none",) * 4, **kw):
    args = dict(ADDR, rows=1, cols=1, a_type="f32", a_exp=0, b_type="f32", b_exp=0, b_mode="none", group=1, eps=0.0,
                out_type="f32", out_scale=1.0)
    args.update({f"op{i}": op for i, op in enumerate(ops)})
    args.update(kw)
    for f in ("a_ld", "b_ld", "dst_ld"):
        args.setdefault(f, args["cols"])  # packed rows unless a test gives a pitch
    return Instruction("vec", args)


def issue(instr, state):
    sem = SEMANTICS[instr.op]
    fp = sem.footprint(instr, state, TARGET)
    sem.execute(instr, state, TARGET)
    return fp


def silu1(v) -> np.float32:
    """§6's silu, from the scalar reading of the doc (tests/vec_reference.py)."""
    return F(vr.silu(float(v)))


def quant1(v, lo, hi) -> int:
    r = round(float(v))  # Python's round: half to even
    return max(lo, min(hi, r))


def test_dequant_add_full_bit_exact():
    rng = np.random.default_rng(0)
    rows, cols = 3, 37
    a = rng.integers(-32768, 32768, (rows, cols)).astype(np.int16)
    b = rng.standard_normal((rows, cols)).astype(np.float32)
    state = new_state()
    put(state, ADDR["a"], a)
    put(state, ADDR["b"], b)
    issue(vec(("add", "none", "none", "none"), rows=rows, cols=cols, a_type="i16", a_exp=-8, b_mode="full"), state)
    got = get(state, ADDR["dst"], rows, cols, np.float32)
    for r in range(rows):
        for c in range(cols):
            assert got[r, c] == F(F(int(a[r, c]) / 256.0) + b[r, c])


def test_int32_dequant_rounds_and_row_broadcast_mul_quantizes_half_even():
    rows, cols = 2, 6
    a = np.array([[2**24 + 1, 3, -5, 7, 1, -1], [2**30 + 77, 0, 9, -9, 11, 13]], dtype=np.int32)
    b = np.array([3, -1, 2, 1, 10, 3], dtype=np.int8)
    state = new_state()
    put(state, ADDR["a"], a)
    put(state, ADDR["b"], b)
    issue(vec(("mul", "none", "none", "none"), rows=rows, cols=cols, a_type="i32", a_exp=-1, b_type="i8", b_exp=-2,
              b_mode="row", out_type="i16", out_scale=2.0), state)
    got = get(state, ADDR["dst"], rows, cols, np.int16)
    for r in range(rows):
        for c in range(cols):
            x = F(F(F(int(a[r, c])) * F(0.5)) * F(int(b[c]) * 0.25))
            assert got[r, c] == quant1(F(x * F(2.0)), -32768, 32767)
    assert got[0, 2] == -2 and got[0, 4] == 2  # -2.5 -> -2 and 2.5 -> 2: ties to even
    assert got[1, 0] == 32767  # saturated


def test_silu_gate_chain_bit_exact_and_close_to_float64():
    rng = np.random.default_rng(1)
    rows, cols = 4, 50
    a = (rng.standard_normal((rows, cols)) * 4).astype(np.float32)
    b = (rng.standard_normal((rows, cols)) * 4).astype(np.float32)
    a[0, :3] = [-1000.0, 90.0, 0.0]
    state = new_state()
    put(state, ADDR["a"], a)
    put(state, ADDR["b"], b)
    issue(vec(("silu", "gate", "none", "none"), rows=rows, cols=cols, b_mode="full"), state)
    got = get(state, ADDR["dst"], rows, cols, np.float32)
    for r in range(rows):
        for c in range(cols):
            assert got[r, c] == F(silu1(a[r, c]) * silu1(b[r, c]))
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    ref = a64 / (1 + np.exp(-np.maximum(a64, -700))) * (b64 / (1 + np.exp(-b64)))
    assert np.allclose(got, ref, rtol=3e-6, atol=1e-30)


def test_rmsnorm_then_row_weights_then_int8():
    rng = np.random.default_rng(2)
    rows, cols, group, eps = 3, 64, 16, 1e-5
    a = (rng.standard_normal((rows, cols)) * 3).astype(np.float32)
    w = rng.uniform(0.5, 1.5, cols).astype(np.float32)
    out_scale = 40.0
    state = new_state()
    put(state, ADDR["a"], a)
    put(state, ADDR["b"], w)
    fp = issue(vec(("rmsnorm", "mul", "none", "none"), rows=rows, cols=cols, b_mode="row", group=group, eps=eps,
                   out_type="i8", out_scale=out_scale), state)
    got = get(state, ADDR["dst"], rows, cols, np.int8)
    eps32 = F(eps)
    for r in range(rows):
        for g in range(cols // group):
            ss = F(0)
            for c in range(g * group, (g + 1) * group):
                ss = F(ss + F(a[r, c] * a[r, c]))
            inv = F(F(1) / np.sqrt(F(F(ss / F(group)) + eps32)))
            for c in range(g * group, (g + 1) * group):
                assert got[r, c] == quant1(F(F(F(a[r, c] * inv) * w[c]) * F(out_scale)), -128, 127)
    a64 = a.astype(np.float64).reshape(rows, cols // group, group)
    ref = (a64 / np.sqrt((a64**2).mean(-1, keepdims=True) + eps)).reshape(rows, cols) * w * out_scale
    assert np.abs(got - np.clip(ref, -128, 127)).max() <= 0.5 + 1e-4
    assert fp.occupancy == 2 * math.ceil(rows * cols / TARGET.vec_lanes) and fp.latency == TARGET.vec_latency


def test_softplus_and_add_chain():
    a = np.array([[-30.0, -1.0, 0.0, 0.5, 19.0, 20.0, 20.5, 1e20]], dtype=np.float32)
    b = np.full((1, 8), 0.25, np.float32)
    state = new_state()
    put(state, ADDR["a"], a)
    put(state, ADDR["b"], b)
    issue(vec(("softplus", "add", "none", "softplus"), rows=1, cols=8, b_mode="full"), state)
    got = get(state, ADDR["dst"], 1, 8, np.float32)

    def sp(v):
        return F(vr.softplus(float(v)))

    assert got[0].tolist() == [sp(F(sp(v) + F(0.25))) for v in a[0]]
    assert np.allclose(got[0, :6], np.log1p(np.exp(np.log1p(np.exp(a[0, :6].astype(np.float64))) + 0.25)), rtol=3e-6)


def test_in_place_dst_over_a():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    b = np.full((3, 4), 1.5, np.float32)
    state = new_state()
    put(state, ADDR["a"], a)
    put(state, ADDR["b"], b)
    issue(vec(("add", "none", "none", "none"), rows=3, cols=4, b_mode="full", dst=ADDR["a"]), state)
    assert get(state, ADDR["a"], 3, 4, np.float32).tolist() == (a + 1.5).tolist()
    with pytest.raises(SimulationError, match=r"^vec: field dst: the written buf bytes .* overlap operand a"):
        issue(vec(("add", "none", "none", "none"), rows=3, cols=4, b_mode="full", dst=ADDR["a"] + 4), state)


def _expected_buffer(before, addr, ld, block, c0=0):
    """`before` with `block` [rows, cols] written at column c0 of the row-major matrix at byte addr, pitch ld."""
    out = before.copy()
    size = block.itemsize
    for r, row in enumerate(block):
        start = addr + (r * ld + c0) * size
        out[start:start + row.nbytes] = np.ascontiguousarray(row).view(np.uint8)
    return out


def test_pitched_column_slices_match_numpy():
    """a, b (full) and dst are column slices of wider matrices: an independent numpy reference, bytes around kept."""
    rng = np.random.default_rng(5)
    rows, cols, group, eps, out_scale = 5, 12, 4, 1e-5, 20.0
    (a_ld, a_c0), (b_ld, b_c0), (dst_ld, dst_c0) = (40, 7), (19, 3), (33, 20)
    a_full = rng.integers(-2000, 2000, (rows, a_ld)).astype(np.int16)
    b_full = rng.standard_normal((rows, b_ld)).astype(np.float32)
    state = new_state()
    state.buf[:] = rng.integers(0, 256, state.buf.size, dtype=np.uint8)  # every byte not written must survive
    put(state, ADDR["a"], a_full, a_ld)
    put(state, ADDR["b"], b_full, b_ld)
    before = state.buf.copy()
    instr = vec(("add", "rmsnorm", "none", "none"), rows=rows, cols=cols, a=ADDR["a"] + 2 * a_c0, a_ld=a_ld,
                a_type="i16", a_exp=-6, b=ADDR["b"] + 4 * b_c0, b_ld=b_ld, b_mode="full", dst=ADDR["dst"] + dst_c0,
                dst_ld=dst_ld, group=group, eps=eps, out_type="i8", out_scale=out_scale)
    fp = issue(instr, state)

    a = a_full[:, a_c0:a_c0 + cols]
    b = b_full[:, b_c0:b_c0 + cols]
    x = (a.astype(np.float32) * F(2.0**-6)) + b  # exact scaling, one binary32 add
    xg = x.reshape(rows, cols // group, group)
    ss = np.cumsum(xg * xg, axis=-1, dtype=np.float32)[..., -1:]  # left-to-right binary32 sum of rounded squares
    r = F(1) / np.sqrt((ss / F(group)) + F(eps))
    y = (xg * r).reshape(rows, cols) * F(out_scale)
    ref = np.clip(np.rint(y), -128, 127).astype(np.int8)
    assert get(state, ADDR["dst"] + dst_c0, rows, cols, np.int8, dst_ld).tolist() == ref.tolist()
    assert np.array_equal(state.buf, _expected_buffer(before, ADDR["dst"], dst_ld, ref, dst_c0))
    a0, b0, d0 = ADDR["a"] + 2 * a_c0, ADDR["b"] + 4 * b_c0, ADDR["dst"] + dst_c0
    assert set(fp.reads) == {Range("buf", a0, a0 + 2 * ((rows - 1) * a_ld + cols)),
                             Range("buf", b0, b0 + 4 * ((rows - 1) * b_ld + cols))}
    assert fp.writes == (Range("buf", d0, d0 + (rows - 1) * dst_ld + cols),)


@pytest.mark.parametrize("seed", range(6))
def test_pitched_op_equals_the_packed_op(seed):
    """Any chain on pitched operands gives, bit for bit, what it gives on the same values packed."""
    rng = np.random.default_rng(100 + seed)
    rows, cols = int(rng.integers(1, 6)), int(rng.integers(1, 20))
    types = ("i8", "i16", "i32", "f32")
    a_type, b_type, out_type = (str(rng.choice(types)) for _ in range(3))
    b_mode = str(rng.choice(("none", "full", "row")))
    usable = [m for m in ("silu", "softplus", "rmsnorm") + (("add", "mul", "gate") if b_mode != "none" else ())]
    ops = tuple(str(rng.choice(usable + ["none"])) for _ in range(4))
    group = int(rng.choice([g for g in range(1, cols + 1) if cols % g == 0]))
    pitches = {f: cols + int(rng.integers(0, 9)) for f in ("a_ld", "b_ld", "dst_ld")}

    def values(dtype, shape):
        if dtype == "f32":
            return (rng.standard_normal(shape) * 3).astype(np.float32)
        info = np.iinfo(NP[dtype])
        return rng.integers(info.min, info.max, shape, endpoint=True).astype(NP[dtype])

    a, b = values(a_type, (rows, cols)), values(b_type, (rows if b_mode == "full" else 1, cols))
    common = dict(rows=rows, cols=cols, a_type=a_type, a_exp=-3, b_type=b_type, b_exp=-2, b_mode=b_mode, group=group,
                  eps=1e-5, out_type=out_type, out_scale=7.0)
    results = []
    for ld in (None, pitches):
        state = new_state()
        put(state, ADDR["a"], a, ld and ld["a_ld"])
        put(state, ADDR["b"], b, ld and b_mode == "full" and ld["b_ld"] or None)
        issue(vec(ops, **common, **(ld or {})), state)
        results.append(get(state, ADDR["dst"], rows, cols, NP[out_type], ld and ld["dst_ld"]))
    assert results[0].tobytes() == results[1].tobytes(), (ops, a_type, b_type, b_mode, out_type, pitches)


def test_in_place_on_a_column_slice():
    """dst = a with the same pitch updates a column slice in place; a different pitch over the same bytes is an
    error."""
    rows, ld, c0, cols = 3, 10, 4, 5
    m = np.arange(rows * ld, dtype=np.float32).reshape(rows, ld)
    state = new_state()
    put(state, ADDR["a"], m, ld)
    base = ADDR["a"] + 4 * c0
    before = state.buf.copy()
    issue(vec(("silu",) + ("none",) * 3, rows=rows, cols=cols, a=base, a_ld=ld, dst=base, dst_ld=ld), state)
    want = m.copy()
    want[:, c0:c0 + cols] = np.vectorize(silu1, otypes=[F])(m[:, c0:c0 + cols])
    assert get(state, ADDR["a"], rows, ld, np.float32, ld).tolist() == want.tolist()
    assert np.array_equal(state.buf, _expected_buffer(before, ADDR["a"], ld, want))
    with pytest.raises(SimulationError, match=r"^vec: field dst: the written buf bytes .* overlap operand a"):
        issue(vec(rows=rows, cols=cols, a=base, a_ld=ld, dst=base, dst_ld=ld + 1), state)
    # One row: the pitches do not matter, and a broadcast b (no pitch) may be overwritten in place too.
    state = new_state()
    put(state, ADDR["b"], np.array([1.0, 2.0, 3.0], np.float32))
    put(state, ADDR["a"], np.array([10.0, 20.0, 30.0], np.float32))
    issue(vec(("add",) + ("none",) * 3, cols=3, a_ld=50, b_mode="row", dst=ADDR["b"], dst_ld=7), state)
    assert get(state, ADDR["b"], 1, 3, np.float32).tolist() == [[11.0, 22.0, 33.0]]


def test_argmax_first_of_ties_through_the_engine():
    a = np.array([[1, 7, 7, 2], [0, 0, 0, 0], [-3, -1, -2, -1], [5, 4, 3, 6]], dtype=np.float32)
    state = new_state()
    put(state, ADDR["a"], a)
    put(state, ADDR["dst"], np.full(4, -1, np.int32))
    stats = simulate([Bundle((Instruction("vec.argmax", {"dst": ADDR["dst"], "a": ADDR["a"], "rows": 4, "cols": 4}),)),
                      Bundle((Instruction("ctl.halt", {}),))], state, TARGET)
    assert get(state, ADDR["dst"], 1, 4, np.int32)[0].tolist() == [1, 0, 1, 3]
    assert stats.cycles == math.ceil(16 / TARGET.vec_lanes) + TARGET.vec_latency  # issued at cycle 0


def test_vec_cost_without_rmsnorm():
    fp = SEMANTICS["vec"].footprint(vec(("silu", "none", "none", "none"), rows=5, cols=300), new_state(), TARGET)
    assert fp.occupancy == math.ceil(1500 / TARGET.vec_lanes) and fp.macs == 0


def test_vec_validation_names_the_field():
    state = new_state()

    def argmax(**kw):
        return Instruction("vec.argmax", {"dst": ADDR["dst"], "a": ADDR["a"], "rows": 1, "cols": 1, **kw})

    cases = [
        (vec(("silu", "gate", "none", "none")), r"^vec: field b_mode is none but op1 = gate needs b"),
        (vec(("none", "none", "none", "add")), r"^vec: field b_mode is none but op3 = add needs b"),
        (vec(("rmsnorm",) + ("none",) * 3, cols=10, group=4), r"^vec: field group = 4 does not divide cols = 10"),
        (vec(("rmsnorm",) + ("none",) * 3, cols=10, group=0), r"^vec: field group must be at least 1"),
        (vec(rows=0), r"^vec: field rows must be at least 1"),
        (vec(a=ADDR["a"] + 2), r"^vec: field a = .* is not aligned to 4 bytes"),
        (vec(a_type="i16", a=ADDR["a"] + 2, dst=ADDR["dst"] + 1, out_type="i8"), None),
        (vec(b_mode="row", b=ADDR["b"] + 1, b_type="i16"), r"^vec: field b = .* is not aligned to 2 bytes"),
        (vec(dst=(1 << 18) - 4, cols=2), r"^vec: field dst: buf bytes"),
        (vec(rows=2, cols=4, dst_ld=60000), r"^vec: field dst: buf bytes"),  # the pitch reaches past the buffer
        (vec(cols=4, a_ld=3), r"^vec: field a_ld = 3 is less than cols = 4"),
        (vec(cols=4, dst_ld=0), r"^vec: field dst_ld = 0 is less than cols = 4"),
        (vec(("add",) + ("none",) * 3, cols=4, b_mode="full", b_ld=2), r"^vec: field b_ld = 2 is less than cols = 4"),
        (vec(("add",) + ("none",) * 3, cols=4, b_mode="row", b_ld=0), None),  # b_ld ignored: b is one row
        (vec(cols=4, b_mode="none", b_ld=0), None),
        (argmax(dst=ADDR["dst"] + 1), r"^vec.argmax: field dst = .* is not aligned to 4 bytes"),
        (argmax(cols=0), r"^vec.argmax: field cols must be at least 1"),
        (argmax(dst=ADDR["a"]), r"^vec.argmax: field dst: the written buf bytes .* overlap operand a"),
    ]
    for instr, pattern in cases:
        if pattern is None:  # a valid op
            SEMANTICS[instr.op].footprint(instr, state, TARGET)
            continue
        with pytest.raises(SimulationError, match=pattern):
            SEMANTICS[instr.op].footprint(instr, state, TARGET)


def test_binary32_overflow_is_infinity_and_saturates():
    a = np.array([[3e38, -3e38, 1.0]], dtype=np.float32)
    state = new_state()
    put(state, ADDR["a"], a)
    put(state, ADDR["b"], np.array([10.0, 10.0, 10.0], np.float32))
    issue(vec(("mul", "none", "none", "none"), cols=3, b_mode="row", out_type="f32", dst=ADDR["dst"]), state)
    assert get(state, ADDR["dst"], 1, 3, np.float32)[0].tolist() == [np.inf, -np.inf, 10.0]
    issue(vec(("mul", "none", "none", "none"), cols=3, b_mode="row", out_type="i8", out_scale=1e30), state)
    assert get(state, ADDR["dst"], 1, 3, np.int8)[0].tolist() == [127, -128, 127]


def test_non_finite_values_are_defined_and_raise_no_warnings():
    """IEEE binary32 without traps: overflow -> inf, inf - inf -> NaN, NaN propagates; quantization: NaN -> 0."""
    a = np.array([[np.nan, np.inf, -np.inf, 3e38, -3e38, 1.5, -np.inf, 2.0]], dtype=np.float32)
    rows, cols = a.shape
    state = new_state()
    put(state, ADDR["a"], a)
    put(state, ADDR["b"], np.full(cols, 10, dtype=np.int8))
    issue(vec(("mul", "none", "none", "none"), rows=rows, cols=cols, b_type="i8", b_mode="row", out_type="i8",
              out_scale=1.0), state)
    # x * 10: NaN, inf, -inf, inf (overflow), -inf, 15, -inf, 20
    assert get(state, ADDR["dst"], rows, cols, np.int8).tolist() == [[0, 127, -128, 127, -128, 15, -128, 20]]

    state = new_state()
    put(state, ADDR["a"], a)
    issue(vec(("silu", "softplus", "none", "none"), rows=rows, cols=cols), state)
    got = get(state, ADDR["dst"], rows, cols, np.float32)
    for x, y in zip(a[0], got[0]):
        xd = float(x)
        ref = vr.softplus(vr.silu(xd))  # silu(-inf) = -0, softplus(-0) = ln 2
        assert (math.isnan(ref) and math.isnan(y)) or F(ref) == y, (x, y, ref)

    state = new_state()  # rmsnorm of a group with an inf: inf / inf = NaN in that group only
    put(state, ADDR["a"], np.array([[1.0, np.inf, 2.0, 2.0]], dtype=np.float32))
    issue(vec(("rmsnorm", "none", "none", "none"), rows=1, cols=4, group=2, eps=1e-6), state)
    got = get(state, ADDR["dst"], 1, 4, np.float32)
    assert got[0, 0] == 0.0 and np.isnan(got[0, 1]) and got[0, 2] == got[0,
                                                                         3] == F(2.0) * F(1.0 / math.sqrt(4.0 + 1e-6))


def test_argmax_with_nan_and_infinities():
    a = np.array([[1.0, np.nan, 5.0, np.nan], [-np.inf, -np.inf, -1e30, 0.0], [np.inf, 1.0, np.inf, 2.0]], np.float32)
    state = new_state()
    put(state, ADDR["a"], a)
    issue(Instruction("vec.argmax", dict(dst=ADDR["dst"], a=ADDR["a"], rows=3, cols=4)), state)
    assert get(state, ADDR["dst"], 1, 3, np.int32)[0].tolist() == [1, 3, 0]
