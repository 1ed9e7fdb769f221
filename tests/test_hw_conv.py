"""The RTL's CONV unit (hardware/conv_unit.py around hardware/conv_datapath.py) against the simulator,
and the examples/ programs on the RTL.

Random `conv` programs on the `small` preset (tests/hw_programs.py: every
kernel width, 1-3 token chunks carrying the state with upd, i16 and i32
outputs, shifts up to 127 with ties, saturating values, padded pitches): the
DDR image (dst and the final state) equal byte for byte and every counter
equal.  The target's conv_latency equals the unit's depth, and a schedule for a
shorter one is a RAW hazard on the RTL.  examples/matmul_int8.s, re-timed for
`small` (each LIN bundle's delay its op's duration - 1, as the example's
comment derives it for vc709), runs bit-exact on the RTL (examples/ssm_step.s:
tests/test_hw_ssm.py).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from fastmamba.hardware.backend import RtlBackend, RtlError
from fastmamba.hardware.conv_unit import conv_latency
from fastmamba.isa import costs
from fastmamba.isa.assembler import assemble_file
from fastmamba.isa.container import Binary
from fastmamba.isa.instructions import Bundle
from fastmamba.isa.target import PRESETS
from fastmamba.simulator.runtime import SimulatorBackend

from hw_programs import compare_random_programs, compare_stats, random_conv_program, run_rtl, run_sim

SMALL = PRESETS["small"]
N_RANDOM = 200  # issue 12: at least 200 random valid programs per unit
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_target_latency_is_the_rtl_pipeline_depth():
    assert SMALL.conv_latency == conv_latency(SMALL)


def test_random_conv_programs_bit_exact_and_cycle_equal():
    total_cycles = compare_random_programs(random_conv_program, SMALL, N_RANDOM)
    print(f"{N_RANDOM} random CONV programs: {total_cycles:,} cycles, equal on the simulator and the RTL")


def test_a_wrong_conv_latency_is_caught_by_the_rtl_only():
    wrong = dataclasses.replace(SMALL, conv_latency=SMALL.conv_latency - 1)
    bundles, image = random_conv_program(5, SMALL, schedule_target=wrong)
    run_sim(wrong, bundles, image)
    with pytest.raises(RtlError, match=r"^RTL: bundle \d+, slot (CONV|ST): .*RAW hazard.*slot CONV"):
        run_rtl(SMALL, bundles, image)


def _retimed(binary: Binary) -> Binary:
    programs = []
    for prog in binary.programs:
        bundles = []
        for b in prog.bundles:
            lin = b.op_in("LIN")
            delay = max(b.delay, costs.duration(lin, SMALL) - 1) if lin is not None else b.delay
            bundles.append(Bundle(b.ops, delay))
        programs.append(dataclasses.replace(prog, bundles=tuple(bundles)))
    return dataclasses.replace(binary, programs=tuple(programs))


def test_example_matmul_on_the_rtl():
    binary = _retimed(assemble_file(EXAMPLES / "matmul_int8.s", SMALL))
    sim, rtl = SimulatorBackend(SMALL), RtlBackend(SMALL)
    sim.load(binary)
    rtl.load(binary)
    a = np.random.default_rng(11).integers(-128, 128, (16, 64), dtype=np.int8)
    for inputs in ({}, {"a": a}):
        s, r = sim.run("main", inputs), rtl.run("main", inputs)
        assert np.array_equal(s.outputs["c"], r.outputs["c"])
        assert s.stats.to_dict() == {k: v for k, v in r.stats.to_dict().items() if k != "rtl_cycles"}


@pytest.mark.parametrize("unit", ["LIN", "CONV"])
def test_back_to_back_ops_wait_for_the_unit(unit):
    """Two ops of one unit in consecutive bundles (delay 0): the second issues the cycle after the first's last
    beat (structural stall cycles as the simulator counts them) and both complete."""
    from fastmamba.isa.instructions import Instruction

    image = np.zeros(1 << 15, np.uint8)
    image[:0x1000] = np.random.default_rng(1).integers(0, 50, 0x1000, dtype=np.uint8)
    ld = Instruction("ld", dict(buf=0, ddr=0, rows=1, row_bytes=0x1000, ddr_stride=0x1000, buf_stride=0x1000, sem=1))

    def op(dst):
        if unit == "LIN":
            return Instruction("lin", dict(dst=dst, src=0x0, wgt=0x100, scale=0x200, m=2, k=16, n=5, src_ld=16,
                                           dst_ld=5, src_type="i8", hlog2=2, qmul=5, qshift=3, acc=0, out="i32"))
        return Instruction("conv", dict(dst=dst, src=0x100, state=0x200, wgt=0x300, bias=0x400, t=3, c=6, kw=3,
                                        src_ld=6, dst_ld=6, shift=3, out_type="i32", upd=0))

    a, b = op(0x2000), op(0x2100)
    st = Instruction("st", dict(ddr=0x3000, buf=0x2000, rows=1, row_bytes=0x200, ddr_stride=0x200, buf_stride=0x200,
                                sem=2))
    bundles = [Bundle((ld,)), Bundle((Instruction("ctl.wait", {"sem": 1, "count": 1}),)), Bundle((a,)),
               Bundle((b,), costs.duration(b, SMALL) - 1), Bundle((st,)),
               Bundle((Instruction("ctl.wait", {"sem": 2, "count": 1}),)), Bundle((Instruction("ctl.halt", {}),))]
    sim_ddr, sim_stats = run_sim(SMALL, bundles, image)
    rtl_ddr, rtl_stats = run_rtl(SMALL, bundles, image)
    assert sim_stats.stalls["structural"] == costs.occupancy(a, SMALL) - 1
    assert np.array_equal(sim_ddr, rtl_ddr) and not compare_stats(sim_stats, rtl_stats)


def test_lin_and_conv_in_one_bundle_with_a_load():
    """Both compute units and the DMA busy at once: one bundle issues a lin, a conv and a prefetch load."""
    from fastmamba.isa.instructions import Instruction

    rng = np.random.default_rng(7)
    image = np.zeros(1 << 15, np.uint8)
    image[:0x2000] = rng.integers(0, 256, 0x2000, dtype=np.uint8)
    image[0x1800:0x1810] = 0  # conv state rows: small values
    ld = [Instruction("ld", dict(buf=0, ddr=0, rows=1, row_bytes=0x1800, ddr_stride=0x1800, buf_stride=0x1800,
                                 sem=1))]
    lin = Instruction("lin", dict(dst=0x2000, src=0x0, wgt=0x100, scale=0x200, m=2, k=16, n=5, src_ld=16, dst_ld=5,
                                  src_type="i8", hlog2=2, qmul=5, qshift=3, acc=0, out="f32"))
    conv = Instruction("conv", dict(dst=0x2100, src=0x400, state=0x500, wgt=0x600, bias=0x700, t=3, c=6, kw=3,
                                    src_ld=6, dst_ld=6, shift=9, out_type="i32", upd=1))
    pre = Instruction("ld", dict(buf=0x3000, ddr=0x1000, rows=4, row_bytes=40, ddr_stride=48, buf_stride=40, sem=2))
    delay = max(costs.duration(lin, SMALL), costs.duration(conv, SMALL), costs.duration(pre, SMALL)) - 1
    st = Instruction("st", dict(ddr=0x3000, buf=0x2000, rows=1, row_bytes=0x1100, ddr_stride=0x1100,
                                buf_stride=0x1100, sem=3))
    st2 = Instruction("st", dict(ddr=0x2000, buf=0x3000, rows=4, row_bytes=40, ddr_stride=40, buf_stride=40, sem=3))
    bundles = [Bundle(tuple(ld)), Bundle((Instruction("ctl.wait", {"sem": 1, "count": 1}),)),
               Bundle((pre, lin, conv), delay), Bundle((Instruction("ctl.wait", {"sem": 2, "count": 1}),)),
               Bundle((st,)), Bundle((st2,)), Bundle((Instruction("ctl.wait", {"sem": 3, "count": 2}),)),
               Bundle((Instruction("ctl.halt", {}),))]
    sim_ddr, sim_stats = run_sim(SMALL, bundles, image)
    rtl_ddr, rtl_stats = run_rtl(SMALL, bundles, image)
    assert np.array_equal(sim_ddr, rtl_ddr) and not compare_stats(sim_stats, rtl_stats)
    assert sim_stats.ops_per_unit["LIN"] == sim_stats.ops_per_unit["CONV"] == 1
