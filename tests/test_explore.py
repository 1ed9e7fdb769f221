"""`fastmamba explore` (compiler/explore/): a sweep of a few points on Ray Tune, local, checked against direct
compiles; resume; the Pareto front; the command's one-line errors."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest

from fastmamba.compiler.cli import main
from fastmamba.compiler.config import DEFAULT_MODEL_DIR
from fastmamba.compiler.explore.space import parse_space
from fastmamba.compiler.explore.sweep import TRIALS_FILE, SweepOptions, pareto_front, run_sweep, write_results

L = 4
SPACE = """
base = "vc709"
[parameters]
lin_mac_trees = [32]
lin_mac_tree_width = [3, 4]
[search]
constraints = ["dsp <= 1e9"]
"""


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory):
    """Ray on one CPU for this module (its session folder under pytest's, not the suite's TMPDIR)."""
    import ray

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             _temp_dir=str(tmp_path_factory.mktemp("r")))
    yield
    ray.shutdown()


OK_POINT = {"lin_mac_trees": 32, "lin_mac_tree_width": 4}


@pytest.fixture(scope="module")
def direct():
    """The OK point's prefill and decode cycles by the independent path: `fastmamba compile`'s compile_model with
    the target as a file, the full functional simulation of the binary; and the calibration ranges it recorded."""
    from fastmamba.compiler.compile import CompileOptions, compile_model
    from fastmamba.passes.calibrate import recorded_calibration
    from fastmamba.simulator.runtime import SimulatorBackend

    target = parse_space(SPACE).target(OK_POINT)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.json"
        path.write_text(json.dumps(target.to_dict()))
        result = compile_model(DEFAULT_MODEL_DIR, CompileOptions(seq_len=L, target=str(path)),
                               calibration_random=True, log=io.StringIO())
    backend = SimulatorBackend(target)
    backend.load(result.binary)
    tokens = np.random.default_rng(3).integers(0, 100, L).astype(np.int32)
    prefill = backend.run("prefill", {"tokens": tokens})
    decode = backend.run("decode", {"tokens": tokens[:1], **prefill.states})
    return prefill.stats.cycles, decode.stats.cycles, recorded_calibration(result.module)[2]


@pytest.fixture(scope="module")
def swept(ray_local, direct, tmp_path_factory):
    from fastmamba.compiler.checkpoint import load_model
    from fastmamba.compiler.explore.trial import Workload

    workload = Workload(str(DEFAULT_MODEL_DIR), load_model(DEFAULT_MODEL_DIR)[0].to_dict(), L, direct[2])
    out = tmp_path_factory.mktemp("explore")
    space = parse_space(SPACE)
    first = run_sweep(space, workload, out, SweepOptions(workers=1))
    lines = (out / TRIALS_FILE).read_text().splitlines()
    second = run_sweep(space, workload, out, SweepOptions(workers=1))
    return space, out, first, second, lines


def test_trials_match_direct_compile_and_simulation(swept, direct):
    space, out, first, _, _ = swept
    by = {(r["reference"], r.get("lin_mac_tree_width")): r for r in first.records}
    assert [r["status"] for r in first.records] == ["ok", "failed", "ok"]
    ok = by[("", 4)]
    target = space.target(OK_POINT)
    assert (ok["prefill_cycles"], ok["decode_cycles"]) == direct[:2]
    assert ok["prefill_tokens_per_s"] == pytest.approx(L * target.clock_hz / ok["prefill_cycles"])
    assert by[("vc709", None)]["dsp"] > ok["dsp"]  # twice the MAC trees: more DSPs in the resource model


def test_failed_trial_has_its_reason(swept):
    _, _, first, _, _ = swept
    failed = [r for r in first.records if r["status"] != "ok"]
    assert len(failed) == 1 and failed[0]["lin_mac_tree_width"] == 3
    assert "lin_mac_tree_width: must be a power of two, got 3" in failed[0]["reason"]


def test_resume_does_not_rerun(swept):
    _, out, first, second, lines = swept
    assert len(lines) == 3
    assert [r["status"] for r in second.records] == [r["status"] for r in first.records]
    for a, b in zip(first.records, second.records):
        if a["status"] == "ok":
            assert b.get("cached") and b["prefill_cycles"] == a["prefill_cycles"]
    # only the failed trial (no target, so no key) was run again: one more line
    assert len((out / TRIALS_FILE).read_text().splitlines()) == 4


def test_a_resumed_trial_keeps_its_cycles_and_takes_the_current_resource_estimate(swept, direct):
    """A trial recorded under an older resource model (here: a LUT and DSP count of 1) is not compiled again, and
    its resources and speeds per resource are the model's as it is now."""
    from fastmamba.compiler.checkpoint import load_model
    from fastmamba.compiler.explore.space import resources
    from fastmamba.compiler.explore.trial import Workload, evaluate

    space, _, first, _, _ = swept
    ok = next(r for r in first.records if r["status"] == "ok" and not r["reference"])
    stale = {**ok, "lut": 1.0, "dsp": 1.0, "units": {}, "decode_tokens_per_s_per_lut": 0.0}
    workload = Workload(str(DEFAULT_MODEL_DIR), load_model(DEFAULT_MODEL_DIR)[0].to_dict(), L, direct[2])
    point = {k: ok[k] for k in OK_POINT}
    rec = evaluate(point, space, workload, done={ok["key"]: stale})
    now = resources(space.target(point))
    assert rec["cached"] and rec["prefill_cycles"] == ok["prefill_cycles"]
    assert rec["lut"] == now["total"]["lut"] > 1 and rec["dsp"] == now["total"]["dsp"] > 1
    assert set(rec["units"]) == set(now) - {"total"}
    assert rec["decode_tokens_per_s_per_lut"] == pytest.approx(rec["decode_tokens_per_s"] / rec["lut"])


def test_results_and_plots(swept, tmp_path):
    from fastmamba.compiler.explore.plots import pareto_plot, resource_plot

    space, _, first, _, _ = swept
    paths = write_results(first, space, tmp_path, {"model": "bundled"})
    rows = (tmp_path / "results.csv").read_text().splitlines()
    assert len(rows) == 4 and rows[0].startswith("lin_mac_trees,lin_mac_tree_width,reference,status")
    assert json.loads((tmp_path / "results.json").read_text())["trials"][0]["reference"] == "vc709"
    assert [p.name for p in paths][:2] == ["results.csv", "results.json"]
    pareto_plot(first.records, tmp_path / "p.png", "test")
    resource_plot(first.records[0], first.records[2], tmp_path / "r.png", "other")
    for name in ("p.png", "r.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pareto_front_on_known_points():
    points = [(10, 5), (20, 4), (20, 9), (5, 1), (30, 9), (40, 12), (15, 5)]
    # (20, 4) and (15, 5) are beaten by (10, 5); (30, 9) by (20, 9)
    assert pareto_front(points) == [3, 0, 2, 5]
    assert pareto_front([]) == []
    assert pareto_front([(1, 1), (1, 1)]) == [0]


def test_shape_names_are_the_shapes():
    from fastmamba.compiler.commands.explore import SHAPE_NAMES
    from fastmamba.compiler.explore.shapes import SHAPES

    assert SHAPE_NAMES == tuple(SHAPES)


@pytest.mark.parametrize("text, args, message", [
    ("[parameters\n", [], "is not valid TOML"),
    ("[parameters]\nlanes = [1]\n", [], "unknown target parameter(s) lanes"),
    ("[parameters]\nlin_mac_trees = { min = 8, max = 4 }\n", [], "parameter lin_mac_trees: empty range"),
    ("[parameters]\nlin_mac_trees = []\n", [], "parameter lin_mac_trees: empty range"),
    ("[parameters]\nlin_mac_trees = [8]\n[search]\nconstraints = [\"lut <= 1\"]\n", [],
     "no point of the space meets the constraints (lut <= 1)"),
    ("[parameters]\nlin_mac_trees = [8]\n[search]\nconstraints = [\"luts <= 1\"]\n", [], "names 'luts'"),
    ("[parameters]\nlin_mac_trees = [8]\n", ["--model", "7b"], "--model 7b: neither a checkpoint directory nor"),
    ("[parameters]\nlin_mac_trees = [8]\n", ["-o", "/proc/explore"], "cannot create -o /proc/explore"),
    ("[parameters]\nlin_mac_trees = [8]\n", ["--samples", "3"], "--samples takes a positive count"),
])
def test_bad_input_is_one_line(tmp_path, capsys, text, args, message):
    space = tmp_path / "space.toml"
    space.write_text(text)
    argv = ["explore", "--space", str(space), "--model", "130m", "--seq-len", "8", "-o", str(tmp_path / "o")]
    assert main(argv + args) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()


def test_missing_space_file(tmp_path, capsys):
    assert main(["explore", "--space", str(tmp_path / "no.toml"), "--model", "130m", "--seq-len", "8"]) == 1
    assert "space file not found" in capsys.readouterr().err


def test_space_values_sampling_and_constraints():
    from fastmamba.compiler.explore.space import resources
    from fastmamba.compiler.explore.sweep import choose_points

    text = """
[parameters]
lin_mac_trees = { min = 16, max = 64, step = 16 }
ssm_dstate_lanes = { min = 3, max = 20, scale = "pow2" }
clock_mhz = [200.0, 250.0, 200.0]
"""
    free = parse_space(text)
    # a DSP bound that the resource model (whatever its fit) puts between the space's points: its median
    dsps = sorted(resources(free.target(p))["total"]["dsp"] for p in free.grid())
    bound = dsps[len(dsps) // 2]
    space = parse_space(text + f'[search]\nconstraints = ["dsp <= {bound}", "lin_macs_per_cycle >= 768"]\n')
    assert space.parameters == {"lin_mac_trees": (16, 32, 48, 64), "ssm_dstate_lanes": (4, 8, 16),
                                "clock_mhz": (200.0, 250.0)}
    assert len(space.grid()) == 24
    drawn = space.sample(10, seed=1)
    assert len({tuple(p.values()) for p in drawn}) == 10 and drawn == space.sample(10, seed=1)
    points, dropped = choose_points(space, SweepOptions(searcher="grid"))
    for point in space.grid():
        target = space.target(point)
        meets = resources(target)["total"]["dsp"] <= bound and target.lin_macs_per_cycle >= 768
        assert (point in points) == meets and (repr(point) in dropped) == (not meets)
    assert points and dropped
    assert all(p["lin_mac_trees"] >= 32 for p in points)  # 6 groups x 32 trees x 4 = 768 MACs at least
