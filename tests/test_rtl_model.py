"""Compiled models on the RTL: `fastmamba run --backend rtl` and `fastmamba demo --backend rtl`.

Place in the flow: tests of compiler/runner.py's backends (make_backend), the RTL plumbing of
compiler/commands/run.py and demo.py, and hardware/backend.py's per-program instruction memory.  A
DMA-only toy model (tests/toy_compiled.py's, its `vec.argmax` replaced by an `ldg` of a next-token
table) goes through prefill chunks and decode on the RTL and on the simulator: the same tokens, states and
counters, `--check` bit exact, plus the RTL's clock count.  Whole models: the bundled model compiled for
`small` (4 generated tokens here; benchmarks/bench_rtl_model.py --check runs 16 and more) and random
transformers configs (ngroups 1 and 2, d_conv 2, 3 and 4, expand 2 and 3) through prefill and decode on the RTL,
every run bit exact with the golden model.  The error paths: a vc709 binary, and a machine built without a
unit (its operations refused before the first run or compile).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import fastmamba.compiler.commands.run as run_command
from fastmamba.compiler.cli import main
from fastmamba.compiler.runner import generate, make_backend
from fastmamba.hardware import machine
from fastmamba.hardware.backend import IMEM_WORDS, IMEM_WORDS_MAX, rtl_ops
from fastmamba.isa.container import Binary, Program, TensorDesc, write_fmb
from fastmamba.isa.errors import InputError
from fastmamba.isa.instructions import OPS, Bundle, Instruction
from fastmamba.isa.target import PRESETS, SMALL
from toy_compiled import CONV_SHAPE, SSM_SHAPE, VOCAB, WINDOW, ToyGolden, greedy_continuation, meta, peak, table

PROMPT = "ROMEO:"  # 6 bytes: one prefill chunk of 4, two decode runs
# DDR: the logits table, the next-token table, then the tensors; BUF: the window at 0, logits, next token.
ROW = 4 * VOCAB
NEXT_TABLE = VOCAB * ROW
TOKENS = NEXT_TABLE + ROW
LOGITS, NEXT, CONV, SSM = TOKENS + 64, TOKENS + 64 + ROW, TOKENS + 128 + ROW, TOKENS + 192 + ROW
LOG_BUF, ARG_BUF = 64, 64 + ROW


def _dma(op: str, buf: int, ddr: int, nbytes: int, sem: int) -> Instruction:
    return Instruction(op, dict(buf=buf, ddr=ddr, rows=1, row_bytes=nbytes, ddr_stride=nbytes, buf_stride=nbytes,
                                sem=sem))


def _gather(buf: int, ddr: int, row_bytes: int, sem: int) -> Bundle:
    """Row window[0] (the oldest token, an i32 at buffer 0) of a [VOCAB, row_bytes] DDR table."""
    return Bundle((Instruction("ldg", dict(buf=buf, ddr=ddr, idx=0, rows=1, row_bytes=row_bytes,
                                           ddr_stride=row_bytes, buf_stride=row_bytes, limit=VOCAB, sem=sem)),))


def _wait(sem: int, count: int) -> Bundle:
    return Bundle((Instruction("ctl.wait", dict(sem=sem, count=count)),))


def dma_program(name: str, n: int) -> Program:
    """toy_compiled's model feeding n tokens, with DMA only: the logits row and the next token gathered."""
    keep = 4 * (WINDOW - n)
    loads = ([_dma("ld", 0, SSM + 4 * n, keep, 1)] if keep else []) + [_dma("ld", keep, TOKENS, 4 * n, 1)]
    bundles = [Bundle((op,)) for op in loads] + [_wait(1, len(loads))]
    bundles += [_gather(LOG_BUF, 0, ROW, 3), _gather(ARG_BUF, NEXT_TABLE, 4, 4), _wait(3, 1), _wait(4, 1),
                Bundle((_dma("st", ARG_BUF, NEXT, 4, 2),)), Bundle((_dma("st", LOG_BUF, LOGITS, ROW, 2),)),
                Bundle((_dma("st", 0, SSM, 4 * WINDOW, 2),)), _wait(2, 3), Bundle((Instruction("ctl.halt"),))]
    tensors = (TensorDesc("tokens", "input", TOKENS, (n,), "i32"),
               TensorDesc("logits", "output", LOGITS, (1, VOCAB), "f32"),
               TensorDesc("next_token", "output", NEXT, (1,), "i32"),
               TensorDesc("layers.0.conv", "state", CONV, CONV_SHAPE, "i16"),
               TensorDesc("layers.0.ssm", "state", SSM, SSM_SHAPE, "i32"))
    return Program(name, SSM + 64, tuple(bundles), tensors)


def dma_binary(seq_len: int = 4) -> Binary:
    image = table().tobytes() + np.array([peak(r) for r in range(VOCAB)], np.int32).tobytes()
    doc = meta(seq_len, target="small")
    return Binary((dma_program("prefill", seq_len), dma_program("decode", 1)), image, SMALL.digest(), json.dumps(doc))


@pytest.fixture
def fmb(tmp_path):
    path = tmp_path / "toy.fmb"
    write_fmb(path, dma_binary(), SMALL)
    return path


def _run(capsys, *argv):
    code = main(["run", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_rtl_generates_what_the_simulator_does():
    """The runner over RtlBackend and over SimulatorBackend: same tokens, states, counters; the RTL's clock count."""
    results = {}
    for kind in ("sim", "rtl"):
        backend = make_backend(kind, SMALL)
        backend.load(dma_binary())
        results[kind] = generate(backend, list(b"ROMEO:"), 5, check=ToyGolden())
    sim, rtl = results["sim"], results["rtl"]
    assert rtl.tokens == sim.tokens == greedy_continuation(list(b"ROMEO:"), 5)
    assert rtl.check.bit_exact and rtl.check.runs_checked == 1 + 2 + 4
    for name in sim.states:
        assert np.array_equal(rtl.states[name], sim.states[name])
    for phase in ("prefill", "decode"):
        s, r = getattr(sim, phase).to_dict(), getattr(rtl, phase).to_dict()
        assert r.pop("rtl_cycles") == s["cycles"] + s["runs"]  # each run: the clock that sees `done`
        assert "rtl_cycles" not in s
        for key in ("cycles", "busy_cycles", "ddr_bytes", "bundles", "ops", "stalls", "programs", "tokens"):
            assert r[key] == s[key], (phase, key)


def test_run_backend_rtl(fmb, capsys, monkeypatch):
    monkeypatch.setattr(run_command, "build_golden", lambda meta, config, model_dir, target: ToyGolden())
    code, out, err = _run(capsys, fmb, "--prompt", PROMPT, "--max-new-tokens", 5, "--greedy", "--check",
                          "--backend", "rtl")
    assert code == 0 and err == "", err
    assert "RTL clock cycles" in out and "check: bit exact with the golden model (7 runs compared)" in out
    code, out, err = _run(capsys, fmb, "--prompt", PROMPT, "--max-new-tokens", 5, "--greedy", "--json",
                          "--backend", "rtl")
    rtl = json.loads(out)
    code2, out, _ = _run(capsys, fmb, "--prompt", PROMPT, "--max-new-tokens", 5, "--greedy", "--json")
    sim = json.loads(out)
    assert code == code2 == 0 and rtl["text"] == sim["text"] and rtl["tokens"] == sim["tokens"]
    assert rtl["decode"]["rtl_cycles"] == sim["decode"]["cycles"] + sim["decode"]["runs"]
    assert set(rtl["prefill"]) == set(sim["prefill"]) | {"rtl_cycles"}


def test_run_backend_rtl_refusals(tmp_path, capsys, monkeypatch):
    from toy_compiled import TARGET, toy_binary

    vc709 = tmp_path / "vc709.fmb"
    write_fmb(vc709, toy_binary(4), TARGET)
    code, out, err = _run(capsys, vc709, "--prompt", PROMPT, "--max-new-tokens", 1, "--backend", "rtl")
    assert code == 1 and out == "" and err.count("\n") == 1
    assert "target vc709: the RTL moves whole bytes per DMA beat: dma_bytes_per_cycle must be a power of two" in err
    with monkeypatch.context() as mp:  # toy_compiled's programs use vec.argmax: refused before the first run
        mp.delitem(machine.UNITS, "VEC")
        binary = toy_binary(4, meta_doc=meta(4, target="small"))
        small = tmp_path / "argmax.fmb"
        write_fmb(small, Binary(binary.programs, binary.const_image, SMALL.digest(), binary.meta), SMALL)
        code, out, err = _run(capsys, small, "--prompt", PROMPT, "--max-new-tokens", 1, "--backend", "rtl")
        assert code == 1 and out == "" and err == ("fastmamba run: error: program prefill: bundle 5, slot VEC: "
                                                   "not implemented in the RTL yet: vec.argmax\n")
    with pytest.raises(InputError, match="unknown backend 'fpga'"):
        make_backend("fpga", SMALL)
    with pytest.raises(InputError, match="^target vc709: "):
        make_backend("rtl", PRESETS["vc709"])


def test_demo_backend_rtl_is_refused_before_compiling_when_a_unit_is_missing(capsys, monkeypatch):
    monkeypatch.delitem(machine.UNITS, "VEC")  # a machine built without the VEC unit
    missing = [op for op in OPS if op not in rtl_ops()]
    assert missing == ["vec", "vec.argmax"]
    assert main(["demo", "--backend", "rtl"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == ("fastmamba demo: error: --backend rtl: not implemented in the RTL yet: "
                                 "vec, vec.argmax\n")


def test_instruction_memory_is_sized_per_program():
    from fastmamba.hardware.backend import imem_words

    assert imem_words(1) == imem_words(IMEM_WORDS) == IMEM_WORDS
    assert imem_words(IMEM_WORDS + 1) == 2 * IMEM_WORDS and imem_words(3 * IMEM_WORDS) == 4 * IMEM_WORDS
    with pytest.raises(InputError, match=f"the program has {IMEM_WORDS_MAX + 1} instruction words"):
        imem_words(IMEM_WORDS_MAX + 1)


# --- whole models ------------------------------------------------------------------------------------------------
def test_every_operation_runs_on_the_rtl():
    assert rtl_ops() == set(OPS)


def test_bundled_model_on_the_rtl(tmp_path_factory, capsys):
    """The bundled model on small: a prompt through prefill and decode, 4 tokens generated (3 fed back), every run
    bit exact with the golden model on the RTL (tests/test_compile_small.py checks the simulator).  Each decode
    run is ~280k clocks of the whole machine: the issue's 16 tokens and more are benchmarks/bench_rtl_model.py
    --check's, outside the suite."""
    from small_models import bundled_small

    fmb = bundled_small(tmp_path_factory)
    capsys.readouterr()
    code, out, err = _run(capsys, fmb, "--prompt", PROMPT, "--max-new-tokens", 4, "--greedy", "--check", "--json",
                          "--backend", "rtl")
    assert code == 0, err
    rtl = json.loads(out)
    assert rtl["bit_exact"] is True and rtl["runs_checked"] == 1 + 2 + 3 and len(rtl["tokens"]) == 4
    assert rtl["prefill"]["programs"] == {"prefill": 1, "decode": 2} and rtl["decode"]["programs"] == {"decode": 3}
    assert rtl["prefill"]["rtl_cycles"] == rtl["prefill"]["cycles"] + 3  # the clock that sees `done`, per run


@pytest.mark.parametrize("name, overrides", [
    ("groups2", {"d_conv": 2}),  # ngroups 2, expand 2, d_conv 2
    ("expand3_k3", {"vocab_size": 256}),  # ngroups 1, expand 3, d_conv 3
    ("groups2", {"expand": 3}),  # ngroups 2, expand 3, d_conv 4
])
def test_random_configs_on_the_rtl(name, overrides, tmp_path, capsys):
    from model_factory import make_config, random_hf_model, save_hf_dir

    model = save_hf_dir(random_hf_model(make_config(name, n_layer=1, **overrides), seed=5), tmp_path / "model")
    fmb = tmp_path / "m.fmb"
    assert main(["compile", "--model", str(model), "--target", "small", "--calibration", "random",
                 "--calibration-windows", "1", "-o", str(fmb)]) == 0
    capsys.readouterr()
    code, out, err = _run(capsys, fmb, "--prompt", "But soft, what light", "--max-new-tokens", 4, "--greedy",
                          "--check", "--json", "--backend", "rtl")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["bit_exact"] is True and len(doc["tokens"]) == 4 and doc["decode"]["rtl_cycles"] > 0
