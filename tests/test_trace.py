"""simulator.trace: events named by opcode with their IR location, stall slices, DDR and buffer counters, a run
stopped by a hazard, several runs on one timeline.

Programs are real ISA bundles (the assembler's syntax) run by the engine on vc709; every figure the trace shows
is compared with the run's counters or with a hand computation from the program.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from fastmamba.compiler.cli import main
from fastmamba.isa.assembler import parse_bundle
from fastmamba.isa.formatting import format_instruction
from fastmamba.isa.target import load_target
from fastmamba.simulator.effects import MachineState, SimulationError
from fastmamba.simulator.engine import simulate
from fastmamba.simulator.stats import STALL_CAUSES, UNITS
from fastmamba.simulator.trace import (BUFFER_COUNTER, DDR_COUNTER, TRACKS, Timeline, Trace, op_kind,
                                       op_locations)

TARGET = load_target("vc709")
# A (i8 [16, 64]) at buf 0, W (16 rows of 64) at 0x400, C = A @ W^T (i32 [16, 16], rows 256 B apart) at 0x1000.
PROGRAM = [
    "ld buf=0x0, ddr=0x0, rows=1, row_bytes=1024, ddr_stride=1024, buf_stride=1024, sem=1",
    "ld buf=0x400, ddr=0x400, rows=16, row_bytes=64, ddr_stride=64, buf_stride=64, sem=2 | ctl.wait sem=1, count=1",
    "lin dst=0x1000, src=0x0, wgt=0x400, scale=0x0, m=16, k=64, n=16, src_ld=64, dst_ld=64, src_type=i8, hlog2=0, "
    "qmul=1, qshift=0, acc=0, out=i32 | ctl.wait sem=2, count=1 ; delay=26",
    "st ddr=0x1400, buf=0x1000, rows=16, row_bytes=64, ddr_stride=64, buf_stride=256, sem=3",
    "ctl.wait sem=3, count=1",
    "ctl.halt",
]
DEBUG = {0: "mamba_quant.qlinear layers.2.in_proj tile 0 weights", 1: "a weight tile",
         2: "mamba_quant.qlinear layers.2.in_proj tile 0", 3: "logits"}


def _run(lines, debug=None):
    bundles = [parse_bundle(line) for line in lines]
    state = MachineState(ddr=np.zeros(0x2400, np.uint8), buf=np.zeros(TARGET.buffer_bytes, np.uint8))
    trace = Trace(TARGET.clock_hz, "main", debug or {}, TARGET.buffer_bytes)
    stats = simulate(bundles, state, TARGET, trace=trace)
    return bundles, stats, trace, trace.to_dict()


def _tracks(doc):
    return {(e["pid"], e["tid"]): e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "thread_name"}


def _slices(doc, track):
    names = _tracks(doc)
    return [e for e in doc["traceEvents"] if e["ph"] == "X" and names[e["pid"], e["tid"]] == track]


def _integral(events, key):
    """Sum of value x duration of one counter series (each value holds until the next event)."""
    return sum(a["args"][key] * (b["ts"] - a["ts"]) for a, b in zip(events, events[1:]))


def test_operations_are_named_by_opcode_with_their_ir_location():
    bundles, stats, _, doc = _run(PROGRAM, DEBUG)
    ops = [e for t in UNITS for e in _slices(doc, t)]
    ops.sort(key=lambda e: e["args"]["bundle"])
    assert [e["name"] for e in ops] == ["ld", "ld", "lin", "st"]
    for e in ops:
        b = e["args"]["bundle"]
        instr = bundles[b].ops[0]
        assert e["args"]["text"] == format_instruction(instr) and e["args"]["slot"] == instr.slot
        assert e["args"]["loc"] == DEBUG[b]
    lin = ops[2]["args"]
    assert (lin["kind"], lin["layer"], lin["macs"]) == ("mamba_quant.qlinear", 2, 16 * 64 * 16)
    assert (ops[0]["args"]["kind"], ops[3]["args"]["kind"], ops[3]["args"]["layer"]) == (
        "mamba_quant.qlinear weights", "logits", None)
    # bundle 1's text names no layer: it takes the layer of the lin, the first operation reading what it wrote
    assert (ops[1]["args"]["kind"], ops[1]["args"]["layer"], ops[1]["args"]["layer_from"]) == (
        "a weight tile", 2, "consumer")
    assert "layer_from" not in ops[0]["args"] and "layer_from" not in ops[3]["args"]
    assert sorted(n for n in _tracks(doc).values()) == sorted(TRACKS)


def test_slices_and_counters_add_up_to_the_runs_counters():
    _, stats, trace, doc = _run(PROGRAM, DEBUG)
    for unit in UNITS:
        assert sum(e["dur"] for e in _slices(doc, unit)) == stats.busy[unit], unit
    stalls = _slices(doc, "stall")
    assert stats.stalls["semaphore"] > 0  # bundle 1 waits for the first load
    for cause in STALL_CAUSES:
        assert sum(e["dur"] for e in stalls if e["name"] == cause) == stats.stalls[cause], cause
    ddr = [e for e in doc["traceEvents"] if e["ph"] == "C" and e["name"] == DDR_COUNTER]
    assert _integral(ddr, "read") == pytest.approx(stats.ddr_bytes_read, rel=1e-12)
    assert _integral(ddr, "written") == pytest.approx(stats.ddr_bytes_written, rel=1e-12)
    assert ddr[-1]["ts"] == stats.cycles and sum(w[2] + w[3] for w in trace.ddr_windows()) == 1024 * 3
    issues = _slices(doc, "issue")
    assert sorted(e["args"]["bundle"] for e in issues) == list(range(len(PROGRAM)))
    assert max(e["ts"] + e["dur"] for e in issues) == stats.cycles


def test_buffer_bytes_live_by_hand():
    _, stats, _, doc = _run(PROGRAM, DEBUG)
    ops = {e["args"]["bundle"]: e["args"] for t in UNITS for e in _slices(doc, t)}
    # A and W live from their loads' issue to the lin's completion, C from the lin's issue to the store's completion
    deltas = {}
    for t, n in ((ops[0]["issue"], 1024), (ops[1]["issue"], 1024), (ops[2]["complete"], -2048),
                 (ops[2]["issue"], 1024), (ops[3]["complete"], -1024)):
        deltas[t] = deltas.get(t, 0) + n
    expected, live = [], 0
    for t in sorted(deltas):
        live += deltas[t]
        expected.append((t, live))
    series = [(e["ts"], e["args"]["bytes"]) for e in doc["traceEvents"] if e["ph"] == "C" and e["name"] ==
              BUFFER_COUNTER]
    assert series == [(0, 0)] + expected and expected[-1][1] == 0


def test_op_locations_split_the_bundles_debug_text():
    locs = op_locations("logits; next token", ["ST", "VEC", "CTL"])
    assert [(x.loc, x.kind) for x in locs] == [("logits", "logits"), ("next token", "next token"),
                                               ("", "(no debug info)")]
    whole = op_locations("a; b; c", ["LD", "LIN"])  # three texts for two operations: each gets the whole text
    assert [x.loc for x in whole] == ["a; b; c", "a; b; c"]
    assert op_kind("layer 3 conv state[0:512]") == "conv state"
    assert op_kind("mamba_quant.vec silu (heads 0+16)") == "mamba_quant.vec"
    assert op_locations("mamba_quant.qssm_scan layer 4 heads 0+16", ["SSM"])[0].layer == 4


def test_a_hazard_still_writes_the_trace_up_to_the_failing_bundle(tmp_path, capsys):
    source = tmp_path / "hazard.s"
    # the lin reads the buffer bytes the load of bundle 1 still writes: a RAW hazard in bundle 2
    source.write_text(".program main ddr_size=0x2400\n" + "\n".join(
        [PROGRAM[0], 'ctl.wait sem=1, count=1',
         ".loc \"weights\"",
         "ld buf=0x400, ddr=0x400, rows=16, row_bytes=64, ddr_stride=64, buf_stride=64, sem=2",
         ".loc \"the matmul\"",
         PROGRAM[2].split(" | ")[0], "ctl.halt"]) + "\n")
    fmb, out = tmp_path / "hazard.fmb", tmp_path / "t.json"
    assert main(["asm", str(source), "-o", str(fmb)]) == 0
    capsys.readouterr()
    assert main(["sim", str(fmb), "--trace", str(out)]) == 1
    err = capsys.readouterr().err
    assert "RAW hazard" in err and "bundle 3" in err
    doc = json.loads(out.read_text())
    assert "RAW hazard" in doc["otherData"]["error"]
    ops = [e for t in UNITS for e in _slices(doc, t)]
    assert sorted((e["args"]["bundle"], e["name"]) for e in ops) == [(0, "ld"), (2, "ld")]
    assert [e["args"]["loc"] for e in ops if e["args"]["bundle"] == 2] == ["weights"]
    assert sorted(e["args"]["bundle"] for e in _slices(doc, "issue")) == [0, 1, 2, 3]


def test_a_hazard_in_the_engine_keeps_the_error_in_the_trace():
    lines = [PROGRAM[0], PROGRAM[2].split(" | ")[0], "ctl.halt"]
    with pytest.raises(SimulationError, match="RAW hazard"):
        _run(lines)


def test_runs_on_one_timeline():
    _, stats, first, _ = _run(PROGRAM, DEBUG)
    _, _, second, _ = _run(PROGRAM)
    timeline = Timeline(TARGET.clock_hz)
    assert timeline.add("prefill", first) == 0 and timeline.add("decode", second) == stats.cycles
    doc = timeline.to_dict()
    names = {e["pid"]: e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "process_name"}
    assert names == {1: "prefill", 2: "decode"}
    lin = [e for e in doc["traceEvents"] if e["name"] == "lin"]
    assert [e["pid"] for e in lin] == [1, 2] and lin[1]["ts"] == lin[0]["ts"] + stats.cycles
    assert [r["start"] for r in doc["otherData"]["runs"]] == [0, stats.cycles]


def test_the_counter_schema_of_any_counters():
    from types import SimpleNamespace

    from fastmamba.simulator.stats import COUNTERS_SCHEMA, Stats, counters

    _, stats, _, _ = _run(PROGRAM, DEBUG)
    mine = counters(stats)
    assert mine["schema"] == COUNTERS_SCHEMA and mine["cycles"] == stats.cycles
    assert mine["ddr"] == {"bytes_read": 1024 * 2, "bytes_written": 1024, "bytes": 3072,
                           "channel_busy_cycles": stats.busy["LD"] + stats.busy["ST"],
                           "channel_utilization": (stats.busy["LD"] + stats.busy["ST"]) / stats.cycles}
    assert mine["units"]["LIN"] == {"ops": 1, "busy_cycles": stats.busy["LIN"],
                                    "utilization": stats.busy["LIN"] / stats.cycles}
    # the RTL's counters (any object with Stats' attributes) give the same object
    other = SimpleNamespace(**{k: getattr(stats, k) for k in ("clock_hz", "cycles", "bundles", "ops", "macs",
                                                              "ddr_bytes_read", "ddr_bytes_written", "busy",
                                                              "ops_per_unit", "stalls")}, rtl_cycles=1)
    assert counters(other) == mine == stats.counters()
    empty = counters(None, 250e6)
    assert empty["cycles"] == 0 and empty["clock_hz"] == 250e6 and set(empty) == set(mine)
    assert counters(None)["clock_hz"] is None
    twice = Stats(stats.clock_hz)
    twice.add(stats)
    twice.add(stats)
    assert counters(twice)["ddr"]["bytes"] == 2 * mine["ddr"]["bytes"]
