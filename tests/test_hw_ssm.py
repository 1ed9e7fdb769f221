"""The RTL's SSM unit (hardware/ssm_unit.py around hardware/ssm_datapath.py) against the simulator.

Random `ssm` programs on the `small` preset (tests/hw_programs.py: loads,
1-3 token chunks carrying the state, heads split into two ops over whole
B/C groups issued back to back (a structural stall), every hpg, B before or
after C, padded pitches, dt_frac across its range, shifts 0 to 127 with
ties and saturation, values small or at the types' ends, stores): the DDR
image (y and the final state) equal byte for byte and every counter equal.
The target's ssm_latency equals the unit's depth and its occupancy the
unit's beat count; a schedule for a shorter latency is a RAW hazard on the
RTL only.  examples/ssm_step.s, re-timed for `small`, runs bit-exact on the
RTL.  And the check can fail: the same random programs with the datapath's
rounding shift replaced by a plain (floor) shift differ from the simulator.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from fastmamba.hardware import ssm_datapath, ssm_unit
from fastmamba.hardware.backend import RtlBackend, RtlError
from fastmamba.hardware.ssm_unit import ssm_latency
from fastmamba.isa import costs
from fastmamba.isa.assembler import assemble_file
from fastmamba.isa.container import Binary
from fastmamba.isa.instructions import Bundle, Instruction
from fastmamba.isa.target import PRESETS
from fastmamba.simulator.runtime import SimulatorBackend

from hw_programs import compare_random_programs, random_ssm_program, run_rtl, run_sim

SMALL = PRESETS["small"]
N_RANDOM = 200
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_target_latency_is_the_rtl_pipeline_depth():
    assert SMALL.ssm_latency == ssm_latency(SMALL)


def test_occupancy_is_the_units_beat_count():
    op = Instruction("ssm", dict(y=0, xbc=0, dt=0, params=0, state=0, t=3, h=2, p=5, n=9, hpg=1, xbc_ld=40, b_off=10,
                                 c_off=28, dt_ld=2, y_ld=10, dt_frac=12, a_frac=12, dbx_shift=0, y_shift=0,
                                 d_shift=0))
    assert costs.occupancy(op, SMALL) == 3 * 2 * 2 * 3  # t * h * ceil(p / 4 lanes) * ceil(n / 4 lanes)
    # vc709 keeps the packed rule: t * max(ceil(h*p*n / 256), ceil(h / 24))
    assert costs.occupancy(op, PRESETS["vc709"]) == 3 * 1


def test_rtl_limits_on_a_target():
    ssm_unit.check(SMALL, 16)
    with pytest.raises(ValueError, match="ssm_dstate_lanes = 8 int32 state values"):
        ssm_unit.check(dataclasses.replace(SMALL, ssm_dstate_lanes=8), 16)
    with pytest.raises(ValueError, match="ssm_head_tiles = 1"):
        ssm_unit.check(dataclasses.replace(SMALL, ssm_head_tiles=0), 16)


def test_random_ssm_programs_bit_exact_and_cycle_equal():
    total_cycles = compare_random_programs(random_ssm_program, SMALL, N_RANDOM)
    print(f"{N_RANDOM} random SSM programs: {total_cycles:,} cycles, equal on the simulator and the RTL")


def test_back_to_back_ops_stall_as_in_the_simulator():
    """Two ops over halves of the heads in consecutive bundles: the second waits for the unit."""
    stalled = 0
    for seed in range(40):
        bundles, image = random_ssm_program(seed, SMALL, split=True)
        sim_ddr, sim_stats = run_sim(SMALL, bundles, image)
        if not sim_stats.stalls["structural"]:
            continue  # one head group, or a first op of one cycle
        rtl_ddr, rtl_stats = run_rtl(SMALL, bundles, image)
        assert np.array_equal(sim_ddr, rtl_ddr) and rtl_stats.stalls == sim_stats.stalls, seed
        stalled += 1
    assert stalled >= 5


@pytest.mark.parametrize("seed", [0, 1])
def test_a_wrong_ssm_latency_is_caught_by_the_rtl_only(seed):
    wrong = dataclasses.replace(SMALL, ssm_latency=SMALL.ssm_latency - 1)
    bundles, image = random_ssm_program(seed, SMALL, schedule_target=wrong)
    run_sim(wrong, bundles, image)  # the simulator, told the wrong latency, runs it without complaint
    with pytest.raises(RtlError, match=r"^RTL: bundle \d+, slot (SSM|ST): .*RAW hazard.*slot SSM"):
        run_rtl(SMALL, bundles, image)


def test_dt_frac_outside_the_nla_range_is_an_error():
    bundles, image = random_ssm_program(3, SMALL)
    at = next(i for i, b in enumerate(bundles) if b.op_in("SSM") is not None)
    op = bundles[at].op_in("SSM")
    bad = Instruction("ssm", {**dict(op.args), "dt_frac": SMALL.nla_bits})
    bundles[at] = Bundle((bad,), bundles[at].delay)
    with pytest.raises(RtlError, match=rf"^RTL: bundle {at}, slot SSM: .*field dt_frac = 16 outside \[log2 nla_seg"):
        run_rtl(SMALL, bundles, image)


def _retimed(binary: Binary) -> Binary:
    programs = []
    for prog in binary.programs:
        bundles = []
        for b in prog.bundles:
            ssm = b.op_in("SSM")
            delay = max(b.delay, costs.duration(ssm, SMALL) - 1) if ssm is not None else b.delay
            bundles.append(Bundle(b.ops, delay))
        programs.append(dataclasses.replace(prog, bundles=tuple(bundles)))
    return dataclasses.replace(binary, programs=tuple(programs))


def test_example_ssm_step_on_the_rtl():
    binary = _retimed(assemble_file(EXAMPLES / "ssm_step.s", SMALL))
    sim, rtl = SimulatorBackend(SMALL), RtlBackend(SMALL)
    sim.load(binary)
    rtl.load(binary)
    s, r = sim.run("main"), rtl.run("main")
    assert np.array_equal(s.outputs["y"], r.outputs["y"]) and np.array_equal(s.states["state"], r.states["state"])
    assert s.stats.to_dict() == {k: v for k, v in r.stats.to_dict().items() if k != "rtl_cycles"}


def test_a_wrong_rounding_is_caught_by_the_random_programs(monkeypatch):
    """The random programs' ssm ops through the datapath in Amaranth's simulator (the controller's beat order,
    tests/test_hw_datapath_ssm.py): equal to the simulator as built, different with every rshift_round of the
    datapath replaced by a floor shift (x >> s)."""
    from fastmamba.simulator.units import ssm as sim_ssm

    from test_hw_datapath_ssm import run_datapath

    def scan_on_the_datapath(x, B, C, dt_raw, A, D, dt_bias, state, *, hpg, segments, bits, state_bits, **fields):
        op = dict(x=x, B=B, C=C, dt_raw=dt_raw, A=A, D=D, dt_bias=dt_bias, state=state, hpg=hpg, **fields)
        y, st = run_datapath(SMALL, op)
        return y.astype(np.int32), st.astype(np.int32)

    seeds = range(4)
    reference = [run_sim(SMALL, *random_ssm_program(seed, SMALL))[0] for seed in seeds]
    with monkeypatch.context() as mp:
        mp.setattr(sim_ssm.numerics, "ssm_scan", scan_on_the_datapath)
        assert all(np.array_equal(run_sim(SMALL, *random_ssm_program(seed, SMALL))[0], ref)
                   for seed, ref in zip(seeds, reference))
        mp.setattr(ssm_datapath, "rshift_round", lambda x, s: x >> s)
        caught = [not np.array_equal(run_sim(SMALL, *random_ssm_program(seed, SMALL))[0], ref)
                  for seed, ref in zip(seeds, reference)]
    assert any(caught), caught
