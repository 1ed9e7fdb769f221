"""Damaged binaries and mismatched inputs at the command line: one line naming the problem (issue 16, 4 and leftovers).

A flipped byte or a damaged size field in a .fmb reaches every command that reads one (disasm, sim, run) as one
line naming the damaged part, exit status 1, no traceback; `.meta` errors in assembly name the line; `opt -p
calibrate` on IR imported from another model names the weight that differs instead of failing inside the
interpreter (an internal error, exit 70, before).
"""

from __future__ import annotations

import struct

import pytest

from fastmamba.compiler.cli import main
from fastmamba.isa.container import dump_fmb, reseal_fmb
from model_factory import make_config, random_hf_model, save_hf_dir
from toy_compiled import TARGET, toy_binary

GOOD = dump_fmb(toy_binary(4), TARGET)


def one_line(capsys, argv: list[str], *words: str) -> str:
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and len(err.splitlines()) == 1, err
    for word in words:
        assert word in err, err
    return err


def _section(blob: bytes, i: int) -> tuple[int, int]:
    return struct.unpack_from("<QQ", blob, 64 + 24 * i + 8)


def _flipped(at: int) -> bytes:
    blob = bytearray(GOOD)
    blob[at] ^= 0x01
    return bytes(blob)


COMMANDS = [["disasm"], ["sim", "--program", "decode"], ["run", "--prompt", "a", "--max-new-tokens", "1"]]


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: a[0])
def test_a_flipped_byte_in_the_constant_image(argv, tmp_path, capsys):
    offset, length = _section(GOOD, 0)
    path = tmp_path / "damaged.fmb"
    path.write_bytes(_flipped(offset + length // 2))
    one_line(capsys, [argv[0], str(path), *argv[1:]], "section 0 (constant image) checksum mismatch",
             "the file is damaged")


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: a[0])
def test_a_damaged_size_field_is_damage_not_a_truncation(argv, tmp_path, capsys):
    blob = bytearray(GOOD)
    struct.pack_into("<Q", blob, 16, len(GOOD) + (1 << 40))  # file_size: a terabyte more
    path = tmp_path / "damaged.fmb"
    path.write_bytes(bytes(blob))
    err = one_line(capsys, [argv[0], str(path), *argv[1:]], "file header checksum mismatch")
    assert "truncated" not in err and "1099511" not in err


def test_a_program_with_a_damaged_count_names_the_section(tmp_path, capsys):
    offset, _ = _section(GOOD, 1)
    blob = bytearray(GOOD)
    struct.pack_into("<I", blob, offset + 16, 1 << 31)  # the first program's tensor_count
    path = tmp_path / "damaged.fmb"
    path.write_bytes(bytes(blob))
    one_line(capsys, ["disasm", str(path)], "section 1 (program) checksum mismatch")
    path.write_bytes(reseal_fmb(bytes(blob)))  # the same damage with checksums to match: still caught, by size
    one_line(capsys, ["disasm", str(path)], "program prefill: truncated: 2147483648 tensor records do not fit")


@pytest.mark.parametrize("line, words", [
    ('.meta "{"', ("p.s:3:", ".meta: meta is not valid JSON")),
    ('.meta "[1, 2]"', ("p.s:3:", "meta must be a JSON object")),
    (".meta {}", ("p.s:3:", 'expected one "double-quoted string"')),
    ('.meta ""', ("p.s:3:", 'expected one non-empty "double-quoted string"')),
    ('.meta "{}"\n.meta "{}"', ("p.s:4:", ".meta given twice")),
])
def test_asm_meta_errors_name_the_line(line, words, tmp_path, capsys):
    source = tmp_path / "p.s"
    source.write_text(f".program main ddr_size=64\nctl.halt\n{line}\n", encoding="utf-8")
    one_line(capsys, ["asm", str(source), "-o", str(tmp_path / "p.fmb")], *words)
    assert not (tmp_path / "p.fmb").exists()


# --- opt -p calibrate on IR of another model ---------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_ir(tmp_path_factory):
    root = tmp_path_factory.mktemp("calibrate")
    models = {name: save_hf_dir(random_hf_model(make_config("tiny", **over)), root / name)
              for name, over in (("tiny", {}), ("one_layer", {"n_layer": 1}))}
    ir = root / "tiny.mlir"
    assert main(["import", "--model", str(models["tiny"]), "--seq-len", "8", "-o", str(ir)]) == 0
    return ir, models


@pytest.mark.parametrize("model, words", [
    (None, ("calibrate: the IR is not of the model in", "models/default", "weight backbone.embeddings.weight is "
            "256x256 there, 256x32 in the IR", "give model=DIR")),
    ("one_layer", ("calibrate: the IR is not of the model in", "backbone.layers.1.", "does not have")),
])
def test_calibrate_on_another_models_ir(model, words, tiny_ir, tmp_path, capsys):
    ir, models = tiny_ir
    options = "random=true" + (f' model="{models[model]}"' if model else "")
    out = tmp_path / "out.mlir"
    one_line(capsys, ["opt", str(ir), "-p", f"set-target{{target=vc709}},calibrate{{{options}}}", "-o", str(out)],
             *words)
    assert not out.exists()


def test_calibrate_on_its_own_models_ir_runs(tiny_ir, tmp_path, capsys):
    ir, models = tiny_ir
    out = tmp_path / "out.mlir"
    pipeline = f'set-target{{target=vc709}},calibrate{{random=true windows=1 model="{models["tiny"]}"}}'
    assert main(["opt", str(ir), "-p", pipeline, "-o", str(out)]) == 0
    assert "mamba_quant.range" in out.read_text(encoding="utf-8")
    capsys.readouterr()
