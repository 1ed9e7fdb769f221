"""Encoder/decoder round trips and rejection of malformed streams (isa.encoding)."""

from __future__ import annotations

import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastmamba.isa.instructions as instructions
from fastmamba.isa.encoding import (
    DELAY_SHIFT,
    DecodeError,
    decode_bundles,
    decode_instruction,
    encode_bundles,
    encode_instruction,
    layouts,
)
from fastmamba.isa.instructions import SLOTS, Bundle, FieldSpec, Instruction, OpSpec

SETTINGS = settings(max_examples=200, deadline=None)


def _synthetic_table():
    """Ops in every slot with every field kind, 1..64-bit widths, one-word and multi-word encodings."""
    f = FieldSpec
    specs = [
        OpSpec("t.ld", 0x10, "LD", (f("a", 64, "u"), f("b", 64, "s"), f("c", 1, "u")), "three words"),
        OpSpec("t.st", 0x20, "ST", (f("x", 56, "u"),), "exactly one word"),
        OpSpec("t.st2", 0x21, "ST", (f("x", 57, "s"),), "one bit over a word"),
        OpSpec("t.lin", 0x30, "LIN", (f("k", 32, "f32"), f("m", 2, "enum", values=("p", "q", "r")), f("z", 7, "s")),
               "mixed"),
        OpSpec("t.conv", 0x40, "CONV", (), "no fields"),
        OpSpec("t.ssm", 0x50, "SSM", (f("e", 3, "enum", values=tuple("abcdefgh")), f("g", 32, "f32"),
                                      f("h", 32, "f32")), "two floats"),
        OpSpec("t.vec", 0x60, "VEC", tuple(f(f"v{i}", 9, "s") for i in range(12)), "many small fields"),
        OpSpec("t.ctl", 0x70, "CTL", (f("w", 1, "s"),), "one signed bit"),
    ]
    ops = instructions._table(*specs)
    return ops


SYNTHETIC = _synthetic_table()


@pytest.fixture
def synthetic(monkeypatch):
    monkeypatch.setattr(instructions, "OPS", SYNTHETIC)
    monkeypatch.setattr(instructions, "BY_OPCODE", {s.opcode: s for s in SYNTHETIC.values()})
    return SYNTHETIC


def field_values(spec: FieldSpec):
    if spec.kind == "f32":
        return st.floats(width=32, allow_nan=False, allow_infinity=False)
    if spec.kind == "enum":
        return st.one_of(st.integers(0, len(spec.values) - 1), st.sampled_from(spec.values))
    return st.one_of(st.integers(spec.min, spec.max), st.sampled_from((spec.min, spec.max)))


def instructions_of(ops):
    return st.one_of(*[
        st.fixed_dictionaries({f.name: field_values(f) for f in spec.fields}).map(lambda a, n=spec.name: Instruction(n,
                                                                                                                     a))
        for spec in ops.values()
    ])


def bundles_of(ops):
    by_slot = {s: [o for o in ops.values() if o.slot == s] for s in SLOTS}

    @st.composite
    def draw(draw):
        chosen = []
        for slot in SLOTS:
            if by_slot[slot] and draw(st.booleans()):
                spec = draw(st.sampled_from(by_slot[slot]))
                chosen.append(draw(instructions_of({spec.name: spec})))
        delay = draw(st.one_of(st.integers(0, (1 << instructions.BUNDLE_DELAY_BITS) - 1), st.just(0)))
        return Bundle(tuple(chosen), delay)

    return draw()


# --- round trips ------------------------------------------------------------
@SETTINGS
@given(st.data())
def test_instruction_round_trip_real_table(data):
    instr = data.draw(instructions_of(instructions.OPS))
    blob = encode_instruction(instr)
    assert len(blob) == instr.spec.words * 8
    back, end = decode_instruction(blob)
    assert back == instr and end == len(blob)


@SETTINGS
@given(st.lists(bundles_of(instructions.OPS), max_size=8))
def test_bundles_round_trip_real_table(bundles):
    assert decode_bundles(encode_bundles(bundles)) == bundles


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_bundles_round_trip_synthetic_table(synthetic, data):
    bundles = data.draw(st.lists(bundles_of(synthetic), max_size=6))
    blob = encode_bundles(bundles)
    back = decode_bundles(blob)
    assert back == bundles
    for b, c in zip(back, bundles):
        assert [dict(o.args) for o in b.ops] == [dict(o.args) for o in c.ops]
    assert encode_bundles(back) == blob


def test_layout_lengths(synthetic):
    lay = layouts().by_name
    assert lay["t.st"].nbytes == 8 and lay["t.st2"].nbytes == 16
    assert lay["t.ld"].nbytes == 24 and lay["t.conv"].nbytes == 8


def test_exact_bit_layout(synthetic):
    instr = Instruction("t.lin", {"k": 1.0, "m": "r", "z": -1})
    word = int.from_bytes(encode_instruction(instr), "little")
    f32_one = struct.unpack("<I", struct.pack("<f", 1.0))[0]
    assert word == 0x30 | f32_one << 8 | 2 << 40 | 0x7F << 42


def test_bundle_header_layout():
    b = Bundle((Instruction("ctl.halt", {}),), delay=5)
    blob = encode_bundles([b])
    header = int.from_bytes(blob[:8], "little")
    assert header == (1 << SLOTS.index("CTL")) | 5 << DELAY_SHIFT
    assert blob[8] == instructions.OPS["ctl.halt"].opcode and len(blob) == 16


def test_empty_bundle_is_a_header_alone():
    assert encode_bundles([Bundle((), 7)]) == (7 << DELAY_SHIFT).to_bytes(8, "little")
    assert decode_bundles((7 << DELAY_SHIFT).to_bytes(8, "little")) == [Bundle((), 7)]


# --- rejection --------------------------------------------------------------
def _halt_stream():
    return encode_bundles([Bundle((Instruction("ctl.wait", {"sem": 1, "count": 2}),)), Bundle((Instruction("ctl.halt",
                                                                                                           {}),))])


def test_rejects_reserved_header_bits():
    blob = bytearray(_halt_stream())
    blob[16 + 7] = 0x80
    with pytest.raises(DecodeError, match=r"bundle 1 at byte offset 16: nonzero reserved bits"):
        decode_bundles(bytes(blob))


def test_rejects_unknown_opcode():
    blob = bytearray(_halt_stream())
    blob[24] = 0xFF
    with pytest.raises(DecodeError,
                       match=r"bundle 1 at byte offset 16, slot CTL at byte offset 24: unknown opcode 0xff"):
        decode_bundles(bytes(blob))


def test_rejects_slot_mismatch(synthetic):
    blob = bytearray(encode_bundles([Bundle((Instruction("t.ctl", {"w": 0}),))]))
    blob[0] = 1 << SLOTS.index("LD")
    with pytest.raises(DecodeError, match=r"bundle 0 .*t.ctl belongs to slot CTL"):
        decode_bundles(bytes(blob))


def test_rejects_nonzero_padding():
    blob = bytearray(_halt_stream())
    blob[-1] = 1
    with pytest.raises(DecodeError, match=r"bundle 1 .*nonzero padding"):
        decode_bundles(bytes(blob))


@pytest.mark.parametrize("cut", range(1, 32))
def test_rejects_every_truncation(cut):
    blob = _halt_stream()
    if cut % 16 == 0:
        assert len(decode_bundles(blob[:cut])) == cut // 16
    else:
        with pytest.raises(DecodeError, match=r"bundle \d+ at byte offset \d+"):
            decode_bundles(blob[:cut])


def test_rejects_bad_enum_and_float(synthetic):
    blob = bytearray(encode_bundles([Bundle((Instruction("t.lin", {"k": 0.0, "m": "p", "z": 0}),))]))
    word = int.from_bytes(blob[8:16], "little") | 3 << 40
    with pytest.raises(DecodeError, match=r"field m has no value with code 3"):
        decode_bundles(bytes(blob[:8]) + word.to_bytes(8, "little"))
    word = int.from_bytes(blob[8:16], "little") | 0x7F800000 << 8
    with pytest.raises(DecodeError, match=r"field k is not a finite float32"):
        decode_bundles(bytes(blob[:8]) + word.to_bytes(8, "little"))


def test_missing_op_after_mask():
    with pytest.raises(DecodeError, match="stream ends where an operation should start"):
        decode_bundles((1 << SLOTS.index("CTL")).to_bytes(8, "little"))


@SETTINGS
@given(st.binary(max_size=200))
def test_random_bytes_decode_or_raise(blob):
    try:
        bundles = decode_bundles(blob)
    except DecodeError:
        return
    assert encode_bundles(bundles) == blob


def test_decoding_is_fast():
    bundles = [Bundle((Instruction("ctl.wait", {"sem": i % 256, "count": i % 65536}),), i % 7) for i in range(100_000)]
    blob = encode_bundles(bundles)
    t0 = time.process_time()
    back = decode_bundles(blob)
    elapsed = time.process_time() - t0
    assert back == bundles
    assert elapsed < 2.0, f"decoding 1e5 bundles took {elapsed:.2f}s of CPU time"
