"""The .fmb container: round trips, validation, and fuzzing of the reader (isa.container)."""

from __future__ import annotations

import struct
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmamba.isa.container import (
    CHECKSUMS,
    FILE_HEADER,
    MAGIC,
    PROGRAM_HEADER,
    SECTION_ENTRY,
    Binary,
    ContainerError,
    Program,
    TensorDesc,
    dump_fmb,
    load_fmb,
    read_fmb,
    reseal_fmb,
    write_fmb,
)
from fastmamba.isa.errors import FastmambaError, InputError
from fastmamba.isa.instructions import Bundle, Instruction

DIGEST = bytes(range(32))


def small_binary() -> Binary:
    wait = Instruction("ctl.wait", {"sem": 3, "count": 2})
    halt = Instruction("ctl.halt", {})
    main = Program("main", 256, (Bundle((wait,), 4), Bundle((halt,))),
                   (TensorDesc("x", "input", 64, (2, 8), "i8", 0.25, -3), TensorDesc("y", "output", 128, (4,), "f32")),
                   {1: "halt from func.return"})
    other = Program("decode.step", 64, (Bundle((halt,)),), (TensorDesc("h-0", "state", 32, (), "i32"),))
    return Binary((main, other), bytes(range(20)), DIGEST)


SMALL = dump_fmb(small_binary())


def test_round_trip():
    b = small_binary()
    assert load_fmb(SMALL) == b
    assert dump_fmb(load_fmb(SMALL)) == SMALL
    assert load_fmb(SMALL).program("main").tensor("x").nbytes == 16


def test_file_round_trip_and_atomic_write(tmp_path):
    path = tmp_path / "p.fmb"
    write_fmb(path, small_binary())
    assert read_fmb(path) == small_binary() and path.read_bytes() == SMALL  # written part by part, same bytes
    write_fmb(path, _with_meta(META))
    assert path.read_bytes() == dump_fmb(_with_meta(META))
    bad = Binary((Program("main", 4, ()),), b"12345678")
    with pytest.raises(ContainerError, match="smaller than the constant image"):
        write_fmb(tmp_path / "q.fmb", bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.fmb"]


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        read_fmb(tmp_path / "nope.fmb")


def test_layout_sizes_are_word_multiples():
    assert FILE_HEADER.size == 64 and SECTION_ENTRY.size == 24 and PROGRAM_HEADER.size == 32


def test_lookup_errors_name_what_exists():
    b = small_binary()
    with pytest.raises(InputError, match=r"no program 'x' \(has: main, decode.step\)"):
        b.program("x")
    with pytest.raises(InputError, match=r"no tensor 'z' \(has: x, y\)"):
        b.program("main").tensor("z")


# --- specific rejections ----------------------------------------------------
def _patched(offset: int, fmt: str, value, seal: bool = True) -> bytes:
    """SMALL with one field changed and, unless `seal` is False, its checksums recomputed (so the check under
    test, not the checksum, sees the change)."""
    blob = bytearray(SMALL)
    struct.pack_into(fmt, blob, offset, value)
    return reseal_fmb(bytes(blob)) if seal else bytes(blob)


@pytest.mark.parametrize("blob, message", [
    (b"", "wrong magic"),
    (b"PK\x03\x04" + bytes(100), "wrong magic"),
    (b"\x7fELF" + SMALL[4:], "wrong magic"),
    (_patched(8, "<I", 3), "unsupported .fmb format version 3"),
    (_patched(8, "<I", 1), "format version 1 \\(written before checksums\\) is no longer read"),
    (SMALL[:40], "truncated: the file header needs 64 bytes, the file has 40"),
    (SMALL[:100], "section table of 3 entries .* does not fit in the file \\(100 bytes\\): the file is truncated"),
    (SMALL[:-8], "truncated"),
    (SMALL + bytes(8), "trailing bytes"),
    (reseal_fmb(SMALL[:-8]), "file truncated: header declares"),
    (_patched(12, "<I", 10 ** 9), "section table of 1000000000 entries .* does not fit"),
    (_patched(64 + 8, "<Q", 1 << 60), "lies outside the file"),
    (_patched(64 + 16, "<Q", 1 << 60), "lies outside the file"),
    (_patched(64 + 24 + 8, "<Q", 64 + 24 * 3 - 8 + 8), "overlap"),
    (_patched(64, "<I", 9), "unknown kind 9"),
    (_patched(64, "<I", 2), "exactly one constant image"),
    (_patched(60, "<I", 1), "file header has nonzero reserved bytes"),
    (_patched(16, "<Q", 1 << 40), "file truncated: header declares 1099511627776 bytes"),
    (_patched(16, "<Q", 1 << 40, seal=False), "file header checksum mismatch"),
    (_patched(64 + 16, "<Q", 1 << 60, seal=False), "file header checksum mismatch"),
    (_patched(56, "<I", 0, seal=False), r"file header checksum mismatch \(stored 0x00000000, computed 0x"),
])
def test_rejects(blob, message):
    with pytest.raises(ContainerError, match=message):
        load_fmb(blob)


def _section(blob: bytes, i: int) -> tuple[int, int]:
    """(offset, length) of section i."""
    return struct.unpack_from("<QQ", blob, 64 + 24 * i + 8)


def test_crc32_is_zlibs_the_standard_one():
    """The check value docs/FMB.md quotes (CHECKSUMS), and the stored checksums are the CRC-32 of the bytes."""
    import zlib

    assert zlib.crc32(b"123456789") == 0xCBF43926 and "0xCBF43926" in CHECKSUMS
    for i in range(3):
        offset, length = _section(SMALL, i)
        assert struct.unpack_from("<I", SMALL, 64 + 24 * i + 4)[0] == zlib.crc32(SMALL[offset:offset + length])
    header = SMALL[:56] + bytes(4) + SMALL[60:64 + 24 * 3]
    assert struct.unpack_from("<I", SMALL, 56)[0] == zlib.crc32(header)


@pytest.mark.parametrize("section, name", [(0, "constant image"), (1, "program"), (2, "program")])
def test_a_flipped_byte_in_a_section_is_a_checksum_error_naming_it(section, name):
    offset, length = _section(SMALL, section)
    for at in (offset, offset + length // 2, offset + length - 1):
        blob = bytearray(SMALL)
        blob[at] ^= 0x10
        with pytest.raises(ContainerError, match=rf"^fmb: section {section} \({name}\) checksum mismatch "
                                                 rf"\(stored 0x[0-9a-f]{{8}}, computed 0x[0-9a-f]{{8}}\): the file is "
                                                 "damaged$"):
            load_fmb(bytes(blob))


def test_every_single_bit_flip_is_detected():
    """Checksums and the zero padding cover every byte: no flipped bit reads back as a binary, and each is
    reported as what it hit (a damaged section count or version is caught before the checksum is computed)."""
    import re

    kinds = {"magic": r"not a \.fmb file", "version": r"unsupported \.fmb format version",
             "count": r"fmb: section table", "header": r"fmb: file header checksum mismatch",
             "padding": r"fmb: nonzero padding", "image": r"fmb: section 0 \(constant image\) checksum",
             "program": r"fmb: section [12] \(program\) checksum"}
    seen = dict.fromkeys(kinds, 0)
    for bit in range(len(SMALL) * 8):
        blob = bytearray(SMALL)
        blob[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(ContainerError) as info:
            load_fmb(bytes(blob))
        kind = next(k for k, pattern in kinds.items() if re.match(pattern, str(info.value)))
        seen[kind] += 1
    assert seen["magic"] == 64 and seen["header"] >= 8 * (56 - 12 + 4 + 24 * 3) and all(seen.values()), seen


def test_nonzero_padding_is_rejected():
    offset, length = _section(SMALL, 0)
    assert length % 8 and not any(SMALL[offset + length:offset + length + 8 - length % 8])  # 20 bytes + 4 padding
    blob = bytearray(SMALL)
    blob[offset + length] = 1
    with pytest.raises(ContainerError, match=rf"nonzero padding between offsets {offset + length} and {offset + 24}"):
        load_fmb(bytes(blob))


def test_version_1_files_are_refused_by_name():
    """A version-1 file (this layout, checksum fields zero) gets a message saying what to do, not 'unsupported'."""
    blob = bytearray(SMALL)
    struct.pack_into("<I", blob, 8, 1)
    struct.pack_into("<I", blob, 56, 0)
    for i in range(3):
        struct.pack_into("<I", blob, 64 + 24 * i + 4, 0)
    with pytest.raises(ContainerError, match="^fmb: format version 1 .* compile or assemble it again$"):
        load_fmb(bytes(blob))


def test_reseal_accepts_any_bytes():
    for blob in (b"", MAGIC, MAGIC + bytes(56), SMALL[:100], SMALL + b"x", bytes(200)):
        assert len(reseal_fmb(blob)) == len(blob)
    assert reseal_fmb(SMALL) == SMALL


def _program_offset(i: int) -> int:
    return struct.unpack_from("<Q", SMALL, 64 + 24 * (1 + i) + 8)[0]


@pytest.mark.parametrize("field, value, message", [
    (0, 1 << 62, "exceeds the target's DDR"),
    (0, 8, "smaller than the constant image"),
    (0, 40, "tensor x at DDR 0x40 .* outside the program's DDR"),
    (8, 1 << 40, "truncated: instruction stream"),
    (16, 1 << 31, "2147483648 tensor records do not fit"),
    (20, 1 << 31, "debug records do not fit"),
    (24, 1 << 31, "truncated: program name"),
])
def test_rejects_program_header_values(field, value, message):
    fmt = "<Q" if field < 16 else "<I"
    blob = _patched(_program_offset(0) + field, fmt, value)
    target = SimpleNamespace(ddr_bytes=1 << 32, buffer_bytes=1 << 20, digest=lambda: DIGEST)
    with pytest.raises(ContainerError, match=message):
        load_fmb(blob, target)


def test_rejects_foreign_target():
    target = SimpleNamespace(ddr_bytes=1 << 32, buffer_bytes=1 << 20, digest=lambda: bytes(32))
    with pytest.raises(ContainerError, match="built for a different target"):
        load_fmb(SMALL, target)


def test_rejects_bad_instruction_stream():
    blob = bytearray(SMALL)
    start = _program_offset(1)
    code_at = start + PROGRAM_HEADER.size + len("decode.step") + 24 + 3 + 0 + 8  # header word of bundle 0 follows
    blob[code_at] = 0xEE
    with pytest.raises(ContainerError, match=r"section 2 \(program\) checksum mismatch"):
        load_fmb(bytes(blob))
    with pytest.raises(ContainerError,
                       match=r"program decode.step: instruction stream: bundle 0 .*unknown opcode 0xee"):
        load_fmb(reseal_fmb(bytes(blob)))


@pytest.mark.parametrize("binary, message", [
    (Binary((Program("a", 8, ()), Program("a", 8, ()))), "duplicate program name 'a'"),
    (Binary((Program("a b", 8, ()),)), "program name 'a b' is not"),
    (Binary((Program("a", 8, (), (TensorDesc("t", "input", 0, (1,), "i8"),) * 2),)), "duplicate tensor name 't'"),
    (Binary((Program("a", 8, (), (TensorDesc("t", "weights", 0, (1,), "i8"),)),)), "role 'weights'"),
    (Binary((Program("a", 8, (), (TensorDesc("t", "input", 0, (1,), "bf16"),)),)), "dtype 'bf16'"),
    (Binary((Program("a", 8, (), (TensorDesc("t", "input", 4, (2,), "i32"),)),)), "outside the program's DDR"),
    (Binary((Program("a", 8, (), (TensorDesc("t", "input", 0, (1,), "i8", 0.1),)),)), "not a finite float32"),
    (Binary((Program("a", 8, (), debug={0: "x"}),)), "debug text for bundle 0, but the program has 0 bundles"),
    (Binary((), target_digest=b"short"), "target digest must be 32 bytes"),
])
def test_writer_rejects_inconsistent_binaries(binary, message):
    with pytest.raises(ContainerError, match=message):
        dump_fmb(binary)


# --- the optional meta section ----------------------------------------------
META = '{"format": "fastmamba/1", "seq_len": 4, "name": "caf\u00e9 \u00e9t\u00e9"}'


def _with_meta(meta: str) -> Binary:
    b = small_binary()
    return Binary(b.programs, b.const_image, b.target_digest, meta)


def test_meta_round_trip():
    blob = dump_fmb(_with_meta(META))
    assert load_fmb(blob) == _with_meta(META) and load_fmb(blob).meta == META
    assert struct.unpack_from("<I", blob, 12)[0] == 4  # const image, two programs, meta
    assert dump_fmb(load_fmb(blob)) == blob


def test_no_meta_writes_no_section():
    """A binary without metadata is laid out as before the meta section existed, and reads back with meta ""."""
    assert struct.unpack_from("<I", SMALL, 12)[0] == 3 and load_fmb(SMALL).meta == ""


def _raw_meta(raw: bytes) -> bytes:
    """A file whose meta section holds `raw` (same length as the placeholder it replaces)."""
    placeholder = '{"k": "' + "x" * (len(raw) - 9) + '"}'
    blob = bytearray(dump_fmb(_with_meta(placeholder)))
    at = blob.index(placeholder.encode())
    blob[at:at + len(raw)] = raw
    return reseal_fmb(bytes(blob))


@pytest.mark.parametrize("raw, message", [
    (b'{"a": "\xff\xfe"}', "meta section is not valid UTF-8"),
    (b'{"a": 1,,,,,,,,}', "meta is not valid JSON"),
    (b'[1, 2, 3, 4, 5, 6]', "meta must be a JSON object, got a JSON list"),
    (b'"just a string..."', "meta must be a JSON object, got a JSON str"),
])
def test_rejects_malformed_meta(raw, message):
    with pytest.raises(ContainerError, match=message):
        load_fmb(_raw_meta(raw))


def test_rejects_two_meta_sections_and_an_empty_one():
    blob = bytearray(dump_fmb(_with_meta(META)))
    meta_entry = 64 + 24 * 3
    struct.pack_into("<I", blob, 64 + 24 * 2, 3)  # the second program's section becomes a second meta section
    with pytest.raises(ContainerError, match="at most one meta section, found 2"):
        load_fmb(reseal_fmb(bytes(blob)))
    blob = bytearray(dump_fmb(_with_meta(META)))
    offset, length = _section(blob, 3)
    struct.pack_into("<Q", blob, meta_entry + 16, 0)
    blob[offset:offset + length] = bytes(length)  # what was the meta text is now padding
    with pytest.raises(ContainerError, match="meta section is empty"):
        load_fmb(reseal_fmb(bytes(blob)))


@pytest.mark.parametrize("meta, message", [
    ("{", "meta is not valid JSON"),
    ("42", "meta must be a JSON object, got a JSON int"),
    (b"{}", "meta must be a string"),
    ('{"s": "\ud800"}', "not encodable as UTF-8"),
])
def test_writer_rejects_bad_meta(meta, message):
    with pytest.raises(ContainerError, match=message):
        dump_fmb(_with_meta(meta))


# --- fuzzing: every outcome is a Binary or a one-line FastmambaError ----------
def _load_or_error(blob: bytes) -> None:
    try:
        b = load_fmb(blob)
    except FastmambaError as exc:
        assert "\n" not in str(exc) and str(exc)
        return
    assert dump_fmb(b) == blob or load_fmb(dump_fmb(b)) == b


def test_every_truncation_is_rejected():
    for n in range(len(SMALL)):
        with pytest.raises(ContainerError):
            load_fmb(SMALL[:n])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes(blob):
    _load_or_error(blob)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_after_magic(blob):
    _load_or_error(MAGIC + blob)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 8 * 96 - 1), min_size=1, max_size=4))
def test_bit_flips_in_meta(bits):
    blob = bytearray(dump_fmb(_with_meta(META)))
    start = len(blob) - 96  # the meta section (the last one) and the padding before it
    for bit in bits:
        blob[start + bit // 8] ^= 1 << (bit % 8)
    _load_or_error(bytes(blob))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, len(SMALL) * 8 - 1), min_size=1, max_size=4))
def test_bit_flips(bits):
    blob = bytearray(SMALL)
    for bit in bits:
        blob[bit // 8] ^= 1 << (bit % 8)
    _load_or_error(bytes(blob))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(SMALL) - 1), st.binary(min_size=1, max_size=8))
def test_overwrites(at, chunk):
    blob = bytearray(SMALL)
    blob[at:at + len(chunk)] = chunk
    _load_or_error(bytes(blob[:len(SMALL)]))


# --- static address checks against a target (lead) -------------------------------------------
def _one_op_binary(op, ddr_size=4096):
    from fastmamba.isa.container import Binary, Program
    from fastmamba.isa.instructions import Bundle, Instruction
    from fastmamba.isa.target import load_target

    t = load_target("vc709")
    prog = Program(name="main", ddr_size=ddr_size, bundles=(Bundle((op,)), Bundle((Instruction("ctl.halt"),))))
    return Binary(programs=(prog,), const_image=b"", target_digest=t.digest()), t


def _ld(**kw):
    from fastmamba.isa.instructions import Instruction

    args = dict(buf=0, ddr=0, rows=4, row_bytes=64, ddr_stride=64, buf_stride=64, sem=0)
    args.update(kw)
    return Instruction("ld", args)


def test_static_addresses_inside_memories_pass():
    from fastmamba.isa.container import dump_fmb, load_fmb

    binary, target = _one_op_binary(_ld(ddr=4096 - 256))
    assert load_fmb(dump_fmb(binary), target).programs[0].bundles[0].ops[0]["ddr"] == 4096 - 256


@pytest.mark.parametrize(
    "op_kwargs, message",
    [
        (dict(ddr=4096 - 255), r"bundle 0: ddr region \[0xf01, 0x1001\) is outside the DDR \(4096 bytes\)"),
        (dict(buf=4_405_248 - 64), r"bundle 0: buf region .* is outside the BUF \(4405248 bytes\)"),
    ],
)
def test_static_addresses_outside_memories_are_rejected(op_kwargs, message):
    from fastmamba.isa.container import dump_fmb, load_fmb

    binary, target = _one_op_binary(_ld(**op_kwargs))
    data = dump_fmb(binary)
    with pytest.raises(FastmambaError, match=message):
        load_fmb(data, target)
    load_fmb(data)  # without a target the reader cannot know the buffer and skips these checks


def test_misaligned_operand_is_rejected():
    from fastmamba.isa.container import dump_fmb, load_fmb
    from fastmamba.isa.instructions import Instruction

    lin = Instruction("lin", dict(dst=2, src=0, wgt=64, scale=0, m=1, k=4, n=4, src_ld=4, dst_ld=4, src_type="i8",
                                  hlog2=0, qmul=1, qshift=0, acc=0, out="i32"))
    binary, target = _one_op_binary(lin)
    with pytest.raises(FastmambaError, match="dst region .* not aligned to 4 bytes"):
        load_fmb(dump_fmb(binary), target)
