"""Fuzz targets: the three parsers of untrusted input, each a function of bytes (issue 16, item 7).

Place in the flow: test support.  tests/fuzz/run_fuzz.py drives these targets under atheris (libFuzzer,
coverage-guided); tests/test_fuzz.py runs each for a bounded, seeded number of inputs and replays
tests/fuzz/regressions/; benchmarks/bench_fuzz.py runs a million.  The contract each target checks:

- `reader`: `load_fmb` on any bytes returns a Binary or raises a FastmambaError (a ContainerError); a
  Binary it returns serializes again (`dump_fmb`) to a file that loads back equal.
- `assembler`: `assemble` on any UTF-8 text returns a Binary or raises a FastmambaError (an AsmError);
  a Binary it returns dumps, loads back equal, and its disassembly assembles back to it.
- `target`: `parse_target` on any .toml/.json bytes returns a Target (whose digest is computable) or
  raises an InputError.

Any other exception (and a failed round trip, an AssertionError) is a finding.  Hangs and memory are
the driver's part (libFuzzer's -timeout and -rss_limit_mb, and RLIMIT_AS).  `seeds(target)` gives each
target's starting inputs: real files (the examples/ programs assembled, a small compiled model, the
target presets); `reader_mutator` is the reader's custom mutator: libFuzzer's mutation, then (mostly)
the file size and the CRC-32 checksums recomputed so that a mutation reaches the checks behind them.
"""

from __future__ import annotations

import json
import random
import struct
import time
from pathlib import Path
from typing import Callable

from fastmamba.isa.assembler import assemble
from fastmamba.isa.container import FILE_HEADER, MAGIC, dump_fmb, load_fmb, reseal_fmb
from fastmamba.isa.disassembler import disassemble
from fastmamba.isa.errors import FastmambaError
from fastmamba.isa.target import PRESETS, parse_target

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SEEDS = HERE / "seeds"
REGRESSIONS = HERE / "regressions"
EXAMPLES = ROOT / "examples"

READER_TARGET = PRESETS["vc709"]
"""The reader checks files against the target the seeds were built for (so its static checks run too)."""
ASM_TARGET = PRESETS["small"]
"""The assembler builds for the small preset: its 16 MiB DDR bounds the constant image an input can ask
for (`.image_size`), so a legitimate request never reaches the 1 GB allocation limit."""

TARGET_SYNTAX = {0: "fuzz.toml", 1: "fuzz.json"}
"""The target loader's input: its first byte's low bit picks the syntax, the rest is the file's bytes."""


def _roundtrip(binary) -> None:
    data = dump_fmb(binary)
    again = load_fmb(data)
    assert again == binary, "a binary the reader accepts does not load back equal after dump_fmb"


def reader(data: bytes) -> None:
    try:
        binary = load_fmb(data, READER_TARGET)
    except FastmambaError:
        return
    _roundtrip(binary)


def assembler(data: bytes) -> None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return  # assemble_file rejects a file that is not UTF-8 before the assembler sees it
    try:
        binary = assemble(text, "fuzz.s", ASM_TARGET, base_dir=HERE / "npy")
    except FastmambaError:
        return
    _roundtrip(binary)
    again = assemble(disassemble(binary), "disassembly.s", ASM_TARGET)
    assert again == binary, "an assembled binary's disassembly does not assemble back to it"


def target(data: bytes) -> None:
    if not data:
        return
    try:
        parsed = parse_target(data[1:], TARGET_SYNTAX[data[0] & 1])
    except FastmambaError:
        return
    assert len(parsed.digest()) == 32


TARGETS: dict[str, Callable[[bytes], None]] = {"reader": reader, "assembler": assembler, "target": target}


def _raises(data: bytes) -> None:
    raise LookupError(f"canary: {len(data)} bytes")


def _allocates(data: bytes) -> None:
    bytearray(2 << 30)  # 2 GiB, over the driver's 1 GiB cap


def _hangs(data: bytes) -> None:
    time.sleep(5)  # over the driver's 1 s


CANARIES: dict[str, Callable[[bytes], None]] = {"canary-raises": _raises, "canary-allocates": _allocates,
                                                "canary-hangs": _hangs}
"""Targets that break the contract on purpose, one way each: tests/test_fuzz.py checks the driver reports them."""


# ---------------------------------------------------------------------------
# Seeds
# ---------------------------------------------------------------------------
def _asm_sources() -> dict[str, str]:
    """name -> assembly text: the examples and the small programs of tests/fuzz/seeds/."""
    files = sorted(EXAMPLES.glob("*.s")) + sorted(SEEDS.glob("*.s"))
    return {f.name: f.read_text(encoding="utf-8") for f in files}


def _first_program_code(text: str) -> str:
    """The image size and the first program of a disassembly: no data, metadata, digest, comments."""
    lines = []
    for line in text.splitlines():
        if line.startswith(".program") and any(x.startswith(".program") for x in lines):
            break
        if line.startswith((".image_size", ".program", ".input", ".output", ".state", ".loc")) \
                or line[:1].isalpha():
            lines.append(line.split("  #")[0].rstrip())
    return "\n".join(lines) + "\n"


def seeds(name: str) -> dict[str, bytes]:
    """Starting inputs of target `name` (file name -> bytes), all of them valid inputs."""
    if name in CANARIES:
        return {"canary": b"canary"}
    if name == "reader":
        return {f"{Path(name).stem}.fmb": dump_fmb(assemble(text, name, READER_TARGET, base_dir=HERE / "npy"))
                for name, text in _asm_sources().items()}
    if name == "assembler":
        # The texts over 8 KB (the compiled model's, matmul_int8.s with its data lists) are left out: every
        # execution would parse them whole, ten times slower.  The model's prefill program without its data
        # stands in for it: the bundles a compiler writes, every unit's operations.
        out = {name: text.encode() for name, text in _asm_sources().items() if len(text) <= 8192}
        out["model_tiny_prefill.s"] = _first_program_code((SEEDS / "model_tiny.s").read_text()).encode()
        return out
    if name == "target":
        out = {}
        for preset in PRESETS.values():
            out[f"{preset.name}.json"] = b"\x01" + json.dumps(preset.to_dict(), indent=1).encode()
            out[f"{preset.name}.toml"] = b"\x00" + "".join(
                f"{k} = {json.dumps(v)}\n" for k, v in preset.to_dict().items()).encode()
        out["overrides.toml"] = b"\x00" + b'base = "small"\nbuffer_bytes = 32768\nclock_mhz = 100.5\n'
        out["overrides.json"] = b"\x01" + b'{"base": "vc709", "conv_kernel_max": 3, "ssm_state_bits": 24}'
        return out
    raise KeyError(name)


# ---------------------------------------------------------------------------
# The reader's mutator
# ---------------------------------------------------------------------------
_FILE_SIZE_AT = next(offset for offset, field, _, _ in FILE_HEADER.layout() if field == "file_size")


def fix_up(data: bytes, rng: random.Random) -> bytes:
    """Most of the time, `data` with its header's file size set to its length and its checksums recomputed;
    otherwise as it is (so the size and checksum checks themselves are fuzzed too)."""
    if not data.startswith(MAGIC) or len(data) < FILE_HEADER.size or rng.random() < 0.1:
        return data
    if rng.random() < 0.8:
        data = data[:_FILE_SIZE_AT] + struct.pack("<Q", len(data)) + data[_FILE_SIZE_AT + 8:]
    return reseal_fmb(data)


def reader_mutator(mutate: Callable[[bytes, int], bytes]) -> Callable[[bytes, int, int], bytes]:
    """The custom mutator atheris calls as f(data, max_size, seed), around libFuzzer's `mutate`."""
    def mutator(data: bytes, max_size: int, seed: int) -> bytes:
        return fix_up(mutate(data, max_size), random.Random(seed))
    return mutator


# ---------------------------------------------------------------------------
# Regressions
# ---------------------------------------------------------------------------
def regressions(name: str) -> dict[Path, bytes]:
    """The saved inputs that once crashed target `name` (tests/fuzz/regressions/NAME/), as the target takes
    them: a target file's syntax byte comes from its suffix."""
    out = {}
    for path in sorted((REGRESSIONS / name).iterdir()):
        data = path.read_bytes()
        if name == "target":
            data = bytes([{".toml": 0, ".json": 1}[path.suffix]]) + data
        out[path] = data
    return out


def parse(name: str, data: bytes) -> None:
    """Run the parser of target `name` alone on `data` (no round trip): what the tests expect to fail cleanly."""
    if name == "reader":
        load_fmb(data, READER_TARGET)
    elif name == "assembler":
        assemble(data.decode("utf-8"), "fuzz.s", ASM_TARGET, base_dir=HERE / "npy")
    else:
        parse_target(data[1:], TARGET_SYNTAX[data[0] & 1])
