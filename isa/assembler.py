"""Assembly text to `Binary`: hand-written programs, examples and tests.

Place in the flow: beside the compiler's emitter, a second way to produce a
.fmb (`fastmamba asm`).  Mnemonics, fields and enum names come from the
instruction table (`isa.instructions`), dtypes and roles from the container's
tables (`isa.container`); `isa.disassembler` prints the same syntax.  The
syntax is documented, with an example, in the generated docs/ISA.md (source:
`SYNTAX_DOC` below).  Errors are `AsmError`s reading `file:line: message`.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from fastmamba.isa.container import (
    DIGEST_BYTES,
    NAME_PATTERN,
    TENSOR_DTYPES,
    TENSOR_ROLES,
    Binary,
    ContainerError,
    Program,
    TensorDesc,
    validate_binary,
)
from fastmamba.isa.errors import FastmambaError, InputError
from fastmamba.isa.formatting import NOP
from fastmamba.isa.instructions import Bundle, Instruction, InstructionError

MAX_IMAGE_BYTES = 1 << 32
"""Largest constant image the assembler builds when no target bounds it (the target's DDR size does otherwise)."""

SYNTAX_DOC = """\
One statement per line; `#` starts a comment (outside double-quoted strings).
Integers are decimal or `0x` hexadecimal, optionally negative; floats are
decimal (`0.5`, `-1e-3`); strings are JSON double-quoted strings.

**Bundles.** A line that does not start with `.` is one bundle: its
operations separated by `|`, each `mnemonic field=value, field=value, ...`
with every field of the operation given exactly once (any order; the
disassembler prints table order).  Enum fields take the value's name;
`f32` fields a decimal float (the disassembler prints the shortest text that
reads back as the same float32).  At most one operation per slot; their
order on the line does not matter.  An optional `; delay=N` at the end sets
the bundle's delay (idle cycles after it).  `nop` is a bundle without
operations (`nop ; delay=100` idles).

**Directives.**

| directive | meaning |
|---|---|
| `.program NAME ddr_size=N` | starts a program; the bundles and tensor directives that follow belong to it. \
`ddr_size`: bytes of DDR it uses, at least the constant image's size |
| `.input NAME ddr=ADDR shape=(D0, D1, ...) dtype=T [scale=F] [exp=E]` | an input tensor of the current program in DDR \
(row-major, dense); real value = stored × scale × 2^exp (defaults 1.0 and 0). `.output` and `.state` likewise |
| `.loc "TEXT"` | debug text for the next bundle (e.g. the IR op it came from) |
| `.data addr=ADDR dtype=T values=[v0, v1, ...]` | constant-image bytes at DDR address ADDR: the values packed \
little-endian as `T`; the list may continue over several lines until its `]` |
| `.data addr=ADDR file=PATH.npy [dtype=T]` | the array of a `.npy` file (C order), path relative to the `.s` file; \
its dtype must be one of the tensor dtypes (and equal `T` when given) |
| `.data addr=ADDR hex=HEXBYTES` | raw bytes |
| `.image_size N` | the constant image's length (default: the end of the last `.data`); bytes no `.data` sets are zero |
| `.target_digest HEX` | the 32-byte target digest the binary records (written by the disassembler); assembling for a \
target with another digest is an error |
| `.meta "JSON"` | the binary's metadata (the meta section): one JSON object, written as a JSON string holding its \
exact text (what `fastmamba compile` records for `fastmamba run`; the disassembler writes it); at most once |

Constant-image directives may appear anywhere; the image is shared by all
programs and placed at DDR address 0 of each.  Blocks must not overlap.
Names of programs and tensors: letters, digits, `_`, `.`, `-`, starting with
a letter or `_`.  Tensor dtypes: {dtypes}.
""".format(dtypes=", ".join(f"`{d}`" for d in TENSOR_DTYPES))


class AsmError(FastmambaError):
    """Malformed assembly text: `file:line: message`."""


_KEYVALUE = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)=(\([^)]*\)|\[[^\]]*\]|"(?:[^"\\]|\\.)*"|[^\s,]+)\s*')


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def _strip_comment(line: str) -> str:
    in_string = escaped = False
    for i, c in enumerate(line):
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c == "#":
            return line[:i]
    return line


MAX_INT_BITS = 64
"""No field, address, size or value of the syntax is wider: a longer integer is an error when read."""


def _shown(text: str, limit: int = 40) -> str:
    """`text` quoted for a message, cut to `limit` characters."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


def _int(text: str, what: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:  # also a decimal of more than sys.get_int_max_str_digits() digits
        raise AsmError(f"{what}: expected an integer, got {_shown(text)}") from None
    if value.bit_length() > MAX_INT_BITS:  # before any message prints it (str() refuses 4300+ digits)
        raise AsmError(f"{what}: {_shown(text)} does not fit in {MAX_INT_BITS} bits")
    return value


def _json_string(text: str, what: str) -> str:
    """One JSON double-quoted string (of UTF-8-encodable text), as `.loc`, `.meta` and `file=` take."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: [[[[... deeper than Python's stack
        value = None
    if not isinstance(value, str):
        raise AsmError(f'{what}: expected one "double-quoted string", got {_shown(text.strip())}')
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise AsmError(f"{what}: the string holds a lone surrogate ({exc.object[exc.start]!r}), not UTF-8 "
                       "text") from None
    return value


def _float(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise AsmError(f"{what}: expected a number, got {_shown(text)}") from None
    if not math.isfinite(value):
        raise AsmError(f"{what}: expected a finite number, got {_shown(text)}")
    shown = text if len(text) <= 40 else _shown(text)
    try:
        stored = struct.unpack("<f", struct.pack("<f", value))[0]
    except OverflowError:
        raise AsmError(f"{what}: {shown} overflows float32") from None
    if stored == 0 and value != 0:  # a nonzero number that float32 would store as 0
        raise AsmError(f"{what}: {shown} underflows float32 (rounds to 0)")
    return stored


def _keyvalues(text: str, allowed: tuple[str, ...], what: str, sep: str = r"\s") -> dict[str, str]:
    """Parse `k=v k=v` (sep whitespace) or `k=v, k=v` (sep comma) into a dict, rejecting unknown or repeated keys."""
    out: dict[str, str] = {}
    pos, text = 0, text.strip()
    while pos < len(text):
        m = _KEYVALUE.match(text, pos)
        if not m:
            raise AsmError(f"{what}: expected key=value at {text[pos:pos + 20]!r}")
        key, value = m.group(1), m.group(2)
        if key not in allowed:
            raise AsmError(f"{what}: unknown {'field' if sep == ',' else 'key'} {key!r} (expected: "
                           f"{', '.join(allowed)})")
        if key in out:
            raise AsmError(f"{what}: {key} given twice")
        out[key] = value
        pos = m.end()
        if pos < len(text):
            if sep == ",":
                if text[pos] != ",":
                    raise AsmError(f"{what}: expected ',' between fields at {text[pos:pos + 20]!r}")
                pos += 1
            elif not text[m.end() - 1].isspace():
                raise AsmError(f"{what}: expected whitespace at {text[pos:pos + 20]!r}")
    return out


# ---------------------------------------------------------------------------
# Instructions and bundles
# ---------------------------------------------------------------------------
def parse_instruction(text: str) -> Instruction:
    """`mnemonic field=value, ...` to an Instruction (AsmError without location on failure)."""
    from fastmamba.isa.instructions import OPS  # the live table

    text = text.strip()
    name, _, rest = text.partition(" ")
    spec = OPS.get(name)
    if spec is None:
        raise AsmError(f"unknown operation {name!r}" if name else "empty operation")
    raw = _keyvalues(rest, tuple(f.name for f in spec.fields), name, sep=",")
    missing = [f.name for f in spec.fields if f.name not in raw]
    if missing:
        raise AsmError(f"{name}: missing field(s) {', '.join(missing)}")
    args: dict[str, int | float | str] = {}
    for f in spec.fields:
        value = raw[f.name]
        what = f"{name} field {f.name}"
        if f.kind == "enum":
            if value not in f.values:
                raise AsmError(f"{what}: {value!r} is not one of {', '.join(f.values)}")
            args[f.name] = value
        elif f.kind == "f32":
            args[f.name] = _float(value, what)
        else:
            args[f.name] = _int(value, what)
    try:
        return Instruction(name, args)
    except InstructionError as exc:
        raise AsmError(str(exc)) from None


def parse_bundle(text: str) -> Bundle:
    """One bundle line (without comment): `op ... | op ... ; delay=N`, or `nop`."""
    body, semi, tail = text.partition(";")
    delay = 0
    if semi:
        m = re.fullmatch(r"\s*delay\s*=\s*(\S+)\s*", tail)
        if not m:
            raise AsmError(f"expected '; delay=N' after the operations, got {';' + tail!r}")
        delay = _int(m.group(1), "delay")
    parts = [p.strip() for p in body.split("|")]
    if parts == [NOP]:
        ops: tuple[Instruction, ...] = ()
    else:
        ops = tuple(parse_instruction(p) for p in parts)
    try:
        return Bundle(ops, delay)
    except InstructionError as exc:
        raise AsmError(str(exc)) from None


# ---------------------------------------------------------------------------
# Whole files
# ---------------------------------------------------------------------------
@dataclass
class _ProgramDraft:
    name: str
    ddr_size: int
    line: int
    bundles: list[Bundle] = field(default_factory=list)
    tensors: list[TensorDesc] = field(default_factory=list)
    debug: dict[int, str] = field(default_factory=dict)
    pending_loc: str | None = None


@dataclass
class _Assembly:
    path: str
    base_dir: Path
    programs: list[_ProgramDraft] = field(default_factory=list)
    blocks: list[tuple[int, bytes, int]] = field(default_factory=list)  # (addr, bytes, line)
    image_size: int | None = None
    digest: bytes | None = None
    meta: str | None = None


def _logical_lines(text: str):
    """(line number, text) with comments removed and bracketed lists joined across lines."""
    pending, start = "", 0
    for number, raw in enumerate(text.split("\n"), 1):
        line = _strip_comment(raw.removesuffix("\r"))
        if pending:
            pending += " " + line
        else:
            pending, start = line, number
        unquoted = _STRING.sub("", pending)
        if unquoted.count("[") > unquoted.count("]"):
            continue
        yield start, pending.strip()
        pending = ""
    if pending:
        yield start, pending.strip()


def _tensor(a: _Assembly, role: str, rest: str) -> TensorDesc:
    name, _, rest = rest.strip().partition(" ")
    if not NAME_PATTERN.fullmatch(name):
        raise AsmError(f".{role}: expected a tensor name, got {name!r}")
    kv = _keyvalues(rest, ("ddr", "shape", "dtype", "scale", "exp"), f".{role} {name}")
    for key in ("ddr", "shape", "dtype"):
        if key not in kv:
            raise AsmError(f".{role} {name}: missing {key}=")
    shape_text = kv["shape"]
    if not (shape_text.startswith("(") and shape_text.endswith(")")):
        raise AsmError(f".{role} {name}: shape must be written (D0, D1, ...), got {shape_text!r}")
    dims = [d.strip() for d in shape_text[1:-1].split(",")]
    if dims and dims[-1] == "":
        dims.pop()
    shape = tuple(_int(d, f".{role} {name} shape") for d in dims)
    if kv["dtype"] not in TENSOR_DTYPES:
        raise AsmError(f".{role} {name}: dtype {kv['dtype']!r} is not one of {', '.join(TENSOR_DTYPES)}")
    scale = _float(kv.get("scale", "1.0"), f".{role} {name} scale")
    exp = _int(kv.get("exp", "0"), f".{role} {name} exp")
    return TensorDesc(name, role, _int(kv["ddr"], f".{role} {name} ddr"), shape, kv["dtype"], scale, exp)


def _data(a: _Assembly, rest: str) -> tuple[int, bytes]:
    kv = _keyvalues(rest, ("addr", "dtype", "values", "file", "hex"), ".data")
    if "addr" not in kv:
        raise AsmError(".data: missing addr=")
    addr = _int(kv["addr"], ".data addr")
    if addr < 0:
        raise AsmError(f".data: negative address {addr}")
    sources = [k for k in ("values", "file", "hex") if k in kv]
    if len(sources) != 1:
        raise AsmError(".data needs exactly one of values=[...], file=PATH, hex=BYTES")
    dtype = kv.get("dtype")
    if dtype is not None and dtype not in TENSOR_DTYPES:
        raise AsmError(f".data: dtype {dtype!r} is not one of {', '.join(TENSOR_DTYPES)}")
    if "hex" in kv:
        if dtype is not None:
            raise AsmError(".data hex= takes no dtype")
        try:
            return addr, bytes.fromhex(kv["hex"])
        except ValueError:
            raise AsmError(".data: hex= is not an even number of hex digits") from None
    if "values" in kv:
        if dtype is None:
            raise AsmError(".data values=[...] needs dtype=")
        body = kv["values"].strip()
        if not (body.startswith("[") and body.endswith("]")):
            raise AsmError(".data values must be written [v0, v1, ...]")
        items = [v.strip() for v in body[1:-1].split(",") if v.strip()]
        fmt = TENSOR_DTYPES[dtype][1]
        out = bytearray()
        for i, item in enumerate(items):
            value = _float(item, f".data value {i}") if dtype == "f32" else _int(item, f".data value {i}")
            try:
                out += struct.pack(fmt, value)
            except struct.error:
                raise AsmError(f".data value {i} = {item} does not fit {dtype}") from None
        return addr, bytes(out)
    return addr, _npy_bytes(a, kv["file"], dtype)


def _npy_bytes(a: _Assembly, name: str, dtype: str | None) -> bytes:
    import numpy as np

    path = a.base_dir / (_json_string(name, ".data file") if name.startswith('"') else name)
    try:  # mapped, not read: a header declaring more than the file holds is an error, not an allocation
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise AsmError(f".data: cannot read {path}: {exc}") from None
    matches = [d for d, (_, fmt) in TENSOR_DTYPES.items()
               if (np.dtype(fmt).kind, np.dtype(fmt).itemsize) == (array.dtype.kind, array.dtype.itemsize)]
    if not matches:
        raise AsmError(f".data: {path} has dtype {array.dtype}, not one of {', '.join(TENSOR_DTYPES)}")
    if dtype is not None and dtype != matches[0]:
        raise AsmError(f".data: {path} holds {matches[0]}, but dtype={dtype} was given")
    return np.ascontiguousarray(array, dtype=np.dtype(TENSOR_DTYPES[matches[0]][1])).tobytes(order="C")


def _statement(a: _Assembly, line: str, number: int) -> None:
    if not line.startswith("."):
        prog = _current(a, "a bundle")
        bundle = parse_bundle(line)
        if prog.pending_loc is not None:
            prog.debug[len(prog.bundles)] = prog.pending_loc
            prog.pending_loc = None
        prog.bundles.append(bundle)
        return
    directive, _, rest = line.partition(" ")
    if directive == ".program":
        name, _, rest = rest.strip().partition(" ")
        if not NAME_PATTERN.fullmatch(name):
            raise AsmError(f".program: expected a program name, got {name!r}")
        if any(p.name == name for p in a.programs):
            raise AsmError(f".program {name}: a program of that name exists already")
        kv = _keyvalues(rest, ("ddr_size",), f".program {name}")
        if "ddr_size" not in kv:
            raise AsmError(f".program {name}: missing ddr_size=")
        _finish(a)
        a.programs.append(_ProgramDraft(name, _int(kv["ddr_size"], f".program {name} ddr_size"), number))
    elif directive[1:] in TENSOR_ROLES:
        prog = _current(a, f"{directive}")
        tensor = _tensor(a, directive[1:], rest)
        if any(t.name == tensor.name for t in prog.tensors):
            raise AsmError(f"{directive} {tensor.name}: program {prog.name} has a tensor of that name already")
        prog.tensors.append(tensor)
    elif directive == ".loc":
        prog = _current(a, ".loc")
        if prog.pending_loc is not None:
            raise AsmError(".loc: the previous .loc has no bundle yet")
        prog.pending_loc = _json_string(rest, ".loc")
    elif directive == ".data":
        addr, data = _data(a, rest)
        a.blocks.append((addr, data, number))
    elif directive == ".image_size":
        if a.image_size is not None:
            raise AsmError(".image_size given twice")
        a.image_size = _int(rest.strip(), ".image_size")
        if a.image_size < 0:
            raise AsmError(f".image_size: negative size {a.image_size}")
    elif directive == ".target_digest":
        if a.digest is not None:
            raise AsmError(".target_digest given twice")
        try:
            digest = bytes.fromhex(rest.strip())
        except ValueError:
            digest = b""
        if len(digest) != DIGEST_BYTES:
            raise AsmError(f".target_digest: expected {DIGEST_BYTES} bytes in hex")
        a.digest = digest
    elif directive == ".meta":
        if a.meta is not None:
            raise AsmError(".meta given twice")
        meta = _json_string(rest, ".meta")
        if not meta:
            raise AsmError('.meta: expected one non-empty "double-quoted string" (the JSON text), got ""')
        try:
            validate_binary(Binary((), meta=meta))
        except ContainerError as exc:
            raise AsmError(f".meta: {exc}") from None
        a.meta = meta
    else:
        raise AsmError(f"unknown directive {directive!r}")


def _current(a: _Assembly, what: str) -> _ProgramDraft:
    if not a.programs:
        raise AsmError(f"{what} outside a program (start one with .program NAME ddr_size=N)")
    return a.programs[-1]


def _finish(a: _Assembly) -> None:
    if a.programs and a.programs[-1].pending_loc is not None:
        raise AsmError(f"program {a.programs[-1].name} ends after a .loc without a bundle")


def _image(a: _Assembly, limit: int) -> bytes:
    end = max((addr + len(data) for addr, data, _ in a.blocks), default=0)
    size = end if a.image_size is None else a.image_size
    if size < end:
        raise AsmError(f"{a.path}: .image_size {size} is smaller than the end of the .data blocks ({end})")
    if size > limit:
        raise AsmError(f"{a.path}: constant image of {size} bytes exceeds {limit} bytes")
    blocks = sorted(a.blocks, key=lambda b: b[0])
    for (a0, d0, l0), (a1, _, l1) in zip(blocks, blocks[1:]):
        if a1 < a0 + len(d0):
            raise AsmError(f"{a.path}:{l1}: .data at {a1:#x} overlaps the block from line {l0} "
                           f"({a0:#x}..{a0 + len(d0):#x})")
    image = bytearray(size)
    for addr, data, _ in blocks:
        image[addr:addr + len(data)] = data
    return bytes(image)


def assemble(text: str, path: str = "<string>", target=None, base_dir: str | os.PathLike | None = None) -> Binary:
    """Assemble a whole file's text into a Binary (validated, and against `target` when given).

    `.data file=` paths are relative to `base_dir` (default: the directory of `path`).
    """
    a = _Assembly(path, Path(base_dir) if base_dir is not None else Path(path).parent)
    for number, line in _logical_lines(text):
        if not line:
            continue
        try:
            _statement(a, line, number)
        except AsmError as exc:
            raise AsmError(f"{path}:{number}: {exc}") from None
    try:
        _finish(a)
    except AsmError as exc:
        raise AsmError(f"{path}: {exc}") from None
    image = _image(a, MAX_IMAGE_BYTES if target is None else min(MAX_IMAGE_BYTES, target.ddr_bytes))
    if target is not None and a.digest is not None and a.digest != target.digest():
        name = getattr(target, "name", "")
        raise AsmError(f"{path}: .target_digest {a.digest.hex()[:16]}… differs from the target's "
                       f"{target.digest().hex()[:16]}…{f' ({name})' if name else ''}: give the target the binary "
                       "was built for (--target)")
    digest = a.digest if a.digest is not None else (target.digest() if target is not None else bytes(DIGEST_BYTES))
    programs = []
    for d in a.programs:
        prog = Program(d.name, d.ddr_size, tuple(d.bundles), tuple(d.tensors), d.debug)
        try:
            validate_binary(Binary((prog,), image, digest), target)
        except ContainerError as exc:
            raise AsmError(f"{path}:{d.line}: {exc}") from None
        programs.append(prog)
    return Binary(tuple(programs), image, digest, a.meta or "")


_DIGEST_LINE = re.compile(r"^[ \t]*\.target_digest[ \t]+([0-9A-Fa-f]{%d})[ \t]*(?:#.*)?$" % (2 * DIGEST_BYTES),
                          re.MULTILINE)


def preset_for(text: str) -> str | None:
    """The name of the preset target whose digest the text's `.target_digest` gives, if any (what the
    disassembler wrote), so a disassembled binary assembles for the target it was built for."""
    from fastmamba.isa.target import preset_with_digest

    m = _DIGEST_LINE.search(text)
    return None if m is None else preset_with_digest(bytes.fromhex(m.group(1)))


def read_source(path: str | os.PathLike) -> str:
    """The text of a `.s` file; InputError when it cannot be read as UTF-8."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None


def assemble_file(path: str | os.PathLike, target=None) -> Binary:
    """Read and assemble a `.s` file."""
    return assemble(read_source(path), str(path), target)
