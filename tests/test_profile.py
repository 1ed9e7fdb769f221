"""`fastmamba profile` of the bundled model: the trace read back and checked, the tables, the plots, the schema.

The bundled model is compiled once (4-token prefill, random calibration: the
profile does not depend on the scales' quality), then profiled on a short
prompt; `fastmamba run --greedy --json` on the same prompt must report the
same counters under the same keys.  Perfetto's trace processor is not used
(it downloads a binary): the Trace Event Format is checked field by field.
"""

from __future__ import annotations

import csv
import json

import pytest

from fastmamba.compiler.cli import main
from fastmamba.isa.container import read_fmb
from fastmamba.isa.instructions import OPS
from fastmamba.simulator.stats import STALL_CAUSES, UNITS
from fastmamba.simulator.trace import BUFFER_COUNTER, DDR_COUNTER, TRACKS

PROMPT = "ROMEO: hi"  # 9 bytes: 2 prefill runs of 4 tokens, 1 decode run
NEW = 3  # 2 more decode runs
PNGS = ("utilization.png", "roofline.png", "layers.png")
META_NAMES = {"process_name", "process_sort_index", "thread_name", "thread_sort_index"}


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("profile")
    fmb = folder / "default.fmb"
    assert main(["compile", "--seq-len", "4", "--calibration", "random", "--calibration-windows", "1",
                 "-o", str(fmb)]) == 0
    out = folder / "out"
    assert main(["profile", str(fmb), "--prompt", PROMPT, "--max-new-tokens", str(NEW), "-o", str(out)]) == 0
    return fmb, out


def _load(out):
    return json.loads((out / "trace.json").read_text()), json.loads((out / "profile.json").read_text())


def test_every_event_is_well_formed_trace_event_format(profiled):
    _, out = profiled
    trace, doc = _load(out)
    events = trace["traceEvents"]
    assert {e["ph"] for e in events} == {"M", "X", "C"}
    for e in events:
        assert isinstance(e["name"], str) and isinstance(e["pid"], int) and isinstance(e["args"], dict), e
        if e["ph"] == "M":
            assert e["name"] in META_NAMES and isinstance(e["tid"], int), e
        elif e["ph"] == "X":
            assert isinstance(e["tid"], int) and e["tid"] > 0, e
            assert isinstance(e["ts"], int) and isinstance(e["dur"], int) and e["ts"] >= 0 and e["dur"] >= 0, e
        else:
            assert isinstance(e["ts"], int) and e["args"], e
            assert all(isinstance(v, (int, float)) and v >= 0 for v in e["args"].values()), e
    assert len(doc["runs"]) == 5 and [r["phase"] for r in doc["runs"]] == ["prefill"] * 3 + ["decode"] * 2
    processes = {e["pid"]: e["args"]["name"] for e in events if e["name"] == "process_name"}
    assert list(processes.values()) == [r["label"] for r in doc["runs"]]
    tracks = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e["name"] == "thread_name"}
    assert set(tracks.values()) == set(TRACKS)
    debug = {p.name: p.debug for p in read_fmb(profiled[0]).programs}
    programs = {pid: run["program"] for pid, run in enumerate(doc["runs"], start=1)}
    for e in events:
        if e["ph"] == "X" and tracks[e["pid"], e["tid"]] in UNITS:  # named by opcode, the instruction in args
            assert e["name"] in OPS and e["args"]["text"].split(" ")[0] == e["name"], e
            assert {"bundle", "slot", "loc", "kind", "layer"} <= set(e["args"]), e
            # the location is the binary's debug text of that bundle (or its part for this operation)
            assert e["args"]["loc"] in debug[programs[e["pid"]]][e["args"]["bundle"]].split("; "), e
    last_end: dict = {}
    for e in sorted((e for e in events if e["ph"] == "X"), key=lambda e: (e["pid"], e["tid"], e["ts"])):
        track = (e["pid"], e["tid"])  # slices of one track never overlap (the viewer nests overlapping ones)
        assert e["ts"] >= last_end.get(track, 0), e
        last_end[track] = e["ts"] + e["dur"]


def test_each_runs_slices_and_counters_add_up_to_its_counters(profiled):
    _, out = profiled
    trace, doc = _load(out)
    events = trace["traceEvents"]
    tracks = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e["name"] == "thread_name"}
    layers_seen = set()
    for pid, run in enumerate(doc["runs"], start=1):
        c = run["counters"]
        mine = [e for e in events if e["pid"] == pid]
        for unit in UNITS:
            busy = sum(e["dur"] for e in mine if e["ph"] == "X" and tracks[pid, e["tid"]] == unit)
            assert busy == c["units"][unit]["busy_cycles"], (pid, unit)
        for cause in STALL_CAUSES:
            stalled = sum(e["dur"] for e in mine if e["ph"] == "X" and tracks[pid, e["tid"]] == "stall"
                          and e["name"] == cause)
            assert stalled == c["stalls"][cause], (pid, cause)
        ddr = [e for e in mine if e["ph"] == "C" and e["name"] == DDR_COUNTER]
        for key, total in (("read", c["ddr"]["bytes_read"]), ("written", c["ddr"]["bytes_written"])):
            moved = sum(a["args"][key] * (b["ts"] - a["ts"]) for a, b in zip(ddr, ddr[1:]))
            assert moved == pytest.approx(total, rel=1e-12) and total > 0, (pid, key)
        assert ddr[0]["ts"] == run["start"] and ddr[-1]["ts"] == run["start"] + c["cycles"]
        live = [e["args"]["bytes"] for e in mine if e["ph"] == "C" and e["name"] == BUFFER_COUNTER]
        assert live[-1] == 0 and 0 < max(live) <= 4405248  # vc709's buffer
        issue = [e for e in mine if e["ph"] == "X" and tracks[pid, e["tid"]] == "issue"]
        assert len(issue) == c["bundles"] and max(e["ts"] + e["dur"] for e in issue) == run["start"] + c["cycles"]
        layers_seen |= {e["args"]["layer"] for e in mine if e["name"] == "lin"}
    assert layers_seen == {0, 1, 2, 3, 4, 5, None}  # the bundled model's 6 layers, and the head


def test_the_tables_sum_to_the_counters(profiled):
    _, out = profiled
    _, doc = _load(out)
    with open(out / "layers.csv", newline="") as f:
        layers = list(csv.DictReader(f))
    with open(out / "ops.csv", newline="") as f:
        ops = list(csv.DictReader(f))
    assert [r["layer"] for r in layers] == ["0", "1", "2", "3", "4", "5", "-", "(drain)"]
    assert sum(int(r["cycles"]) for r in layers) == doc["counters"]["cycles"]
    for phase in ("prefill", "decode"):
        assert sum(int(r[f"{phase}_cycles"]) for r in layers) == doc[phase]["counters"]["cycles"] > 0
    for unit in UNITS:
        busy = doc["counters"]["units"][unit]["busy_cycles"]
        assert sum(int(r[f"{unit}_busy_cycles"]) for r in layers) == busy
        assert sum(int(r["busy_cycles"]) for r in ops if r["unit"] == unit) == busy
    assert sum(int(r["bundles"]) for r in layers) == doc["counters"]["bundles"]
    assert {r["kind"] for r in ops} >= {"mamba_quant.qlinear", "mamba_quant.qssm_scan", "mamba_quant.qconv1d"}
    assert doc["layers"] == [{k: (v if k == "layer" else int(v)) for k, v in r.items()} for r in layers]


def test_the_plots_are_pngs(profiled):
    from matplotlib.image import imread

    _, out = profiled
    for name in PNGS:
        image = imread(out / name)
        assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 400, name
        assert image[..., :3].std() > 0.05, name  # not blank


def test_run_json_and_sim_json_carry_the_same_counter_schema(profiled, capsys):
    fmb, out = profiled
    _, doc = _load(out)
    capsys.readouterr()
    assert main(["run", str(fmb), "--prompt", PROMPT, "--max-new-tokens", str(NEW), "--greedy", "--json"]) == 0
    ran = json.loads(capsys.readouterr().out)
    assert ran["tokens"] == doc["tokens"]
    assert ran["counters"] == doc["counters"]  # the same run, the same counters under the same keys
    for phase in ("prefill", "decode"):
        assert ran[phase]["counters"] == doc[phase]["counters"]
        assert ran[phase]["cycles"] == ran[phase]["counters"]["cycles"]  # the older keys agree
    assert main(["sim", str(fmb), "--program", "decode", "--json"]) == 0
    simmed = json.loads(capsys.readouterr().out)

    def shape(d):
        return {k: shape(v) for k, v in d.items()} if isinstance(d, dict) else type(d).__name__

    assert shape(simmed["counters"]) == shape(doc["counters"]) == shape(doc["runs"][0]["counters"])
    assert simmed["counters"]["cycles"] == simmed["cycles"]
    assert simmed["counters"]["ddr"]["bytes_read"] == simmed["ddr_bytes_read"]


def test_bad_input_is_one_line_before_any_work(tmp_path, capsys, profiled):
    fmb, _ = profiled
    assert main(["profile", str(tmp_path / "none.fmb"), "--prompt", "x"]) == 1
    assert "none.fmb: no such file" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["profile", str(fmb), "--prompt", "x", "-o", str(blocker)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a directory" in err
    assert main(["profile", str(fmb), "--prompt", "x", "--max-new-tokens", "-1", "-o", str(tmp_path / "o")]) == 1
    assert "--max-new-tokens" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_the_roofline_points_lie_under_the_roof(profiled):
    _, out = profiled
    trace, doc = _load(out)
    peak, per = doc["peak_macs_per_cycle"], doc["dma_bytes_per_cycle"]
    lin_macs = {}
    for e in trace["traceEvents"]:
        if e["name"] == "lin":  # m x k x n MACs, from the instruction's fields
            f = dict(kv.split("=") for kv in e["args"]["text"][len("lin "):].split(", "))
            assert e["args"]["macs"] == int(f["m"]) * int(f["k"]) * int(f["n"])
            program = doc["runs"][e["pid"] - 1]["program"]
            lin_macs[program] = lin_macs.get(program, 0) + e["args"]["macs"]
    assert [p["program"].split(" ")[0] for p in doc["roofline"]] == ["prefill", "decode"]
    for p in doc["roofline"]:
        assert p["lin_macs"] == lin_macs[p["program"].split(" ")[0]]
        roof = min(peak, p["lin_macs"] / p["ddr_bytes"] * per)
        assert p["lin_macs"] / p["cycles"] <= roof  # the measured point: no run beats the roof
        assert 0 < p["bound_cycles"] <= p["cycles"]  # nor DESIGN §9's bound
        assert p["lin_macs"] / p["bound_cycles"] <= peak
