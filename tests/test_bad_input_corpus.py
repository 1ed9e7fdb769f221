"""The bad-input corpus: every bad input of issue 16 (and more) through the real `fastmamba` command.

tests/bad_inputs/ holds the bad files (each named for what is wrong with it: assembly, target files, IR,
model directories, not-a-binary files); the binaries with damage (a flipped bit, a damaged size field,
truncation, an old format version, another target's digest) are made here from an assembled example, so
they follow the current format.  Each case runs the installed `fastmamba` script in a subprocess (all
cases side by side) and must exit with the status given (1: bad input, 2: usage), print exactly one line
on stderr, starting `fastmamba` and holding the words given, never "Traceback", and leave no output
file behind.  A test checks every file of the corpus is used by some case.
"""

from __future__ import annotations

import struct
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fastmamba.isa.assembler import assemble
from fastmamba.isa.container import FILE_HEADER, SECTION_ENTRY, dump_fmb, load_fmb, reseal_fmb
from fastmamba.isa.target import load_target

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "bad_inputs"
FASTMAMBA = Path(sys.executable).parent / "fastmamba"
UNWRITABLE = "/proc/fastmamba-no-such-dir/out"  # neither creatable nor writable, as any user
NOT_UTF8 = b"ROMEO \xff\xfe"

# (case id, argv after `fastmamba` ({in}: the corpus folder, {bin}: the binaries made below, {tmp}: an empty
# folder for outputs), exit status, words the error line must hold).  Arguments may be bytes (not UTF-8).
CASES: list[tuple[str, list, int, tuple[str, ...]]] = [
    # --- issue 16: validation up front --------------------------------------------------------------------
    ("compile-conv-kernel-5", ["compile", "--model", "{in}/model_conv_kernel_5", "-o", "{tmp}/a.fmb"], 1,
     ("d_conv=5", "conv_kernel_max")),
    ("compile-seq-len-1e6", ["compile", "--seq-len", "1000000", "-o", "{tmp}/a.fmb"], 1, ("--seq-len", "at most")),
    ("compile-missing-out-dir", ["compile", "-o", "{tmp}/no-such-dir/a.fmb"], 1, ("does not exist",)),
    ("compile-print-ir-after", ["compile", "--print-ir-after", "nosuchpass", "-o", "{tmp}/a.fmb"], 1,
     ("nosuchpass",)),
    ("compile-bad-config", ["compile", "--model", "{in}/model_bad_config", "-o", "{tmp}/a.fmb"], 1, ("config",)),
    ("compile-no-weights", ["compile", "--model", "{in}/model_without_weights", "-o", "{tmp}/a.fmb"], 1, ()),
    ("compile-target-kernel", ["compile", "--target", "{in}/target_kernel_too_wide.toml", "-o", "{tmp}/a.fmb"], 1,
     ("conv_kernel_max",)),
    ("demo-empty-prompt", ["demo", "--prompt", ""], 1, ("--prompt is empty",)),
    # --- issue 16: unwritable outputs ----------------------------------------------------------------------
    ("asm-unwritable", ["asm", "{in}/../../examples/ssm_step.s", "-o", UNWRITABLE], 1, ("cannot write -o",)),
    ("asm-proc", ["asm", "{in}/../../examples/ssm_step.s", "-o", "/proc/x.fmb"], 1, ("cannot write -o",)),
    ("disasm-unwritable", ["disasm", "{bin}/good.fmb", "-o", UNWRITABLE], 1, ("cannot write -o",)),
    ("sim-trace-unwritable", ["sim", "{bin}/good.fmb", "--trace", UNWRITABLE], 1, ("cannot write --trace",)),
    ("sim-output-dir-unwritable", ["sim", "{bin}/good.fmb", "--output-dir", UNWRITABLE], 1,
     ("cannot create --output-dir",)),
    ("opt-unwritable", ["opt", "{in}/silu.mlir", "-o", UNWRITABLE], 1, ("cannot write -o",)),
    ("opt-dump-dir-unwritable", ["opt", "{in}/silu.mlir", "--dump-dir", UNWRITABLE], 1, ("--dump-dir",)),
    ("compile-proc", ["compile", "-o", "/proc/x.fmb"], 1, ("cannot write -o /proc/x.fmb",)),
    # --- issue 16: malformed pipelines ---------------------------------------------------------------------
    ("opt-pipeline-empty-pass", ["opt", "{in}/silu.mlir", "-p", "cse,,dce"], 1, ("pipeline",)),
    ("opt-pipeline-open-brace", ["opt", "{in}/silu.mlir", "-p", "cse{"], 1, ("pipeline",)),
    ("opt-pipeline-space", ["opt", "{in}/silu.mlir", "-p", "cse dce"], 1, ("pipeline",)),
    ("opt-pipeline-unknown", ["opt", "{in}/silu.mlir", "-p", "nosuchpass"], 1, ("nosuchpass",)),
    # --- issue 16: prompts that are not UTF-8 ---------------------------------------------------------------
    ("run-prompt-not-utf8", ["run", "{bin}/model.fmb", "--prompt", NOT_UTF8, "--max-new-tokens", "1"], 1,
     ("--prompt is not UTF-8",)),
    ("generate-prompt-not-utf8", ["generate", "--prompt", NOT_UTF8, "--max-new-tokens", "1"], 1,
     ("--prompt is not UTF-8",)),
    ("demo-prompt-not-utf8", ["demo", "--prompt", NOT_UTF8], 1, ("--prompt is not UTF-8",)),
    # --- issue 16: damaged binaries ------------------------------------------------------------------------
    ("disasm-flipped-image", ["disasm", "{bin}/flipped_image.fmb"], 1, ("checksum", "constant image")),
    ("sim-flipped-image", ["sim", "{bin}/flipped_image.fmb"], 1, ("checksum", "constant image")),
    ("sim-flipped-code", ["sim", "{bin}/flipped_code.fmb"], 1, ("checksum", "program")),
    ("disasm-damaged-size", ["disasm", "{bin}/damaged_size.fmb"], 1, ("damaged",)),
    ("disasm-damaged-size-resealed", ["disasm", "{bin}/damaged_size_resealed.fmb"], 1, ("outside",)),
    ("disasm-truncated", ["disasm", "{bin}/truncated.fmb"], 1, ("truncated",)),
    ("disasm-trailing-bytes", ["disasm", "{bin}/trailing.fmb"], 1, ("trailing",)),
    ("disasm-version-1", ["disasm", "{bin}/version1.fmb"], 1, ("version 1",)),
    ("disasm-version-99", ["disasm", "{bin}/version99.fmb"], 1, ("version 99",)),
    ("sim-other-target", ["sim", "{bin}/small_target.fmb", "--target", "vc709"], 1, ("another target",)),
    ("sim-hazard-on-small", ["sim", "{bin}/small_target.fmb", "--target", "small"], 1, ("RAW hazard",)),
    ("sim-newline-in-path", ["sim", "{in}/no\nsuch.fmb"], 1, ("no\\nsuch.fmb",)),
    ("disasm-text", ["disasm", "{in}/text_not_fmb.fmb"], 1, ("not a .fmb file",)),
    ("disasm-empty", ["disasm", "{in}/empty.fmb"], 1, ("not a .fmb file",)),
    ("disasm-directory", ["disasm", "{in}"], 1, ("cannot read",)),
    ("disasm-missing", ["disasm", "{in}/no-such.fmb"], 1, ("cannot read",)),
    # --- assembly --------------------------------------------------------------------------------------------
    ("asm-unknown-op", ["asm", "{in}/unknown_op.s", "-o", "{tmp}/a.fmb"], 1, ("unknown_op.s:2", "frobnicate")),
    ("asm-field-range", ["asm", "{in}/field_out_of_range.s", "-o", "{tmp}/a.fmb"], 1, ("count",)),
    ("asm-missing-field", ["asm", "{in}/missing_field.s", "-o", "{tmp}/a.fmb"], 1, ("missing field", "sem")),
    ("asm-unknown-directive", ["asm", "{in}/unknown_directive.s", "-o", "{tmp}/a.fmb"], 1, (".bogus",)),
    ("asm-not-utf8", ["asm", "{in}/not_utf8.s", "-o", "{tmp}/a.fmb"], 1, ("cannot read",)),
    ("asm-outside-program", ["asm", "{in}/bundle_outside_program.s", "-o", "{tmp}/a.fmb"], 1,
     ("outside a program",)),
    ("asm-tensor-outside-ddr", ["asm", "{in}/tensor_outside_ddr.s", "-o", "{tmp}/a.fmb"], 1, ("outside",)),
    ("asm-unclosed-list", ["asm", "{in}/unclosed_list.s", "-o", "{tmp}/a.fmb"], 1, ()),
    ("asm-integer-too-long", ["asm", "{in}/integer_too_long.s", "-o", "{tmp}/a.fmb"], 1, ("64 bits",)),
    ("asm-npy-header-lies", ["asm", "{in}/npy_header_lies.s", "-o", "{tmp}/a.fmb"], 1, ("truncated_header.npy",)),
    ("asm-missing", ["asm", "{in}/no-such.s", "-o", "{tmp}/a.fmb"], 1, ("cannot read",)),
    ("asm-no-output", ["asm", "{in}/unknown_op.s"], 2, ("-o",)),
    # --- target files -----------------------------------------------------------------------------------------
    ("asm-target-unknown", ["asm", "{in}/unknown_op.s", "--target", "nosuch", "-o", "{tmp}/a.fmb"], 1,
     ("unknown target",)),
    ("asm-target-syntax", ["asm", "{in}/unknown_op.s", "--target", "{in}/target_bad_syntax.toml", "-o",
                           "{tmp}/a.fmb"], 1, ("not valid TOML",)),
    ("sim-target-zero-groups", ["sim", "{bin}/good.fmb", "--target", "{in}/target_zero_groups.json"], 1,
     ("lin_groups",)),
    ("sim-target-unknown-key", ["sim", "{bin}/good.fmb", "--target", "{in}/target_unknown_key.json"], 1,
     ("no_such_parameter",)),
    ("sim-target-nested", ["sim", "{bin}/good.fmb", "--target", "{in}/target_nested_too_deep.json"], 1,
     ("nested too deeply",)),
    ("sim-target-not-table", ["sim", "{bin}/good.fmb", "--target", "{in}/target_not_a_table.json"], 1,
     ("table",)),
    ("sim-target-missing", ["sim", "{bin}/good.fmb", "--target", "{in}/no-such.toml"], 1, ("not found",)),
    # --- IR ---------------------------------------------------------------------------------------------------
    ("opt-truncated-ir", ["opt", "{in}/truncated_ir.mlir"], 1, ()),
    ("opt-not-ir", ["opt", "{in}/not_ir.mlir"], 1, ()),
    ("opt-missing", ["opt", "{in}/no-such.mlir"], 1, ("cannot read",)),
    # --- running binaries ---------------------------------------------------------------------------------------
    ("run-not-a-model", ["run", "{bin}/good.fmb", "--prompt", "x", "--max-new-tokens", "1"], 1, ()),
    ("run-negative-tokens", ["run", "{bin}/model.fmb", "--prompt", "x", "--max-new-tokens", "-1"], 1,
     ("--max-new-tokens",)),
    ("sim-no-such-program", ["sim", "{bin}/good.fmb", "--program", "nosuch"], 1, ("nosuch",)),
    ("sim-input-bad-form", ["sim", "{bin}/good.fmb", "--input", "x"], 1, ("--input",)),
    ("sim-input-missing-file", ["sim", "{bin}/good.fmb", "--input", "x={in}/no-such.npy"], 1, ("no-such.npy",)),
    ("sim-input-npy-lies", ["sim", "{bin}/good.fmb", "--input", "x={in}/truncated_header.npy"], 1,
     ("mmap length is greater than file size",)),
    ("sim-backend-choice", ["sim", "{bin}/good.fmb", "--backend", "fpga"], 2, ("--backend",)),
    # --- model commands -----------------------------------------------------------------------------------------
    ("generate-tokens-huge", ["generate", "--prompt", "x", "--max-new-tokens", "99999999999999999999999"], 1,
     ("--max-new-tokens",)),
    ("generate-bad-model", ["generate", "--model", "{in}/model_bad_config", "--prompt", "x",
                            "--max-new-tokens", "1"], 1, ()),
    ("eval-tail-fraction", ["eval", "--text", "{in}/not_ir.mlir", "--tail-fraction", "2"], 1, ("--tail-fraction",)),
    ("import-seq-len", ["import", "--seq-len", "0"], 1, ("--seq-len must be at least 1",)),
]


def _binaries(folder: Path) -> None:
    """The binaries of the corpus, from examples/ssm_step.s (and the fuzzers' small compiled model)."""
    vc709 = load_target("vc709")
    source = (REPO / "examples" / "ssm_step.s").read_text()
    good = dump_fmb(assemble(source, "ssm_step.s", vc709))
    binary = load_fmb(good)
    model = (REPO / "tests" / "fuzz" / "seeds" / "model_tiny.s").read_text()
    entries = [SECTION_ENTRY.unpack(good, FILE_HEADER.size + i * SECTION_ENTRY.size) for i in range(2)]
    image_at = next(e["offset"] for e in entries if e["kind"] == 1)
    code_at = next(e["offset"] + e["length"] - 1 for e in entries if e["kind"] == 2)  # the last code byte
    length_at = FILE_HEADER.size + SECTION_ENTRY.size + 16  # section 1's length field

    def flipped(at: int) -> bytes:
        return good[:at] + bytes([good[at] ^ 0x10]) + good[at + 1:]

    damaged_size = good[:length_at] + struct.pack("<Q", 1 << 40) + good[length_at + 8:]
    made = {
        "good.fmb": good,
        "model.fmb": dump_fmb(assemble(model, "model_tiny.s", vc709)),
        "flipped_image.fmb": flipped(image_at + 3),
        "flipped_code.fmb": flipped(code_at),
        "damaged_size.fmb": damaged_size,
        "damaged_size_resealed.fmb": reseal_fmb(damaged_size),
        "truncated.fmb": good[:len(good) // 2],
        "trailing.fmb": good + bytes(8),
        "version1.fmb": good[:8] + struct.pack("<I", 1) + good[12:],
        "version99.fmb": good[:8] + struct.pack("<I", 99) + good[12:],
        "small_target.fmb": dump_fmb(assemble(source, "ssm_step.s", load_target("small"))),
    }
    assert binary.const_image and image_at < code_at
    for name, data in made.items():
        (folder / name).write_bytes(data)


def _arg(a, paths: dict[str, str]) -> bytes:
    if isinstance(a, bytes):
        return a
    for key, value in paths.items():
        a = a.replace("{" + key + "}", value)
    return a.encode()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Every case run side by side: case id -> (status, stdout, stderr, files left in its output folder)."""
    root = tmp_path_factory.mktemp("corpus")
    (root / "bin").mkdir()
    _binaries(root / "bin")

    def run(case):
        name, argv, _, _ = case
        tmp = root / "out" / name
        tmp.mkdir(parents=True)
        paths = {"in": str(CORPUS), "bin": str(root / "bin"), "tmp": str(tmp)}
        proc = subprocess.run([bytes(FASTMAMBA), *(_arg(a, paths) for a in argv)], capture_output=True,
                              cwd=tmp, timeout=600)
        left = sorted(p.name for p in tmp.iterdir())
        return name, (proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"),
                      left)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(run, CASES))


@pytest.mark.parametrize("name, argv, status, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input(name, argv, status, words, results):
    got, out, err, left = results[name]
    assert "Traceback" not in out + err, err
    lines = err.splitlines()
    assert len(lines) == 1, f"exit {got}, stderr:\n{err}"
    assert got == status, lines[0]
    assert lines[0].startswith("fastmamba"), lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    assert left == [], f"left behind: {left}"


def test_every_corpus_file_is_used():
    used = " ".join(a for _, argv, _, _ in CASES for a in argv if isinstance(a, str))
    sources = [p.read_bytes() for p in CORPUS.glob("*.s")]  # .data file= names the .npy files
    unused = [p.name for p in sorted(CORPUS.iterdir())
              if "{in}/" + p.name not in used and not any(p.name.encode() in text for text in sources)]
    assert unused == []


def test_case_ids_are_unique():
    assert len({c[0] for c in CASES}) == len(CASES)
