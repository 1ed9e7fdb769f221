"""The RTL's LIN unit (hardware/lin_unit.py around hardware/lin_datapath.py) against the simulator.

Random `lin` programs on the `small` preset (tests/hw_programs.py: i8/i16
activations, every Hadamard block up to the target's, requantization with
ties and saturation, acc onto random int32 accumulators, k-tiling, i32 and
f32 outputs, padded row pitches): the DDR image after HALT equal byte for
byte and every counter equal.  The target's lin_latency equals the unit's
pipeline depth; a schedule built for a shorter latency reads the results
before the RTL has written them: the RTL reports a RAW hazard where the
simulator, which applies results at issue, sees nothing wrong.
"""

from __future__ import annotations

import dataclasses

import pytest

from fastmamba.hardware.backend import RtlError
from fastmamba.hardware.lin_unit import lin_latency
from fastmamba.isa import costs
from fastmamba.isa.instructions import Instruction
from fastmamba.isa.target import PRESETS

from hw_programs import compare_random_programs, random_lin_program, run_rtl, run_sim

SMALL = PRESETS["small"]
N_RANDOM = 200  # issue 12: at least 200 random valid programs per unit


def test_target_latency_is_the_rtl_pipeline_depth():
    assert SMALL.lin_latency == lin_latency(SMALL)


def test_occupancy_is_the_units_beat_count():
    op = Instruction("lin", dict(dst=0, src=0, wgt=0, scale=0, m=3, k=20, n=9, src_ld=20, dst_ld=9, src_type="i8",
                                 hlog2=2, qmul=1, qshift=0, acc=0, out="i32"))
    assert costs.occupancy(op, SMALL) == 3 * 3 * 5  # m * ceil(n / 4 trees) * ceil(k / width 4)


def test_random_lin_programs_bit_exact_and_cycle_equal():
    total_cycles = compare_random_programs(random_lin_program, SMALL, N_RANDOM)
    print(f"{N_RANDOM} random LIN programs: {total_cycles:,} cycles, equal on the simulator and the RTL")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_wrong_lin_latency_is_caught_by_the_rtl_only(seed):
    wrong = dataclasses.replace(SMALL, lin_latency=SMALL.lin_latency - 1)
    bundles, image = random_lin_program(seed, SMALL, schedule_target=wrong)
    run_sim(wrong, bundles, image)  # the simulator, told the wrong latency, runs it without complaint
    with pytest.raises(RtlError, match=r"^RTL: bundle \d+, slot (LIN|ST): .*RAW hazard.*slot LIN"):
        run_rtl(SMALL, bundles, image)
