"""Bad input at the command line is one line naming the problem, early, and leaves no file behind (issue 16).

Each case runs `fastmamba` in-process (compiler.cli.main) on a tiny model from tests/model_factory.py and
asserts the exit status, exactly one line on stderr naming the problem, no "Traceback", and no output file
(nor a temporary one) left.  Cases that must fail before any long work run with the model import replaced by
a function that fails the test, so a check that comes late is a test failure, not a slow pass.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from fastmamba.compiler import cli
from fastmamba.compiler.cli import main
from fastmamba.compiler.compile import CompileOptions, check_model_fits, check_options, max_seq_len
from fastmamba.compiler.config import Mamba2Config
from fastmamba.isa.errors import InputError
from fastmamba.isa.fileio import write_atomic
from fastmamba.isa.target import load_target
from model_factory import make_config, random_hf_model, save_hf_dir

UNWRITABLE = Path("/proc/fastmamba-no-such-dir")  # neither creatable nor writable, as any user
NOT_UTF8 = b"ROMEO \xff\xfe".decode("utf-8", "surrogateescape")  # what Python makes of raw bytes in argv


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {name: save_hf_dir(random_hf_model(make_config("tiny", **over)), root / name)
            for name, over in (("tiny", {}), ("k5", {"d_conv": 5}))}


@pytest.fixture(scope="module")
def binary(models, tmp_path_factory):
    """The tiny model compiled (prefill of 8 tokens), calibrated on random tokens asked for explicitly."""
    path = tmp_path_factory.mktemp("bin") / "tiny.fmb"
    assert main(["compile", "--model", str(models["tiny"]), "--seq-len", "8", "--calibration", "random",
                 "-o", str(path)]) == 0
    return path


@pytest.fixture
def no_long_work(monkeypatch):
    """The model import (the first long stage of compile and demo) fails the test if it is reached."""
    from fastmamba.compiler.frontend import importer

    def refuse(*args, **kwargs):
        raise AssertionError("the import started: the bad input was not caught up front")

    monkeypatch.setattr(importer, "import_model", refuse)


def fails(capsys, argv: list[str], status: int, *words: str, left: Path | None = None) -> str:
    """Run `argv`; check the exit status, one stderr line holding `words`, no traceback, no file at `left`."""
    assert main(argv) == status
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert len(lines) == 1, err
    for word in words:
        assert word in lines[0], lines[0]
    if left is not None:
        assert not left.exists()
        if left.parent.is_dir():
            assert not [p for p in left.parent.iterdir() if p.name.startswith(f".{left.name}.")]
    return lines[0]


def compile_args(model: Path, out: Path, *extra: str) -> list[str]:
    return ["compile", "--model", str(model), "--seq-len", "8", "-o", str(out), *extra]


# --- A. validation up front --------------------------------------------------------------------------------

def test_conv_kernel_beyond_the_target(models, tmp_path, capsys, no_long_work):
    out = tmp_path / "k5.fmb"
    line = fails(capsys, compile_args(models["k5"], out), 1, "d_conv=5", "2 .. 4", "conv_kernel_max", left=out)
    assert line.startswith("fastmamba compile: error: ")


@pytest.mark.parametrize("option, value, words", [
    ("--tile-kib", "-1", ("--tile-kib", "[0, 4302]", "-1")),
    ("--tile-kib", "5000", ("--tile-kib", "5000")),
    ("--prefetch", "0", ("--prefetch", "at least 1")),
    ("--seq-len", "0", ("--seq-len", "at least 1")),
    ("--calibration-windows", "0", ("--calibration-windows",)),
    ("--print-ir-after", "nosuchpass", ("--print-ir-after", "nosuchpass", "schedule-vliw")),
])
def test_option_out_of_range_is_named(option, value, words, models, tmp_path, capsys, no_long_work):
    out = tmp_path / "a.fmb"
    fails(capsys, compile_args(models["tiny"], out, option, value), 1, *words, left=out)


def test_longest_seq_len_is_stated(models, tmp_path, capsys, no_long_work):
    config = make_config("tiny")
    target = load_target("vc709")
    # The SSM step's operands for every token: x|B|C int16 (conv_dim = 64 + 2*8 = 80), y int32 (d_inner = 64).
    assert (config.conv_dim, config.d_inner) == (80, 64)
    longest = 4_405_248 // (2 * 80 + 4 * 64)
    assert target.buffer_bytes == 4_405_248 and max_seq_len(config, target) == longest == 10589
    out = tmp_path / "a.fmb"
    argv = ["compile", "--model", str(models["tiny"]), "--seq-len", "1000000", "-o", str(out)]
    fails(capsys, argv, 1, "--seq-len 1000000", f"at most {longest} tokens", "vc709", left=out)
    fails(capsys, argv[:4] + [str(longest + 1)] + argv[5:], 1, f"at most {longest}", left=out)


def test_longest_seq_len_is_bounded_by_the_token_fields():
    big = Mamba2Config(d_model=4, n_layer=1, vocab_size=16, d_state=2, headdim=2)
    assert max_seq_len(big, load_target("vc709")) == (1 << 16) - 1  # lin.m, conv.t, ssm.t are 16 bits


@pytest.mark.parametrize("overrides, words", [
    (dict(d_conv=5), "d_conv=5 does not fit target vc709: its CONV unit takes kernels of 2 .. 4"),
    (dict(d_conv=1), "d_conv=1 does not fit"),
    # 512 heads in one group: lower-to-accel would fail with "ssm: field h = 512 outside [0, 255]"
    (dict(d_model=32, expand=16, headdim=1, d_state=2), "heads per group (nheads / ngroups) = 512 does not fit "
                                                        "the ssm.h and ssm.hpg fields"),
    (dict(vocab_size=70000), "vocab_size = 70000 does not fit the row pitch fields"),
    (dict(d_state=70000), "d_state = 70000 does not fit the ssm.n field: at most 65535"),
])
def test_model_dimensions_against_fields_and_target(overrides, words):
    config = make_config("tiny", **overrides)
    with pytest.raises(InputError, match=re.escape(words)):
        check_model_fits(config, load_target("vc709"))


def test_the_tiny_models_fit():
    for name in ("tiny", "groups2", "expand3_k3", "groups4_k2"):
        check_model_fits(make_config(name), load_target("vc709"))
        check_model_fits(make_config(name), load_target("small"))


def test_check_options_names_each_option():
    target = load_target("vc709")
    check_options(CompileOptions(), target)
    with pytest.raises(InputError, match="--prefetch"):
        check_options(CompileOptions(prefetch=0), target)
    with pytest.raises(InputError, match="--tile-kib"):
        check_options(CompileOptions(tile_kib=-1), target)


@pytest.mark.parametrize("where", ["missing", "proc"])
def test_unwritable_output_before_the_compile(where, models, tmp_path, capsys, no_long_work):
    out = tmp_path / "no-such-dir" / "a.fmb" if where == "missing" else Path("/proc/x.fmb")
    words = ("does not exist",) if where == "missing" else ("cannot write -o /proc/x.fmb",)
    fails(capsys, compile_args(models["tiny"], out), 1, *words, left=out)


def test_unwritable_dump_dir_before_the_compile(models, tmp_path, capsys, no_long_work):
    out = tmp_path / "a.fmb"
    fails(capsys, compile_args(models["tiny"], out, "--dump-dir", str(UNWRITABLE / "dd")), 1,
          "cannot create --dump-dir", left=out)


@pytest.mark.parametrize("argv, words", [
    (["demo", "--prompt", ""], ("--prompt is empty",)),
    (["demo", "--prompt", NOT_UTF8], ("--prompt is not UTF-8", "0xff at offset 6")),
    (["demo", "--max-new-tokens", "-1"], ("--max-new-tokens", "-1")),
    (["demo", "--seq-len", "0"], ("--seq-len must be at least 1",)),
    (["demo", "--seq-len", "100000"], ("--seq-len 100000 does not fit: at most",)),
    (["demo", "-o", str(UNWRITABLE / "d.fmb")], ("cannot write --output",)),
])
def test_demo_rejects_before_compiling(argv, words, capsys, no_long_work):
    fails(capsys, argv, 1, *words)


# --- B. calibration provenance -----------------------------------------------------------------------------

def test_explicit_random_calibration_is_recorded(binary, capsys):
    assert main(["disasm", "--meta", str(binary)]) == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["calibration"] == "32 random tokens of seed 0"  # 8 tokens x 4 windows (the calibrate pass's record)
    assert meta["seq_len"] == 8 and meta["config"]["d_conv"] == 4


def test_implicit_calibration_is_a_warning_naming_it(models, tmp_path, capsys):
    out = tmp_path / "a.fmb"
    assert main(compile_args(models["tiny"], out, "--calibration-windows", "1")) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "choose with --calibration-text FILE or --calibration random" in warnings[0]
    assert main(["disasm", "--meta", str(out)]) == 0
    used = json.loads(capsys.readouterr().out)["calibration"]
    assert warnings[0].startswith(f"warning: calibrating on {used} (")  # then why these tokens
    assert "no calibration text given or found" in warnings[0] or "no --calibration-text given" in warnings[0]


def test_calibration_text_and_random_conflict(models, tmp_path, capsys, no_long_work):
    text = tmp_path / "cal.txt"
    text.write_text("x" * 100)
    out = tmp_path / "a.fmb"
    fails(capsys, compile_args(models["tiny"], out, "--calibration", "random", "--calibration-text", str(text)),
          1, "not both", left=out)


def test_meta_of_an_assembled_binary_is_empty(tmp_path, capsys):
    src = tmp_path / "p.s"
    src.write_text(".program main ddr_size=0x100\nctl.halt\n")
    assert main(["asm", str(src), "-o", str(tmp_path / "p.fmb")]) == 0
    assert main(["disasm", "--meta", str(tmp_path / "p.fmb")]) == 0
    assert json.loads(capsys.readouterr().out) == {}


# --- C. unwritable outputs, non-UTF-8 prompts, Ctrl-C -------------------------------------------------------

def test_unwritable_outputs_of_every_command(binary, tmp_path, capsys):
    target = UNWRITABLE / "x"
    fails(capsys, ["disasm", str(binary), "-o", str(target)], 1, "cannot write -o", str(target))
    text = tmp_path / "tiny.s"
    assert main(["disasm", str(binary), "-o", str(text)]) == 0
    fails(capsys, ["asm", str(text), "-o", str(target)], 1, "cannot write -o")
    fails(capsys, ["asm", str(text), "-o", "/proc/x.fmb"], 1, "cannot write -o /proc/x.fmb")
    fails(capsys, ["sim", str(binary), "--program", "decode", "--trace", str(target)], 1, "cannot write --trace")
    fails(capsys, ["sim", str(binary), "--program", "decode", "--output-dir", str(target)], 1,
          "cannot create --output-dir")
    ir = tmp_path / "in.mlir"
    ir.write_text("builtin.module {\n}\n")
    fails(capsys, ["opt", str(ir), "-o", str(target)], 1, "cannot write -o")
    fails(capsys, ["opt", str(ir), "--dump-dir", str(target)], 1, "cannot create --dump-dir")


def test_write_atomic_turns_os_errors_into_one_input_error(tmp_path, monkeypatch):
    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(InputError, match=r"cannot write -o .*a\.bin: No space left on device"):
        write_atomic(tmp_path / "a.bin", b"data", "-o ")
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary


@pytest.mark.parametrize("command", ["run", "generate"])
def test_prompt_not_utf8(command, binary, models, capsys):
    argv = (["run", str(binary)] if command == "run" else ["generate", "--model", str(models["tiny"])])
    fails(capsys, argv + ["--prompt", NOT_UTF8, "--max-new-tokens", "1"], 1, "--prompt is not UTF-8",
          "0xff at offset 6")


def test_ctrl_c_during_start_up(monkeypatch, capsys):
    def interrupted(name):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.importlib, "import_module", interrupted)
    fails(capsys, ["compile", "--help"], 130, "fastmamba: interrupted")


def test_a_seq_len_over_the_bound_does_not_fit_the_planner_either(models, tmp_path, monkeypatch, capsys):
    """The bound is an upper bound: with the check lifted, one token more fails in plan-memory (the buffer
    planner itself), so the early error never refuses a length that would have compiled."""
    from fastmamba.compiler import compile as compile_module

    small = tmp_path / "small.json"
    small.write_text(json.dumps({"buffer_bytes": 16384}))
    longest = max_seq_len(make_config("tiny"), load_target(str(small)))
    assert longest == 16384 // 416 == 39
    out = tmp_path / "a.fmb"
    argv = ["compile", "--model", str(models["tiny"]), "--target", str(small), "--calibration", "random",
            "--calibration-windows", "1", "-o", str(out), "--seq-len", str(longest + 1),
            "--dump-dir", str(tmp_path / "stages")]  # where the failing pass's input IR is kept
    fails(capsys, argv, 1, f"at most {longest} tokens", left=out)
    assert not (tmp_path / "stages").exists()  # checked writable, not created, before the error
    monkeypatch.setattr(compile_module, "max_seq_len", lambda config, target: 1 << 16)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "plan-memory" in err and "does not fit the on-chip buffer of 16384" in err and not out.exists()
