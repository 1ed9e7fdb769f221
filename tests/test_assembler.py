"""Assembly syntax: parsing, errors with file:line, and disassemble→assemble identity (isa.assembler,
isa.disassembler)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastmamba.isa.instructions as instructions
from fastmamba.isa.assembler import AsmError, assemble, assemble_file, parse_bundle, parse_instruction
from fastmamba.isa.container import TENSOR_DTYPES, TENSOR_ROLES, Binary, Program, TensorDesc, dump_fmb
from fastmamba.isa.disassembler import disassemble, format_bundle, format_f32, format_instruction
from fastmamba.isa.errors import InputError
from fastmamba.isa.instructions import SLOTS, Bundle, FieldSpec, Instruction, OpSpec

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# --- strategies drawn from whatever table is live ---------------------------
def field_values(spec: FieldSpec):
    if spec.kind == "f32":
        return st.floats(width=32, allow_nan=False, allow_infinity=False)
    if spec.kind == "enum":
        return st.integers(0, len(spec.values) - 1)
    return st.one_of(st.integers(spec.min, spec.max), st.sampled_from((spec.min, spec.max)))


@st.composite
def bundles(draw):
    ops = []
    for slot in SLOTS:
        specs = [o for o in instructions.OPS.values() if o.slot == slot]
        if specs and draw(st.booleans()):
            spec = draw(st.sampled_from(specs))
            ops.append(Instruction(spec.name, {f.name: draw(field_values(f)) for f in spec.fields}))
    return Bundle(tuple(ops), draw(st.one_of(st.just(0), st.integers(0, (1 << instructions.BUNDLE_DELAY_BITS) - 1))))


names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,12}", fullmatch=True)


@st.composite
def binaries(draw):
    image = draw(st.binary(max_size=300))
    programs = []
    for name in draw(st.lists(names, max_size=3, unique=True)):
        ddr_size = len(image) + draw(st.integers(0, 4096))
        tensors = []
        for tname in draw(st.lists(names, max_size=3, unique=True)):
            dtype = draw(st.sampled_from(list(TENSOR_DTYPES)))
            shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
            t = TensorDesc(tname, draw(st.sampled_from(TENSOR_ROLES)), 0, shape, dtype,
                           draw(st.floats(width=32, allow_nan=False, allow_infinity=False)),
                           draw(st.integers(-(1 << 31), (1 << 31) - 1)))
            addr = draw(st.integers(0, ddr_size - t.nbytes)) if t.nbytes <= ddr_size else None
            if addr is not None:
                tensors.append(TensorDesc(t.name, t.role, addr, t.shape, t.dtype, t.scale, t.exp))
        code = draw(st.lists(bundles(), max_size=6))
        debug = draw(st.dictionaries(st.integers(0, max(len(code) - 1, 0)), st.text(max_size=20), max_size=len(code)))
        programs.append(Program(name, ddr_size, tuple(code), tuple(tensors), debug))
    return Binary(tuple(programs), image, draw(st.binary(min_size=32, max_size=32)))


# --- round trips --------------------------------------------------------------
@SETTINGS
@given(binaries())
def test_disassemble_assemble_is_byte_identical(binary):
    blob = dump_fmb(binary)
    text = disassemble(binary)
    assert dump_fmb(assemble(text)) == blob
    assert dump_fmb(assemble(disassemble(binary, numbered=False))) == blob


@SETTINGS
@given(bundles())
def test_bundle_text_round_trip(bundle):
    assert parse_bundle(format_bundle(bundle)) == bundle


SYNTHETIC = instructions._table(
    OpSpec("t.big", 0x10, "LD", (FieldSpec("a", 64, "u"), FieldSpec("b", 64, "s"),
                                 FieldSpec("m", 2, "enum", values=("p", "q", "r"))), "x"),
    OpSpec("t.f", 0x30, "LIN", (FieldSpec("k", 32, "f32"), FieldSpec("z", 1, "s")), "x"),
    OpSpec("t.none", 0x70, "CTL", (), "x"),
)


@pytest.fixture
def synthetic(monkeypatch):
    monkeypatch.setattr(instructions, "OPS", SYNTHETIC)
    monkeypatch.setattr(instructions, "BY_OPCODE", {s.opcode: s for s in SYNTHETIC.values()})


@SETTINGS
@given(data=st.data())
def test_synthetic_table_round_trip(synthetic, data):
    binary = data.draw(binaries())
    assert dump_fmb(assemble(disassemble(binary))) == dump_fmb(binary)


def test_format_instruction(synthetic):
    instr = Instruction("t.big", {"a": 2**64 - 1, "b": -5, "m": "r"})
    assert format_instruction(instr) == f"t.big a={2**64 - 1}, b=-5, m=r"
    assert format_instruction(Instruction("t.none", {})) == "t.none"
    assert parse_instruction("t.big  m=q,b=0x10 , a=0") == Instruction("t.big", {"a": 0, "b": 16, "m": "q"})


@pytest.mark.parametrize("value, text", [(0.1, "0.1"), (1.0, "1.0"), (-0.0, "-0.0"), (3.0e38, "3e+38"), (1e-45,
                                                                                                         "1e-45"),
                                         (1 / 3, "0.33333334"),
                                         (3.4028234663852886e38, "3.4028235e+38")])
def test_format_f32_shortest(value, text):
    f32 = struct.unpack("<f", struct.pack("<f", value))[0]
    assert format_f32(f32) == text
    assert struct.pack("<f", float(text)) == struct.pack("<f", f32)


# --- files and data -------------------------------------------------------------
def test_data_from_npy_values_and_hex(tmp_path):
    np.save(tmp_path / "w.npy", np.arange(6, dtype=np.int16).reshape(2, 3))
    np.save(tmp_path / "b.npy", np.array([1.5], dtype=">f4"))
    src = tmp_path / "p.s"
    src.write_text(
        ".data addr=0x0 file=w.npy dtype=i16\n"
        '.data addr=0x10 file="b.npy"\n'
        ".data addr=0x20 dtype=f32 values=[0.5,\n  -2]\n"
        ".data addr=0x28 hex=abcd\n"
        ".image_size 0x40\n"
        ".program main ddr_size=0x40\nctl.halt\n")
    b = assemble_file(src)
    assert b.const_image[:12] == np.arange(6, dtype="<i2").tobytes()
    assert b.const_image[16:20] == struct.pack("<f", 1.5)
    assert b.const_image[32:40] == struct.pack("<ff", 0.5, -2.0)
    assert b.const_image[40:42] == b"\xab\xcd" and len(b.const_image) == 64


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        assemble_file(tmp_path / "none.s")


def test_target_digest_checked():
    class T:
        ddr_bytes = 1 << 20
        buffer_bytes = 1 << 20

        @staticmethod
        def digest():
            return b"\x01" * 32

    assert assemble(".program m ddr_size=8\nctl.halt\n", target=T).target_digest == b"\x01" * 32
    with pytest.raises(AsmError, match="differs from the target's"):
        assemble(f".target_digest {'00' * 32}\n", target=T)
    with pytest.raises(AsmError, match=r"x.s:1: program m: ddr_size 2097152 exceeds the target's DDR"):
        assemble(".program m ddr_size=0x200000\n", "x.s", target=T)


# --- errors name file and line ---------------------------------------------------
@pytest.mark.parametrize("text, message", [
    ("ctl.halt", r"p.s:1: a bundle outside a program"),
    (".program m ddr_size=8\n\n# c\nctl.wait sem=1", r"p.s:4: ctl.wait: missing field\(s\) count"),
    (".program m ddr_size=8\nctl.wait sem=1, count=2, sem=3", r"p.s:2: ctl.wait: sem given twice"),
    (".program m ddr_size=8\nctl.wait sem=1, cnt=2", r"p.s:2: ctl.wait: unknown field 'cnt'"),
    (".program m ddr_size=8\nctl.wait sem=x, count=2", r"p.s:2: ctl.wait field sem: expected an integer, got 'x'"),
    (".program m ddr_size=8\nctl.wait sem=256, count=2", r"p.s:2: ctl.wait: field sem = 256 outside \[0, 255\]"),
    (".program m ddr_size=8\nfoo.bar", r"p.s:2: unknown operation 'foo.bar'"),
    (".program m ddr_size=8\nctl.halt ; dly=3", r"p.s:2: expected '; delay=N'"),
    (".program m ddr_size=8\nctl.halt ; delay=16777216", r"p.s:2: bundle delay 16777216 outside"),
    (".program m ddr_size=8\nctl.halt | ctl.halt", r"p.s:2: bundle issues more than one operation in slot\(s\) CTL"),
    (".program m ddr_size=8\n.program m ddr_size=8", r"p.s:2: .program m: a program of that name exists already"),
    (".program m\n", r"p.s:1: .program m: missing ddr_size="),
    (".program 9m ddr_size=8\n", r"p.s:1: .program: expected a program name"),
    (".program m ddr_size=8\n.input x ddr=0 shape=(16,) dtype=i8",
     r"p.s:1: program m: tensor x at DDR 0x0 \(16 bytes\) lies outside"),
    (".program m ddr_size=8\n.input x ddr=0 shape=(1,) dtype=bf16", r"p.s:2: .input x: dtype 'bf16'"),
    (".program m ddr_size=8\n.input x ddr=0 shape=1 dtype=i8", r"p.s:2: .input x: shape must be written"),
    (".program m ddr_size=8\n.input x shape=(1,) dtype=i8", r"p.s:2: .input x: missing ddr="),
    (".program m ddr_size=8\n.input x ddr=0 shape=(1,) dtype=i8\n.state x ddr=0 shape=(1,) dtype=i8",
     r"p.s:3: .state x: program m has a tensor of that name"),
    (".program m ddr_size=8\n.loc \"a\"\n.loc \"b\"", r"p.s:3: .loc: the previous .loc has no bundle yet"),
    (".program m ddr_size=8\n.loc \"a\"\n", r"p.s: program m ends after a .loc without a bundle"),
    (".program m ddr_size=8\n.loc a", r"p.s:2: .loc: expected one \"double-quoted string\""),
    (".data addr=0 dtype=i8 values=[1, 200]", r"p.s:1: .data value 1 = 200 does not fit i8"),
    (".data addr=0 values=[1]", r"p.s:1: .data values=\[...\] needs dtype="),
    (".data addr=0 hex=abc", r"p.s:1: .data: hex= is not an even number of hex digits"),
    (".data addr=0 hex=ab file=x.npy", r"p.s:1: .data needs exactly one of"),
    (".data addr=0 file=missing.npy", r"p.s:1: .data: cannot read"),
    (".data addr=0 hex=abcd\n.data addr=1 hex=ab", r"p.s:2: .data at 0x1 overlaps the block from line 1"),
    (".data addr=0 hex=abcd\n.image_size 1", r"p.s: .image_size 1 is smaller than the end of the .data blocks"),
    (".image_size 0x1000000000000", r"p.s: constant image of .* bytes exceeds"),
    (".data addr=0 dtype=f32 values=[1e39]", r"p.s:1: .data value 0: 1e39 overflows float32"),
    (".data addr=0 dtype=f32 values=[1, 1e-50]", r"p.s:1: .data value 1: 1e-50 underflows float32 \(rounds to 0\)"),
    (".program m ddr_size=64\n.input x ddr=0 shape=(4,) dtype=f32 scale=-1e-46",
     r"p.s:2: .input x scale: -1e-46 underflows float32"),
    (".data addr=0 dtype=f32 values=[1,\n2", r"p.s:1: .data"),
    (".target_digest 00", r"p.s:1: .target_digest: expected 32 bytes in hex"),
    (".frob", r"p.s:1: unknown directive '.frob'"),
])
def test_errors(text, message, tmp_path):
    with pytest.raises(AsmError, match=message) as info:
        assemble(text, "p.s", base_dir=tmp_path)
    assert "\n" not in str(info.value)
