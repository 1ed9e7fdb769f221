"""`fastmamba disasm` then `fastmamba asm` gives back a compiled binary byte for byte (issue 16, item 4).

Every section survives the text: the constant image (.data), each program's bundles, tensor descriptors and
debug text (.loc), the target digest and the metadata `fastmamba run` needs (.meta).  Checked on the bundled
model and on a random model of another shape (tests/model_factory.py), compiled by `fastmamba compile`.
"""

from __future__ import annotations

import json

import pytest

from fastmamba.compiler.cli import main
from fastmamba.isa.container import read_fmb
from model_factory import make_config, random_hf_model, save_hf_dir


@pytest.fixture(scope="module", params=["bundled", "groups2"])
def compiled(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    model = [] if request.param == "bundled" else [
        "--model", str(save_hf_dir(random_hf_model(make_config("groups2", n_layer=1), seed=3), root / "model"))]
    path = root / "m.fmb"
    assert main(["compile", *model, "--seq-len", "8", "--calibration", "random", "--calibration-windows", "1",
                 "-o", str(path)]) == 0
    return path


def test_disasm_then_asm_is_byte_identical(compiled, capsys):
    text, again = compiled.with_suffix(".s"), compiled.with_name("again.fmb")
    assert main(["disasm", str(compiled), "-o", str(text)]) == 0
    assert main(["asm", str(text), "-o", str(again)]) == 0
    assert again.read_bytes() == compiled.read_bytes()
    binary = read_fmb(compiled)
    lines = text.read_text(encoding="utf-8").splitlines()
    # each section is in the text, not only carried through: the meta, the debug text and the descriptors
    (meta_line,) = [line for line in lines if line.startswith(".meta ")]
    assert json.loads(meta_line.removeprefix(".meta ")) == binary.meta and json.loads(binary.meta)["plan"]
    for prog in binary.programs:
        assert prog.debug and prog.tensors
    assert sum(line.startswith(".loc ") for line in lines) == sum(len(p.debug) for p in binary.programs)
    assert sum(line.startswith((".input ", ".output ", ".state ")) for line in lines) == \
        sum(len(p.tensors) for p in binary.programs)
    capsys.readouterr()


def test_asm_takes_the_preset_the_text_was_disassembled_for(tmp_path, capsys):
    """Without --target, asm assembles for the preset whose digest .target_digest names (here `small`, whose
    buffer also bounds the program's addresses); an unknown digest is one line asking for --target."""
    from fastmamba.isa.container import Binary, Program, dump_fmb
    from fastmamba.isa.disassembler import disassemble
    from fastmamba.isa.instructions import Bundle, Instruction
    from fastmamba.isa.target import load_target

    small = load_target("small")
    ld = Instruction("ld", dict(buf=small.buffer_bytes - 64, ddr=0, rows=1, row_bytes=64, ddr_stride=64,
                                buf_stride=64, sem=0))
    binary = Binary((Program("main", 64, (Bundle((ld,)), Bundle((Instruction("ctl.halt"),)))),), bytes(64),
                    small.digest())
    text, out = tmp_path / "p.s", tmp_path / "p.fmb"
    text.write_text(disassemble(binary), encoding="utf-8")
    assert main(["asm", str(text), "-o", str(out)]) == 0
    assert out.read_bytes() == dump_fmb(binary, small)
    text.write_text(disassemble(Binary(binary.programs, binary.const_image, bytes(range(32)))), encoding="utf-8")
    assert main(["asm", str(text), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "differs from the target's" in err and "(vc709)" in err and "(--target)" in err
