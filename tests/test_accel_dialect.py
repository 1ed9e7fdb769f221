"""The `accel` dialect: generated ops for the whole table, conversions, verification, print/parse round trips."""

from __future__ import annotations

import struct
from io import StringIO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from xdsl.context import Context
from xdsl.dialects.builtin import Builtin, IntegerAttr, ModuleOp, StringAttr, i64
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.utils.exceptions import VerifyException

from fastmamba.compiler.dialects.accel import (
    INSTRUCTION_OPS, Accel, BundleOp, ProgramOp, instruction_of, op_of, tensor_attr, tensor_of,
)
from fastmamba.isa.container import TensorDesc
from fastmamba.isa.instructions import OPS, Instruction, InstructionError


def _print(op) -> str:
    out = StringIO()
    Printer(stream=out).print_op(op)
    return out.getvalue()


def _parse(text: str) -> ModuleOp:
    ctx = Context()
    ctx.load_dialect(Builtin)
    ctx.load_dialect(Accel)
    module = Parser(ctx, text).parse_module()
    module.verify()
    return module


@st.composite
def any_instruction(draw) -> Instruction:
    """Any instruction the table accepts: every field anywhere in its range (f32 fields any finite binary32)."""
    spec = OPS[draw(st.sampled_from(sorted(OPS)))]
    args = {}
    for f in spec.fields:
        if f.kind == "f32":
            args[f.name] = draw(st.floats(width=32, allow_nan=False, allow_infinity=False))
        else:
            args[f.name] = draw(st.integers(f.min, f.max))
    return Instruction(spec.name, args)


def test_one_op_per_table_entry_named_after_the_mnemonic():
    assert set(INSTRUCTION_OPS) == set(OPS)
    assert INSTRUCTION_OPS["ld"].name == "accel.ld"
    assert INSTRUCTION_OPS["ctl.wait"].name == "accel.ctl.wait"
    assert INSTRUCTION_OPS["vec.argmax"].name == "accel.vec.argmax"
    assert all(cls.SPEC is OPS[name] for name, cls in INSTRUCTION_OPS.items())


@settings(max_examples=80, deadline=None)
@given(instr=any_instruction(), debug=st.one_of(st.none(), st.text(st.characters(min_codepoint=32, max_codepoint=126),
                                                                   min_size=1, max_size=20)))
def test_instruction_round_trips_through_the_op_and_its_text(instr, debug):
    op = op_of(instr, debug)
    op.verify()
    assert instruction_of(op) == instr
    assert op.debug_text == (debug or "")
    text = _print(ModuleOp([ProgramOp("p", 0, (), [op])]))
    parsed = _parse(text)
    (back,) = list(next(iter(parsed.ops)).body.block.ops)
    assert instruction_of(back) == instr
    assert back.debug_text == (debug or "")
    assert _print(parsed) == text


def test_program_and_bundles_round_trip():
    ld = Instruction("ld", dict(buf=0x400, ddr=0x400, rows=16, row_bytes=64, ddr_stride=64, buf_stride=64, sem=2))
    wait = Instruction("ctl.wait", dict(sem=2, count=1))
    tensors = [TensorDesc("a", "input", 0, (16, 64), "i8", 0.5, -2), TensorDesc("c", "output", 0x1400, (16, 64), "i32")]
    prog = ProgramOp("main", 0x2400, tensors, [BundleOp([op_of(wait), op_of(ld, "mamba.linear")], delay=7),
                                               BundleOp([op_of(Instruction("ctl.halt", {}))])])
    module = ModuleOp([prog])
    module.verify()
    text = _print(module)
    parsed = _parse(text)
    assert _print(parsed) == text
    (p,) = list(parsed.ops)
    assert p.program_name == "main" and p.ddr_bytes == 0x2400 and p.tensor_descs == tuple(tensors)
    assert p.is_scheduled
    first = next(iter(p.body.block.ops))
    assert first.delay_cycles == 7
    assert [instruction_of(o) for o in first.instruction_ops] == [wait, ld]


def test_tensor_descriptor_round_trip_and_errors():
    t = TensorDesc("x", "state", 64, (2, 3, 4), "f32", 0.25, 3)
    assert tensor_of(tensor_attr(t)) == t
    with pytest.raises(VerifyException, match="role"):
        tensor_of(tensor_attr(TensorDesc("x", "weird", 0, (1,), "f32")))


def test_field_out_of_range_is_rejected():
    ld = op_of(Instruction("ld", dict(buf=0, ddr=0, rows=1, row_bytes=1, ddr_stride=1, buf_stride=1, sem=0)))
    ld.properties["sem"] = IntegerAttr(256, i64)
    with pytest.raises(VerifyException, match="sem = 256 outside"):
        ld.verify()
    vec_args = dict(dst=0, a=0, b=0, rows=1, cols=1, a_ld=1, b_ld=1, dst_ld=1, a_type="f32", a_exp=0, b_type="f32",
                    b_exp=0, b_mode="none", op0="none", op1="none", op2="none", op3="none", group=1, eps=0.0,
                    out_type="f32", out_scale=1.0)
    vec = op_of(Instruction("vec", vec_args))
    vec.properties["op0"] = StringAttr("tanh")
    with pytest.raises(VerifyException, match="op0 must be one of"):
        vec.verify()


def test_bundle_with_two_ops_in_one_slot_is_rejected():
    ld = Instruction("ld", dict(buf=0, ddr=0, rows=1, row_bytes=1, ddr_stride=1, buf_stride=1, sem=0))
    prog = ProgramOp("p", 0, (), [BundleOp([op_of(ld), op_of(ld)])])
    with pytest.raises(VerifyException, match="slot LD"):
        prog.verify()


def test_program_mixing_bundles_and_loose_ops_is_rejected():
    halt = Instruction("ctl.halt", {})
    prog = ProgramOp("p", 0, (), [BundleOp([op_of(halt)]), op_of(halt)])
    with pytest.raises(VerifyException, match="bundles and loose"):
        prog.verify()


def test_instruction_of_rejects_other_ops():
    with pytest.raises(InstructionError):
        instruction_of(ProgramOp("p", 0))


def test_f32_fields_keep_every_bit():
    value = struct.unpack("<f", struct.pack("<I", 0x3DFCD6E9))[0]
    args = dict(dst=0, a=0, b=0, rows=1, cols=1, a_ld=1, b_ld=1, dst_ld=1, a_type="f32", a_exp=0, b_type="f32", b_exp=0,
                b_mode="none", op0="none", op1="none", op2="none", op3="none", group=1, eps=value, out_type="f32",
                out_scale=1e-38)
    instr = Instruction("vec", args)
    parsed = _parse(_print(ModuleOp([ProgramOp("p", 0, (), [op_of(instr)])])))
    assert instruction_of(next(iter(next(iter(parsed.ops)).body.block.ops))) == instr


def test_the_module_target_round_trips_and_is_checked(tmp_path):
    from fastmamba.compiler.dialects.accel import TARGET_ATTR, TargetAttr, module_target, target_attr
    from fastmamba.isa.errors import InputError
    from fastmamba.isa.target import load_target

    module = ModuleOp([])
    with pytest.raises(InputError, match=r"lower-to-accel: the module has no target .*set-target"):
        module_target(module, "lower-to-accel")
    module.attributes[TARGET_ATTR] = target_attr("vc709")
    text = _print(module)
    assert f'#accel.target<"vc709", "{load_target("vc709").digest().hex()}">' in text
    assert _print(_parse(text)) == text and module_target(_parse(text), "p") == load_target("vc709")
    small = tmp_path / "small.json"
    small.write_text('{"buffer_bytes": 65536}')
    module.attributes[TARGET_ATTR] = target_attr(str(small))
    assert module_target(_parse(_print(module)), "p").buffer_bytes == 65536
    small.write_text('{"buffer_bytes": 32768}')  # the file changed after set-target recorded it
    with pytest.raises(InputError, match="other parameters than when set-target recorded it"):
        module_target(module, "plan-memory")
    with pytest.raises(VerifyException, match="64 lowercase hex digits"):
        TargetAttr(StringAttr("vc709"), StringAttr("abc")).verify()


def test_field_properties_are_typed_by_irdl_constraints():
    from xdsl.dialects.builtin import FloatAttr, f64, i32

    ld = op_of(Instruction("ld", dict(buf=0, ddr=0, rows=1, row_bytes=16, ddr_stride=16, buf_stride=16, sem=0)))
    ld.properties["rows"] = IntegerAttr(1, i32)
    with pytest.raises(VerifyException, match="field rows must be an i64 integer"):
        ld.verify()
    vec = op_of(Instruction("vec", dict(dst=0, a=0, b=0, rows=1, cols=1, a_ld=1, b_ld=1, dst_ld=1, a_type="f32",
                                         a_exp=0, b_type="f32", b_exp=0, b_mode="none", op0="none", op1="none",
                                         op2="none", op3="none", group=1, eps=0.0, out_type="f32", out_scale=1.0)))
    vec.verify()
    vec.properties["out_scale"] = FloatAttr(1.0, f64)
    with pytest.raises(VerifyException, match="field out_scale must be an f32 float"):
        vec.verify()
