"""`fastmamba compile`: checkpoint directory -> .fmb whose programs equal the golden quantized model bit for bit.

Small random transformers models (ngroups 1 and 2) are written to disk,
compiled by the CLI, and their prefill and decode programs run on the
simulator: logits of the last position and every layer's conv and SSM state
must equal compiler/quant/golden.py run with the plan the binary records,
after the prefill and after each decode step.  Also the inspection options
(--dump-dir, --print-ir-after, --time-passes) and the error paths.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from fastmamba.compiler.checkpoint import load_model
from fastmamba.compiler.cli import main
from fastmamba.compiler.quant.golden import GoldenMamba2
from fastmamba.compiler.quant.plan_io import plan_from_dict
from fastmamba.isa.container import read_fmb
from fastmamba.isa.target import load_target
from model_factory import make_config, random_hf_model, save_hf_dir
from fastmamba.simulator.runtime import SimulatorBackend

LENGTH = 6


@pytest.fixture(scope="module", params=["tiny", "groups2"])
def compiled(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    model_dir = save_hf_dir(random_hf_model(make_config(request.param), seed=5), folder / "model")
    out = folder / "model.fmb"
    assert main(["compile", "--model", str(model_dir), "-o", str(out), "--seq-len", str(LENGTH),
                 "--calibration-windows", "2"]) == 0
    return model_dir, out


def _states(prog):
    return {t.name: np.zeros(t.shape,
                             np.int16 if t.dtype == "i16" else np.int32) for t in prog.tensors if t.role == "state"}


def _same_states(result, golden_states, n_layer) -> bool:
    return all(np.array_equal(result.states[f"layers.{i}.conv"], golden_states[i][0])
               and np.array_equal(result.states[f"layers.{i}.ssm"], golden_states[i][1]) for i in range(n_layer))


def test_prefill_and_decode_equal_the_golden_model(compiled):
    model_dir, out = compiled
    binary = read_fmb(out)
    meta = json.loads(binary.meta)
    assert meta["seq_len"] == LENGTH and meta["plan"]["head"] is not None
    config, store = load_model(model_dir)
    golden = GoldenMamba2(config, store, plan_from_dict(meta["plan"]), "vc709")
    backend = SimulatorBackend(load_target("vc709"))
    backend.load(binary)
    ids = np.random.default_rng(11).integers(0, config.vocab_size, LENGTH)
    result = backend.run("prefill", {"tokens": ids.astype(np.int32), **_states(binary.program("prefill"))})
    g_logits, g_states = golden.run(ids)
    assert np.array_equal(result.outputs["logits"][0], g_logits[-1])
    assert result.outputs["next_token"][0] == np.argmax(g_logits[-1])
    assert _same_states(result, g_states, config.n_layer)
    for _ in range(3):
        token = int(result.outputs["next_token"][0])
        result = backend.run("decode", {"tokens": np.array([token], np.int32), **result.states})
        g_logits, g_states = golden.run(np.array([token]), g_states)
        assert np.array_equal(result.outputs["logits"][0], g_logits[-1])
        assert _same_states(result, g_states, config.n_layer)


def test_the_check_is_not_vacuous(compiled):
    """Another plan (one head qmul 1% off) gives other logits than the binary's."""
    from dataclasses import replace

    model_dir, out = compiled
    binary = read_fmb(out)
    plan = plan_from_dict(json.loads(binary.meta)["plan"])
    off = replace(plan, head=replace(plan.head, qmul=plan.head.qmul * 99 // 100))
    config, store = load_model(model_dir)
    ids = np.arange(LENGTH) % config.vocab_size
    backend = SimulatorBackend(load_target("vc709"))
    backend.load(binary)
    result = backend.run("prefill", {"tokens": ids.astype(np.int32), **_states(binary.program("prefill"))})
    logits, _ = GoldenMamba2(config, store, off).run(ids)
    assert not np.array_equal(result.outputs["logits"][0], logits[-1])


def test_dump_dir_print_after_and_timing(compiled, tmp_path, capsys):
    model_dir, _ = compiled
    dump = tmp_path / "stages"
    assert main(["compile", "--model", str(model_dir), "-o", str(tmp_path / "m.fmb"), "--seq-len", "3",
                 "--calibration-windows", "1", "--dump-dir", str(dump), "--print-ir-after", "plan-memory",
                 "--time-passes"]) == 0
    names = sorted(p.name for p in dump.iterdir())
    assert names[0] == "00-import.mlir" and names[-1].endswith("-schedule-vliw.mlir")
    assert any("lower-to-accel" in n for n in names) and any("calibrate" in n for n in names)
    err = capsys.readouterr().err
    assert "// -----// IR Dump After plan-memory //----- //" in err and "accel.program" in err
    assert "schedule-vliw" in err and "Total Execution Time:" in err  # the --time-passes report


def test_missing_model_is_one_line(tmp_path, capsys):
    out = tmp_path / "m.fmb"
    assert main(["compile", "--model", str(tmp_path / "nowhere"), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nowhere" in err and not out.exists()


def test_a_failing_pass_leaves_its_input_and_a_reproducer(compiled, tmp_path, capsys):
    model_dir, _ = compiled
    small = tmp_path / "small.json"
    small.write_text(json.dumps({"buffer_bytes": 4400}))
    out = tmp_path / "m.fmb"
    assert main(["compile", "--model", str(model_dir), "-o", str(out), "--seq-len", "3", "--calibration-windows", "1",
                 "--target", str(small), "--dump-dir", str(tmp_path / "d")]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("warning: calibrating on ")  # no --calibration-text given
    err = "\n".join(lines[1:])
    assert err.count("\n") == 0 and "does not fit the on-chip buffer of 4400" in err
    assert "reproduce: fastmamba opt" in err and not out.exists()
    failed = next((tmp_path / "d").glob("*plan-memory.failed-input.mlir"))
    spec = err.split("-p '", 1)[1].rstrip(")").rstrip("'")
    assert main(["opt", str(failed), "-p", spec]) == 1  # the reproducer fails the same way
    assert "does not fit the on-chip buffer of 4400" in capsys.readouterr().err


def test_the_printed_pipeline_reproduces_the_compile(compiled, tmp_path, capsys):
    """`compile --print-pipeline` prints the passes compile runs; `opt -p` of them on the imported module (the dump's
    00-import.mlir) gives the IR compile ended with, byte for byte (calibration included: its inputs are options)."""
    model_dir, _ = compiled
    args = ["--model", str(model_dir), "--seq-len", "3", "--calibration-windows", "1", "--tile-kib", "8"]
    dump = tmp_path / "stages"
    assert main(["compile", *args, "-o", str(tmp_path / "m.fmb"), "--dump-dir", str(dump)]) == 0
    capsys.readouterr()
    assert main(["compile", *args, "--print-pipeline"]) == 0
    spec = capsys.readouterr().out.strip()
    assert spec.startswith("set-target,fold-norm-weights,") and "calibrate{" in spec
    assert 'copy_to="decode"' in spec and "windows=1" in spec and "lower-to-accel{tile_kib=8}" in spec
    assert main(["opt", str(dump / "00-import.mlir"), "-p", spec, "-o", str(tmp_path / "out.mlir")]) == 0
    last = sorted(dump.iterdir())[-1]
    assert last.name.endswith("-schedule-vliw.mlir") and (tmp_path / "out.mlir").read_text() == last.read_text()
