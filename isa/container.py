"""The .fmb binary container: what the compiler and the assembler write and the simulator loads.

Place in the flow: the last stage of the compiler and the first of every
execution backend.  A `Binary` holds one constant image (bytes placed at DDR
address 0 of every program), the digest of the target it was built for, and
named `Program`s (DDR size, instruction stream, tensor descriptors, optional
debug text per bundle), and optional metadata: a JSON object as text (what the
compiler records for `fastmamba run`: model, config, quantization plan).
`dump_fmb`/`write_fmb` serialize one; `load_fmb`/`read_fmb` parse and validate
one, rejecting malformed, truncated, damaged or foreign files with a one-line
`ContainerError` and never allocating more than the file's own size.  A CRC-32
of the header and section table and one of each section catch damage (a
flipped bit, a torn copy) before any size the file declares is used.

The byte layout is defined once, by the record table `LAYOUT` and the code
tables `SECTION_KINDS`, `TENSOR_ROLES`, `TENSOR_DTYPES` below; the
generated docs/FMB.md is rendered from them.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Mapping

from fastmamba.isa.dtypes import DTYPES, itemsize
from fastmamba.isa.encoding import DecodeError, decode_bundles, encode_bundles
from fastmamba.isa.errors import FastmambaError, InputError
from fastmamba.isa.fileio import write_atomic
from fastmamba.isa.formatting import format_instruction
from fastmamba.isa.instructions import Bundle, InstructionError

MAGIC = b"\x89FMB\r\n\x1a\n"
FORMAT_VERSION = 2
"""2: CRC-32 checksums in the file header and the section entries (1: the same layout with those fields zero)."""
DIGEST_BYTES = 32
SECTION_ALIGN = 8
MAX_NAME_BYTES = 255
NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
"""Program and tensor names: what the assembly syntax can write without quoting."""


class ContainerError(FastmambaError):
    """A .fmb file (or a Binary about to be written) that is malformed, truncated, foreign or inconsistent."""


# ---------------------------------------------------------------------------
# The layout table
# ---------------------------------------------------------------------------
TYPE_NAMES = {"8s": "bytes[8]", "32s": "bytes[32]", "B": "u8", "H": "u16", "I": "u32", "i": "i32", "Q": "u64",
              "f": "f32"}


@dataclass(frozen=True)
class Record:
    """One fixed-size record of the file: named little-endian fields, then the variable-length parts in `then`."""

    name: str
    fields: tuple[tuple[str, str, str], ...]  # (field, struct code, meaning)
    then: str = ""

    @cached_property
    def struct(self) -> struct.Struct:
        return struct.Struct("<" + "".join(code for _, code, _ in self.fields))

    @property
    def size(self) -> int:
        return self.struct.size

    def layout(self) -> list[tuple[int, str, str, str]]:
        """(offset, field, type name, meaning) for each field."""
        rows, offset = [], 0
        for name, code, doc in self.fields:
            rows.append((offset, name, TYPE_NAMES[code], doc))
            offset += struct.calcsize("<" + code)
        return rows

    def pack(self, **values) -> bytes:
        return self.struct.pack(*(values.get(name, 0) for name, _, _ in self.fields))

    def unpack(self, data, offset: int) -> dict:
        return dict(zip((name for name, _, _ in self.fields), self.struct.unpack_from(data, offset)))


FILE_HEADER = Record("file header", (
    ("magic", "8s", "`89 46 4d 42 0d 0a 1a 0a` (`\\x89FMB\\r\\n\\x1a\\n`): identifies the file and catches text-mode "
                    "mangling"),
    ("version", "I", f"format version, {FORMAT_VERSION}; a reader rejects any other, version 1 (this layout with "
                     "zero checksum fields) with a message saying so"),
    ("section_count", "I", "number of entries in the section table"),
    ("file_size", "Q", "total length of the file in bytes; a shorter file is truncated"),
    ("target_digest", "32s", "SHA-256 digest of the target configuration the binary was built for (`Target.digest()`)"),
    ("header_crc32", "I", "CRC-32 of the file header (this field taken as zero) and the section table that follows "
                          "it"),
    ("reserved", "I", "zero"),
), "followed by the section table: `section_count` section entries")

SECTION_ENTRY = Record("section entry", (
    ("kind", "I", "section kind (table below)"),
    ("crc32", "I", "CRC-32 of the section's bytes (its `length` bytes from `offset`)"),
    ("offset", "Q", f"byte offset of the section from the start of the file, a multiple of {SECTION_ALIGN}"),
    ("length", "Q", "section length in bytes"),
), "sections lie after the section table, inside the file, without overlapping; gaps between them are zero padding")

PROGRAM_HEADER = Record("program header", (
    ("ddr_size", "Q", "bytes of DDR the program uses, at least the constant image's size"),
    ("code_length", "Q", "length of the instruction stream in bytes"),
    ("tensor_count", "I", "number of tensor records"),
    ("debug_count", "I", "number of debug records"),
    ("name_length", "I", "length of the program's name in bytes"),
    ("reserved", "I", "zero"),
), "followed by the name (UTF-8), `tensor_count` tensor records, `debug_count` debug records and the instruction "
   "stream (`code_length` bytes of encoded bundles, docs/ISA.md); together exactly the section's length")

TENSOR_RECORD = Record("tensor record", (
    ("ddr", "Q", "DDR byte address of element 0 (row-major, densely packed)"),
    ("scale", "f", "real value = stored value × scale × 2^exp"),
    ("exp", "i", "power-of-two exponent of the scale"),
    ("role", "B", "tensor role code (table below)"),
    ("dtype", "B", "element type code (table below)"),
    ("rank", "B", "number of dimensions"),
    ("reserved", "B", "zero"),
    ("name_length", "H", "length of the tensor's name in bytes"),
    ("reserved2", "H", "zero"),
), "followed by the name (UTF-8) and `rank` dimensions, each a u64")

DEBUG_RECORD = Record("debug record", (
    ("bundle", "Q", "index of the bundle the text describes"),
    ("text_length", "I", "length of the text in bytes"),
    ("reserved", "I", "zero"),
), "followed by the text (UTF-8), e.g. the IR operation the bundle came from")

LAYOUT: tuple[Record, ...] = (FILE_HEADER, SECTION_ENTRY, PROGRAM_HEADER, TENSOR_RECORD, DEBUG_RECORD)

SECTION_KINDS: Mapping[int, tuple[str, str]] = MappingProxyType({
    1: ("const_image", "the constant image: its bytes are placed at DDR address 0 of every program; exactly one"),
    2: ("program", "one program: a program header and what follows it; names are unique"),
    3: ("meta", "metadata: one JSON object as UTF-8 text (for `fastmamba run`: the model, its config, the "
                "quantization plan); at most one, absent when there is none"),
})
_KIND = {name: code for code, (name, _) in SECTION_KINDS.items()}

TENSOR_ROLES: tuple[str, ...] = ("input", "output", "state")
"""Role codes: index in this tuple.  Inputs are written before a run, outputs read after it, states both."""

TENSOR_DTYPES: Mapping[str, tuple[int, str]] = MappingProxyType({
    # name: (code in a tensor record, little-endian `struct` format of one element), from isa.dtypes
    name: (d.code, d.struct_format) for name, d in DTYPES.items()
})


def dtype_itemsize(dtype: str) -> int:
    """Bytes per element of a tensor dtype name."""
    return itemsize(dtype)


_DTYPE_BY_CODE = {code: name for name, (code, _) in TENSOR_DTYPES.items()}


# ---------------------------------------------------------------------------
# The data model
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class TensorDesc:
    """A tensor a runtime writes or reads in DDR: inputs, outputs and recurrent states."""

    name: str
    role: str
    ddr: int
    shape: tuple[int, ...]
    dtype: str
    scale: float = 1.0
    exp: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(self.shape))

    @property
    def itemsize(self) -> int:
        return dtype_itemsize(self.dtype)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.itemsize


@dataclass(frozen=True)
class Program:
    """One named program: its DDR size, its bundles, its tensors and optional debug text per bundle index."""

    name: str
    ddr_size: int
    bundles: tuple[Bundle, ...]
    tensors: tuple[TensorDesc, ...] = ()
    debug: Mapping[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "bundles", tuple(self.bundles))
        object.__setattr__(self, "tensors", tuple(self.tensors))
        object.__setattr__(self, "debug", MappingProxyType(dict(self.debug)))

    def tensor(self, name: str) -> TensorDesc:
        for t in self.tensors:
            if t.name == name:
                return t
        raise InputError(f"program {self.name} has no tensor {name!r} (has: "
                         f"{', '.join(t.name for t in self.tensors) or 'none'})")


@dataclass(frozen=True)
class Binary:
    """A whole .fmb: the constant image shared by all programs, the programs, the target digest.

    `meta`: a JSON object as text, or "" for none (then no meta section is written).
    """

    programs: tuple[Program, ...]
    const_image: bytes = b""
    target_digest: bytes = bytes(DIGEST_BYTES)
    meta: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "programs", tuple(self.programs))
        object.__setattr__(self, "const_image", bytes(self.const_image))
        object.__setattr__(self, "target_digest", bytes(self.target_digest))

    def program(self, name: str) -> Program:
        for p in self.programs:
            if p.name == name:
                return p
        raise InputError(f"binary has no program {name!r} (has: {', '.join(p.name for p in self.programs) or 'none'})")


# ---------------------------------------------------------------------------
# Validation shared by the writer and the reader
# ---------------------------------------------------------------------------
def _check_name(what: str, name: str) -> bytes:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or len(name) > MAX_NAME_BYTES:
        raise ContainerError(f"{what} name {str(name)[:40]!r} is not 1..{MAX_NAME_BYTES} characters of "
                             f"letters, digits, '_', '.', '-' starting with a letter or '_'")
    return name.encode("ascii")


def validate_binary(binary: Binary, target=None) -> None:
    """Raise ContainerError unless `binary` is self-consistent (and fits `target`, when given)."""
    if len(binary.target_digest) != DIGEST_BYTES:
        raise ContainerError(f"target digest must be {DIGEST_BYTES} bytes, got {len(binary.target_digest)}")
    _check_meta(binary.meta)
    if target is not None:
        if binary.target_digest != target.digest():
            raise ContainerError(f"binary was built for a different target (digest {binary.target_digest.hex()[:16]}…, "
                                 f"this target {target.digest().hex()[:16]}…)")
    seen: set[str] = set()
    for prog in binary.programs:
        _check_name("program", prog.name)
        if prog.name in seen:
            raise ContainerError(f"duplicate program name {prog.name!r}")
        seen.add(prog.name)
        _validate_program(prog, len(binary.const_image), target)


def _check_meta(meta: str) -> None:
    if not isinstance(meta, str):
        raise ContainerError(f"meta must be a string of JSON text, got {type(meta).__name__}")
    if not meta:
        return
    try:
        value = json.loads(meta)
    except RecursionError:  # [[[[... deeper than Python's stack (found by tests/fuzz/)
        raise ContainerError("meta is not valid JSON: nested too deeply") from None
    except ValueError as exc:
        raise ContainerError(f"meta is not valid JSON: {str(exc).splitlines()[0]}") from None
    if not isinstance(value, dict):
        raise ContainerError(f"meta must be a JSON object, got a JSON {type(value).__name__}")


def _validate_program(prog: Program, image_size: int, target) -> None:
    where = f"program {prog.name}"
    if not isinstance(prog.ddr_size, int) or prog.ddr_size < 0:
        raise ContainerError(f"{where}: ddr_size must be a non-negative integer")
    if prog.ddr_size < image_size:
        raise ContainerError(f"{where}: ddr_size {prog.ddr_size} is smaller than the constant image ({image_size} "
                             "bytes)")
    if target is not None and prog.ddr_size > target.ddr_bytes:
        raise ContainerError(f"{where}: ddr_size {prog.ddr_size} exceeds the target's DDR ({target.ddr_bytes} bytes)")
    names: set[str] = set()
    for t in prog.tensors:
        _check_name(f"{where}: tensor", t.name)
        if t.name in names:
            raise ContainerError(f"{where}: duplicate tensor name {t.name!r}")
        names.add(t.name)
        if t.role not in TENSOR_ROLES:
            raise ContainerError(f"{where}: tensor {t.name}: role {t.role!r} is not one of {', '.join(TENSOR_ROLES)}")
        if t.dtype not in TENSOR_DTYPES:
            raise ContainerError(f"{where}: tensor {t.name}: dtype {t.dtype!r} is not one of "
                                 f"{', '.join(TENSOR_DTYPES)}")
        if len(t.shape) > 255 or any(not isinstance(d, int) or d < 0 for d in t.shape):
            raise ContainerError(f"{where}: tensor {t.name}: shape {t.shape} must be at most 255 non-negative integers")
        if not isinstance(t.ddr, int) or t.ddr < 0 or t.ddr + t.nbytes > prog.ddr_size:
            raise ContainerError(f"{where}: tensor {t.name} at DDR {t.ddr:#x} ({t.nbytes} bytes) lies outside the "
                                 f"program's DDR ({prog.ddr_size} bytes)")
        if not math.isfinite(t.scale) or struct.unpack("<f", struct.pack("<f", t.scale))[0] != t.scale:
            raise ContainerError(f"{where}: tensor {t.name}: scale {t.scale!r} is not a finite float32")
        if not isinstance(t.exp, int) or not -(1 << 31) <= t.exp < (1 << 31):
            raise ContainerError(f"{where}: tensor {t.name}: exp {t.exp!r} is not a 32-bit integer")
    _check_static_addresses(prog, where, target)
    for index, text in prog.debug.items():
        if not isinstance(index, int) or not 0 <= index < len(prog.bundles):
            raise ContainerError(f"{where}: debug text for bundle {index}, but the program has {len(prog.bundles)} "
                                 "bundles")
        if not isinstance(text, str):
            raise ContainerError(f"{where}: debug text for bundle {index} is not a string")


def _check_static_addresses(prog: Program, where: str, target) -> None:
    """Against a target: every instruction's memory (`Instruction.regions()`) inside the DDR and the buffer."""
    if target is None:
        return
    limits = {"ddr": prog.ddr_size, "buf": target.buffer_bytes}
    for index, bundle in enumerate(prog.bundles):
        for op in bundle.ops:
            for region in op.regions():
                start, stop = region.span
                if stop == start:
                    continue  # touches nothing
                limit = limits[region.space]
                bad = stop > limit or start % region.align
                if bad:
                    problem = (f"not aligned to {region.align} bytes" if start % region.align
                               else f"outside the {region.space.upper()} ({limit} bytes)")
                    raise ContainerError(f"{where}: bundle {index}: {region.field} region [{start:#x}, {stop:#x}) is "
                                         f"{problem}: {format_instruction(op)}")


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------
def _pad(n: int) -> int:
    return -n % SECTION_ALIGN


def _program_section(prog: Program) -> bytes:
    name = _check_name("program", prog.name)
    try:
        code = encode_bundles(prog.bundles)
    except InstructionError as exc:
        raise ContainerError(f"program {prog.name}: {exc}") from None
    parts = [b"", name]
    for t in prog.tensors:
        tname = t.name.encode("ascii")
        parts.append(TENSOR_RECORD.pack(ddr=t.ddr, scale=t.scale, exp=t.exp, role=TENSOR_ROLES.index(t.role),
                                        dtype=TENSOR_DTYPES[t.dtype][0], rank=len(t.shape), name_length=len(tname)))
        parts.append(tname)
        parts.append(struct.pack(f"<{len(t.shape)}Q", *t.shape))
    for index in sorted(prog.debug):
        try:
            text = prog.debug[index].encode("utf-8")
        except UnicodeEncodeError:
            raise ContainerError(f"program {prog.name}: debug text for bundle {index} is not encodable as "
                                 "UTF-8") from None
        if len(text) > 0xFFFFFFFF:
            raise ContainerError(f"program {prog.name}: debug text for bundle {index} is too long")
        parts.append(DEBUG_RECORD.pack(bundle=index, text_length=len(text)))
        parts.append(text)
    parts.append(code)
    parts[0] = PROGRAM_HEADER.pack(ddr_size=prog.ddr_size, code_length=len(code), tensor_count=len(prog.tensors),
                                   debug_count=len(prog.debug), name_length=len(name))
    return b"".join(parts)


def _fmb_parts(binary: Binary, target=None) -> list[bytes]:
    """The serialized file as consecutive parts (validated first): header and section table, then each
    section and its padding.  The constant image is one part as it is, not copied."""
    validate_binary(binary, target)
    sections = [(_KIND["const_image"], binary.const_image)] + [(_KIND["program"],
                                                                _program_section(p)) for p in binary.programs]
    if binary.meta:
        try:
            sections.append((_KIND["meta"], binary.meta.encode("utf-8")))
        except UnicodeEncodeError:
            raise ContainerError("meta is not encodable as UTF-8") from None
    table_end = FILE_HEADER.size + SECTION_ENTRY.size * len(sections)
    offset = table_end + _pad(table_end)
    entries, body = [], []
    for kind, data in sections:
        entries.append(SECTION_ENTRY.pack(kind=kind, crc32=zlib.crc32(data), offset=offset, length=len(data)))
        body += [data, bytes(_pad(len(data)))]
        offset += len(data) + _pad(len(data))
    fields = dict(magic=MAGIC, version=FORMAT_VERSION, section_count=len(sections), file_size=offset,
                  target_digest=binary.target_digest)
    crc = zlib.crc32(b"".join(entries), zlib.crc32(FILE_HEADER.pack(**fields)))
    header = FILE_HEADER.pack(**fields, header_crc32=crc)
    return [header, *entries, bytes(_pad(table_end)), *body]


def dump_fmb(binary: Binary, target=None) -> bytes:
    """Serialize a Binary (validated first; against `target` too when given)."""
    return b"".join(_fmb_parts(binary, target))


def write_fmb(path: str | os.PathLike, binary: Binary, target=None) -> None:
    """Write a Binary to `path` atomically (nothing is left behind when it is invalid), part by part: the
    constant image is not copied into one serialized buffer first (it is gigabytes for large models)."""
    write_atomic(path, _fmb_parts(binary, target))


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------
READER_CHECKS: tuple[str, ...] = (
    "the magic bytes (a foreign file) and the format version (version 1, written before checksums, is refused "
    "by name);",
    "the file header and the section table fit in the file, before any other field is used;",
    "`header_crc32` matches the header and section table (a damaged size, count or offset field is reported as "
    "damage, not believed);",
    "`file_size` equals the file's length (truncation, trailing bytes);",
    "every section has a known kind, is aligned, lies inside the file after the table and overlaps no other; the "
    "bytes between sections are zero; there is exactly one constant image;",
    "each section's `crc32` matches its bytes, checked for every section before any is parsed; the error names "
    "the section;",
    "reserved fields are zero; names are valid UTF-8 and match the name pattern; every count and length fits in "
    "the bytes left in its section before anything is read; the parts of a program section add up to its length;",
    "there is at most one meta section, and it is UTF-8 text of one JSON object;",
    "the instruction stream decodes (docs/ISA.md), with errors naming the bundle and byte offset;",
    "program and tensor names are unique; `ddr_size` is at least the constant image's size; every tensor lies "
    "inside its program's DDR; scales are finite; debug records name existing bundles, once each;",
    "given a target: the digest matches it, every `ddr_size` fits its DDR, and every instruction's memory regions "
    "(from its fields, `Instruction.regions()`) lie inside its program's DDR and the target's buffer, aligned to "
    "their element size.",
)
"""What `load_fmb` verifies, in order (rendered into docs/FMB.md)."""


CHECKSUMS = (
    "CRC-32 is the checksum of zlib's `crc32`, gzip's and PNG's (polynomial 0x04C11DB7, reflected, initial value "
    "and final XOR 0xFFFFFFFF; `crc32(b\"123456789\") = 0xCBF43926`).  `header_crc32` covers the file header, its "
    "own four bytes taken as zero, and the section table; each section entry's `crc32` covers its section's "
    "`length` bytes.  The padding between sections is zero and covered by no checksum; a reader checks it is "
    "zero.  Together they cover every byte of the file, so a flipped bit anywhere is reported (as a checksum "
    "mismatch naming the section, or as the header or padding it hit) before any damaged value is used."
)
"""How the checksums are computed and what each covers (rendered into docs/FMB.md)."""

_HEADER_CRC_AT = next(offset for offset, name, _, _ in FILE_HEADER.layout() if name == "header_crc32")


def _check_reserved(rec: Record, values: dict, what: str) -> None:
    for name, _, _ in rec.fields:
        if name.startswith("reserved") and values[name]:
            raise ContainerError(f"{what}: {rec.name} has nonzero reserved bytes")


def _header_crc(data, table_end: int) -> int:
    """CRC-32 of the header (its checksum field as zero) and the section table, `data[:table_end]`."""
    view = memoryview(data)
    crc = zlib.crc32(view[:_HEADER_CRC_AT])
    crc = zlib.crc32(bytes(4), crc)
    return zlib.crc32(view[_HEADER_CRC_AT + 4:table_end], crc)


def _section_name(index: int, kind: int) -> str:
    """"section 0 (constant image)", "section 2 (program)", ..."""
    return f"section {index} ({SECTION_KINDS[kind][0].replace('const_image', 'constant image')})"


def reseal_fmb(data: bytes) -> bytes:
    """`data` with every checksum recomputed: the header's, and each section's that lies inside the file.

    For tests and fuzzers that edit a file on purpose and want the reader's other checks to see the edit
    rather than a checksum mismatch.  Any bytes are accepted; what does not parse is left as it is."""
    blob = bytearray(data)
    if len(blob) < FILE_HEADER.size or blob[:len(MAGIC)] != MAGIC:
        return bytes(blob)
    count = min(FILE_HEADER.unpack(blob, 0)["section_count"], (len(blob) - FILE_HEADER.size) // SECTION_ENTRY.size)
    for i in range(count):
        at = FILE_HEADER.size + i * SECTION_ENTRY.size
        e = SECTION_ENTRY.unpack(blob, at)
        if e["offset"] + e["length"] <= len(blob):
            crc = zlib.crc32(memoryview(blob)[e["offset"]:e["offset"] + e["length"]])
            struct.pack_into("<I", blob, at + 4, crc)
    struct.pack_into("<I", blob, _HEADER_CRC_AT, _header_crc(blob, FILE_HEADER.size + count * SECTION_ENTRY.size))
    return bytes(blob)


class _Cursor:
    """Bounds-checked reading of one region [start, stop) of the file."""

    def __init__(self, data: bytes, start: int, stop: int, what: str):
        self.data, self.pos, self.stop, self.what = data, start, stop, what

    def need(self, n: int, what: str) -> int:
        if n > self.stop - self.pos:
            raise ContainerError(f"{self.what}: truncated: {what} needs {n} bytes at offset {self.pos}, "
                                 f"{self.stop - self.pos} left")
        pos = self.pos
        self.pos += n
        return pos

    def record(self, rec: Record) -> dict:
        values = rec.unpack(self.data, self.need(rec.size, rec.name))
        _check_reserved(rec, values, self.what)
        return values

    def text(self, n: int, what: str) -> str:
        raw = self.data[self.need(n, what):self.pos]
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ContainerError(f"{self.what}: {what} is not valid UTF-8") from None


def load_fmb(data: bytes, target=None) -> Binary:
    """Parse and validate a .fmb image; raise ContainerError (one line) on anything malformed or damaged."""
    data = bytes(data)
    if len(data) < len(MAGIC) or data[:len(MAGIC)] != MAGIC:
        raise ContainerError("not a .fmb file (wrong magic bytes)")
    if len(data) >= len(MAGIC) + 4:
        version = struct.unpack_from("<I", data, len(MAGIC))[0]
        if version == 1:
            raise ContainerError("fmb: format version 1 (written before checksums) is no longer read: compile or "
                                 "assemble it again")
        if version != FORMAT_VERSION:
            raise ContainerError(f"unsupported .fmb format version {version} (this reader supports {FORMAT_VERSION})")
    if len(data) < FILE_HEADER.size:
        raise ContainerError(f"fmb: truncated: the file header needs {FILE_HEADER.size} bytes, the file has "
                             f"{len(data)}")
    head = FILE_HEADER.unpack(data, 0)
    count = head["section_count"]
    if count > (len(data) - FILE_HEADER.size) // SECTION_ENTRY.size:
        raise ContainerError(f"fmb: section table of {count} entries ({FILE_HEADER.size + count * SECTION_ENTRY.size}"
                             f" bytes with the header) does not fit in the file ({len(data)} bytes): the file is "
                             "truncated or its header damaged")
    table_end = FILE_HEADER.size + count * SECTION_ENTRY.size
    crc = _header_crc(data, table_end)
    if crc != head["header_crc32"]:
        raise ContainerError(f"fmb: file header checksum mismatch (stored {head['header_crc32']:#010x}, computed "
                             f"{crc:#010x}): the header or section table is damaged")
    _check_reserved(FILE_HEADER, head, "fmb")
    if head["file_size"] != len(data):
        problem = "truncated" if head["file_size"] > len(data) else "has trailing bytes"
        raise ContainerError(f"fmb: file {problem}: header declares {head['file_size']} bytes, file has {len(data)}")
    entries = [SECTION_ENTRY.unpack(data, FILE_HEADER.size + i * SECTION_ENTRY.size) for i in range(count)]
    spans = []
    for i, e in enumerate(entries):
        _check_reserved(SECTION_ENTRY, e, f"fmb: section {i}")
        if e["kind"] not in SECTION_KINDS:
            raise ContainerError(f"fmb: section {i} has unknown kind {e['kind']}")
        if e["offset"] % SECTION_ALIGN or e["offset"] < table_end or e["offset"] + e["length"] > len(data):
            raise ContainerError(f"fmb: section {i} (offset {e['offset']}, length {e['length']}) lies outside the "
                                 "file's data area")
        spans.append((e["offset"], e["offset"] + e["length"], i))
    spans.sort()
    for (_, a_end, a), (b_start, _, b) in zip(spans, spans[1:]):
        if b_start < a_end:
            raise ContainerError(f"fmb: sections {a} and {b} overlap")
    gaps = zip([table_end] + [stop for _, stop, _ in spans], [start for start, _, _ in spans] + [len(data)])
    for start, stop in gaps:
        if data.count(0, start, stop) != stop - start:
            raise ContainerError(f"fmb: nonzero padding between offsets {start} and {stop}: the file is damaged")
    images = [e for e in entries if SECTION_KINDS[e["kind"]][0] == "const_image"]
    if len(images) != 1:
        raise ContainerError(f"fmb: expected exactly one constant image section, found {len(images)}")
    view = memoryview(data)
    for i, e in enumerate(entries):
        crc = zlib.crc32(view[e["offset"]:e["offset"] + e["length"]])
        if crc != e["crc32"]:
            raise ContainerError(f"fmb: {_section_name(i, e['kind'])} checksum mismatch (stored {e['crc32']:#010x}, "
                                 f"computed {crc:#010x}): the file is damaged")
    image = data[images[0]["offset"]:images[0]["offset"] + images[0]["length"]]
    programs = [_read_program(data, e, i) for i, e in enumerate(entries) if SECTION_KINDS[e["kind"]][0] == "program"]
    binary = Binary(tuple(programs), image, head["target_digest"], _read_meta(data, entries))
    validate_binary(binary, target)
    return binary


def _read_meta(data: bytes, entries: list[dict]) -> str:
    metas = [e for e in entries if SECTION_KINDS[e["kind"]][0] == "meta"]
    if len(metas) > 1:
        raise ContainerError(f"fmb: expected at most one meta section, found {len(metas)}")
    if not metas:
        return ""
    raw = data[metas[0]["offset"]:metas[0]["offset"] + metas[0]["length"]]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ContainerError("fmb: meta section is not valid UTF-8") from None
    if not text:
        raise ContainerError("fmb: meta section is empty (a binary without metadata has no meta section)")
    _check_meta(text)
    return text


def _read_program(data: bytes, entry: dict, index: int) -> Program:
    cur = _Cursor(data, entry["offset"], entry["offset"] + entry["length"], f"program section {index}")
    head = cur.record(PROGRAM_HEADER)
    name = cur.text(head["name_length"], "program name")
    cur.what = f"program {name}"
    # Counts are bounded by the bytes left before any list is built.
    if head["tensor_count"] > (cur.stop - cur.pos) // TENSOR_RECORD.size:
        raise ContainerError(f"{cur.what}: truncated: {head['tensor_count']} tensor records do not fit in the section")
    tensors = []
    for _ in range(head["tensor_count"]):
        rec = cur.record(TENSOR_RECORD)
        tname = cur.text(rec["name_length"], "tensor name")
        if rec["role"] >= len(TENSOR_ROLES) or rec["dtype"] not in _DTYPE_BY_CODE:
            raise ContainerError(f"{cur.what}: tensor {tname}: unknown role code {rec['role']} or dtype code "
                                 f"{rec['dtype']}")
        pos = cur.need(8 * rec["rank"], f"shape of tensor {tname}")
        shape = struct.unpack_from(f"<{rec['rank']}Q", data, pos)
        tensors.append(TensorDesc(tname, TENSOR_ROLES[rec["role"]], rec["ddr"], shape, _DTYPE_BY_CODE[rec["dtype"]],
                                  rec["scale"], rec["exp"]))
    if head["debug_count"] > (cur.stop - cur.pos) // DEBUG_RECORD.size:
        raise ContainerError(f"{cur.what}: truncated: {head['debug_count']} debug records do not fit in the section")
    debug: dict[int, str] = {}
    for _ in range(head["debug_count"]):
        rec = cur.record(DEBUG_RECORD)
        if rec["bundle"] in debug:
            raise ContainerError(f"{cur.what}: two debug records for bundle {rec['bundle']}")
        debug[rec["bundle"]] = cur.text(rec["text_length"], "debug text")
    start = cur.need(head["code_length"], "instruction stream")
    if cur.pos != cur.stop:
        raise ContainerError(f"{cur.what}: {cur.stop - cur.pos} unexpected bytes after the instruction stream")
    try:
        bundles = decode_bundles(data[start:cur.pos])
    except DecodeError as exc:
        raise ContainerError(f"{cur.what}: instruction stream: {exc}") from None
    return Program(name, head["ddr_size"], tuple(bundles), tuple(tensors), debug)


def read_fmb(path: str | os.PathLike, target=None) -> Binary:
    """Read and validate a .fmb file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    return load_fmb(data, target)
