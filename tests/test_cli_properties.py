"""Property tests of the command line's argument handling (issue 16, item 7): any argv, a clean exit.

Hypothesis draws argv over the real subcommands and their flags (the flag names read from the parser
itself, so a flag added later is drawn too): numbers out of range, missing, empty, garbage and
unwritable files, odd strings, bytes that are not UTF-8 in paths and prompts (as Python hands them to
argv: surrogate escapes).  Each argv runs in-process through compiler/cli.py's `main` with stdout and
stderr encoded as the real streams are (stdout strict UTF-8, stderr with backslash escapes), and must end
with an exit status of 0, 1 (bad input) or 2 (usage) (never 70, an internal error), never print
"Traceback", and on failure print exactly one line on stderr naming the command.  An argv good enough to
reach long work (importing or loading a model: compile, demo, import, generate, eval) stops there: it
passed every up-front check, which is what is under test.  The inputs are drawn from a fixed seed
(derandomize) so the suite is deterministic.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastmamba.compiler import cli
from fastmamba.isa.assembler import assemble
from fastmamba.isa.container import write_fmb
from fastmamba.isa.target import load_target

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXIT_OK = {0, 1, 2}
"""The documented exit statuses for anything typed at the command line (70 is a bug, 130 an interrupt)."""

# Commands drawn, and for each flag that takes a value the kind of value (flags not listed are drawn as
# odd strings).  `--backend rtl` is left out: it builds the RTL with Verilator (minutes).
COMMANDS = ("demo", "compile", "import", "opt", "generate", "eval", "asm", "disasm", "sim", "run")
KINDS = {
    "--prompt": "text", "--max-new-tokens": "int", "--seq-len": "int", "--calibration-windows": "int",
    "--tile-kib": "int", "--prefetch": "int", "--calibration-bytes": "int", "--inject-outliers": "int",
    "--seed": "int", "--top-k": "int", "--temperature": "float", "--tail-fraction": "float",
    "--model": "model", "--target": "target", "--calibration-text": "in", "--text": "in", "--input": "input",
    "-o": "out", "--output": "out", "--dump-dir": "out", "--trace": "out", "--output-dir": "out",
    "-p": "passes", "--passes": "passes", "--print-ir-after": "passes", "--print-ir-before": "passes",
    "--backend": "backend", "--program": "program", "--calibration": "calibration", "--schemes": "schemes",
    "source": "in", "binary": "in", "input": "in",
}


class LongWork(SystemExit):
    """Raised where a command would start long work: the argv passed every check before it."""


NOT_UTF8 = st.binary(min_size=1, max_size=8).map(lambda b: (b"\xff" + b).decode("utf-8", "surrogateescape"))
ODD = st.one_of(
    st.sampled_from(["", " ", "-", "--", "-1", "0", "nan", "inf", "-inf", "1e999", "0x10", "1.5", "a,b", ",,",
                     "{", "cse{", "cse dce", "cse,,dce", "\n", "é", "ROMEO:", "--json", "=", "x=", "=y"]),
    st.text(max_size=12),
    NOT_UTF8,
).map(lambda s: s.replace("\x00", ""))
INT = st.one_of(st.integers(-3, 40), st.sampled_from([-(2**63), 2**31, 2**63, 10**6, 10**30])).map(str)
FLOAT = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5)).map(str)


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """Paths the drawn argv refers to: inputs of every kind (good and bad), outputs writable or not."""
    root = tmp_path_factory.mktemp("cli-properties")
    (root / "out").mkdir()
    (root / "adir").mkdir()
    (root / "empty.bin").write_bytes(b"")
    (root / "garbage.fmb").write_bytes(bytes(range(256)) * 4)
    (root / "text.txt").write_text("hello world, a short text\n" * 4)
    source = (EXAMPLES / "ssm_step.s").read_text()
    (root / "ssm_step.s").write_text(source)
    write_fmb(root / "ssm_step.fmb", assemble(source, "ssm_step.s", load_target("vc709")))
    (root / "bad.s").write_text(".program p ddr_size=16\nfrobnicate x=1\n")
    (root / "in.mlir").write_text("builtin.module {\n  func.func @f(%x: tensor<2x16xf32>) -> tensor<2x16xf32> {\n"
                                  "    %0 = mamba.silu %x : tensor<2x16xf32>\n"
                                  "    func.return %0 : tensor<2x16xf32>\n  }\n}\n")
    (root / "bad.mlir").write_text("builtin.module {\n  %0 = \n")
    (root / "badmodel").mkdir()
    (root / "badmodel" / "config.json").write_text("{")
    (root / "nomodel").mkdir()
    (root / "small.json").write_text(json.dumps({"base": "small"}))
    (root / "bad_target.toml").write_text("conv_kernel_max = 99\n")
    (root / "x.npy").write_bytes(b"")
    np.save(root / "x_ok.npy", np.zeros((2, 4), dtype=np.int16))
    odd_name = os.fsdecode(b"caf\xe9.s")  # a file name that is not UTF-8
    (root / odd_name).write_text(source)
    ins = [root / n for n in ("missing.fmb", "adir", "empty.bin", "garbage.fmb", "text.txt", "ssm_step.s",
                              "ssm_step.fmb", "bad.s", "in.mlir", "bad.mlir", odd_name)]
    return {
        "in": [str(p) for p in ins],
        "model": [str(root / n) for n in ("badmodel", "nomodel", "missing", "text.txt")],
        "target": ["vc709", "small", "nosuch", str(root / "small.json"), str(root / "bad_target.toml"),
                   str(root / "missing.json"), str(root / "text.txt")],
        "input": ["x=" + str(root / "x_ok.npy"), "x=" + str(root / "x.npy"), "nosuch=" + str(root / "x_ok.npy"),
                  "x", "x=", "=" + str(root / "missing.npy")],
        "out": [str(root / "out" / "a.out"), str(root / "out"), str(root / "missing-dir" / "a.out"),
                "/proc/fastmamba-x", str(root / "empty.bin"), str(root / "out" / os.fsdecode(b"\xff.out"))],
    }


def _choices(kind: str, pool: dict) -> st.SearchStrategy[str]:
    if kind in pool:
        return st.one_of(st.sampled_from(pool[kind]), ODD) if kind != "in" else st.sampled_from(pool[kind])
    return {
        "text": st.one_of(st.text(max_size=16), NOT_UTF8, st.just("")).map(lambda s: s.replace("\x00", "")),
        "int": st.one_of(INT, ODD),
        "float": st.one_of(FLOAT, ODD),
        "passes": st.one_of(st.sampled_from(["cse", "dce", "canonicalize", "nosuchpass", "cse,dce", "calibrate"]),
                            ODD),
        "backend": st.one_of(st.just("sim"), ODD),
        "program": st.one_of(st.sampled_from(["main", "prefill", "decode"]), ODD),
        "calibration": st.one_of(st.just("random"), ODD),
        "schemes": st.one_of(st.sampled_from(["fp32", "nosuch", "fp32,fastmamba"]), ODD),
    }.get(kind, ODD)


def _subparser(command: str) -> argparse.ArgumentParser:
    parser = cli.build_parser(command)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


@st.composite
def argvs(draw, pool: dict, commands: tuple[str, ...]) -> list[str]:
    command = draw(st.sampled_from(commands))
    parser = _subparser(command)
    argv = [command]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or "--debug" in action.option_strings:
            continue
        name = action.option_strings[-1] if action.option_strings else action.dest
        if not action.option_strings:  # a positional: mostly given
            if draw(st.integers(0, 9)) > 0:
                argv.append(draw(_choices(KINDS.get(name, "in"), pool)))
            continue
        required = action.required or (name in ("--model",) and command in ("generate", "eval", "compile"))
        if not required and draw(st.integers(0, 2)) > 0:
            continue
        if action.nargs == 0:
            argv.append(name)
        else:
            flag = draw(st.sampled_from(action.option_strings))
            argv += [flag, draw(_choices(KINDS.get(flag, KINDS.get(name, "odd")), pool))]
    if draw(st.integers(0, 9)) == 0:  # a stray word or flag
        argv.insert(draw(st.integers(1, len(argv))), draw(st.one_of(ODD, st.just("--no-such-flag"))))
    return argv


@pytest.fixture
def no_long_work(monkeypatch, pool):
    """Importing or loading a model (after its directory is checked) ends the command with LongWork; the
    working directory is the pool's folder (a drawn relative output path lands there)."""
    monkeypatch.chdir(Path(pool["in"][0]).parent / "out")
    from fastmamba.compiler import checkpoint
    from fastmamba.compiler.frontend import importer

    real_load = checkpoint.load_model

    def load_then_stop(*args, **kwargs):
        real_load(*args, **kwargs)
        raise LongWork("load_model")

    def stop(*args, **kwargs):
        raise LongWork("import_model")

    monkeypatch.setattr(checkpoint, "load_model", load_then_stop)
    monkeypatch.setattr(importer, "import_model", stop)


def run_cli(argv: list[str]) -> tuple[int | None, str, str]:
    """(exit status, stdout, stderr) of `fastmamba ARGV` in-process; status None: it reached long work."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", write_through=True)
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace", write_through=True)
    status: int | None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main(argv)
        except LongWork:
            status = None
        except SystemExit as exc:  # argparse: usage errors (2) and --help (0)
            status = exc.code if isinstance(exc.code, int) else 1
    return status, out.buffer.getvalue().decode("utf-8"), err.buffer.getvalue().decode("utf-8")


def check_clean(argv: list[str]) -> int | None:
    """Run `argv`; check its exit status, stderr and output; return the status (None: long work reached)."""
    status, out, err = run_cli(argv)
    shown = [a.encode("utf-8", "surrogateescape") for a in argv]
    assert "Traceback" not in out + err, f"{shown}\n{err}"
    if status is None:
        return None
    assert status in EXIT_OK, f"{shown}: exit status {status}\n{err}"
    if status != 0:
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("fastmamba"), f"{shown}: stderr is not one line:\n{err}"
    return status


FAST = ("asm", "disasm", "sim", "run", "opt")
SLOW_START = ("demo", "compile", "import", "generate", "eval")
SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@settings(max_examples=150, **SETTINGS)
@given(data=st.data())
def test_file_commands_exit_cleanly(data, pool, no_long_work):
    check_clean(data.draw(argvs(pool, FAST)))


@settings(max_examples=60, **SETTINGS)
@given(data=st.data())
def test_model_commands_exit_cleanly(data, pool, no_long_work):
    check_clean(data.draw(argvs(pool, SLOW_START)))


@pytest.mark.parametrize("argv", [
    ["asm", "ssm_step.s", "-o", os.fsdecode(b"out/\xff\xfe.fmb")],
    ["disasm", os.fsdecode(b"caf\xe9.s")],
    ["run", "ssm_step.fmb", "--prompt", os.fsdecode(b"ROMEO \xff"), "--max-new-tokens", "1"],
    ["sim", "ssm_step.fmb", "--input", "x=" + os.fsdecode(b"\xff.npy")],
    ["opt", "in.mlir", "-p", "cse,,dce"],
    ["opt", "in.mlir", "-p", "cse{"],
    ["opt", "in.mlir", "-p", "cse dce"],
    ["demo", "--prompt", os.fsdecode(b"\xc3\x28"), "--max-new-tokens", "2"],
    ["generate", "--model", "badmodel", "--prompt", "x", "--max-new-tokens", "99999999999999999999"],
    ["compile", "--model", "nomodel", "--seq-len", "-5", "-o", "out/a.fmb"],
    ["opt", "in.mlir", "--print-ir-before", "x\ny"],  # line breaks in what a message quotes
    ["opt", "in.mlir", "--print-ir-before", "\x1e"],  # (found by the property above)
    ["asm", "no\nsuch.s", "-o", "out/a.fmb"],
    ["sim", "ssm_step.fmb", "--no-such\r\nflag"],
])
def test_directed_argvs(argv, pool, no_long_work, monkeypatch):
    """A few argvs the strategies reach only by chance, run with the pool's folder as working directory."""
    monkeypatch.chdir(Path(pool["in"][0]).parent)  # the pool's names, relative
    before = sorted(os.listdir("out"))
    if check_clean(argv):
        assert sorted(os.listdir("out")) == before  # a failed command leaves nothing behind
