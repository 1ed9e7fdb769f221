"""fastmamba.isa.costs agrees with the simulator's unit footprints (occupancy, latency, DDR bytes) and DMA channel
timing.

Random valid instructions of every operation (operands laid out in disjoint,
aligned slots so the footprint's checks pass) are costed both ways.  When the
simulator switches to isa.costs these tests keep the two from drifting apart.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastmamba.isa import costs
from fastmamba.isa.instructions import MICRO_OPS, OPS, Bundle, Instruction
from fastmamba.isa.numerics import MICRO_OPS_WITH_B
from fastmamba.isa.target import load_target
from fastmamba.simulator.effects import MachineState
from fastmamba.simulator.engine import simulate
from fastmamba.simulator.semantics import SEMANTICS

VC709 = load_target("vc709")
# A second target with other rates and latencies, so a formula that ignores a parameter shows.
ODD = dataclasses.replace(VC709, name="odd", lin_groups=5, conv_channels=24, ssm_headdim_lanes=16, ssm_dstate_lanes=4,
                          nla_lanes=3, vec_lanes=48, lin_latency=7, conv_latency=3, ssm_latency=5, vec_latency=2,
                          dma_latency=17, ddr_gbytes_per_s=7.0)
SLOT = 0x10000  # each operand in its own 64 KiB slot of the buffer
BUF_BYTES = 32 * SLOT
DDR_BYTES = 1 << 20


def _slots(fields):
    return {f: (i + 1) * SLOT for i, f in enumerate(fields)}


@st.composite
def instructions(draw, op: str) -> Instruction:
    d = draw
    ints = st.integers
    if op in ("ld", "st"):
        rows, row_bytes = d(ints(1, 64)), d(ints(1, 512))
        args = dict(buf=SLOT, ddr=d(ints(0, 1024)), rows=rows, row_bytes=row_bytes,
                    ddr_stride=row_bytes + d(ints(0, 64)), buf_stride=row_bytes + d(ints(0, 64)), sem=d(ints(0, 32)))
    elif op == "ldg":
        rows, row_bytes, limit = d(ints(1, 64)), d(ints(1, 256)), d(ints(1, 64))
        args = dict(buf=SLOT, ddr=d(ints(0, 1024)), idx=2 * SLOT, rows=rows, row_bytes=row_bytes,
                    ddr_stride=row_bytes + d(ints(0, 16)), buf_stride=row_bytes + d(ints(0, 16)), limit=limit,
                    sem=d(ints(0, 32)))
    elif op == "lin":
        m, n = d(ints(1, 64)), d(ints(1, 64))
        hlog2 = d(ints(0, 6))
        k = (1 << hlog2) * d(ints(1, 4))
        args = dict(_slots(("dst", "src", "wgt", "scale")), m=m, k=k, n=n, src_ld=k + d(ints(0, 8)),
                    dst_ld=n + d(ints(0, 8)), src_type=d(st.sampled_from(("i8", "i16"))), hlog2=hlog2,
                    qmul=d(ints(0, 100)), qshift=d(ints(0, 20)), acc=d(ints(0, 1)), out=d(st.sampled_from(("i32",
                                                                                                           "f32"))))
    elif op == "conv":
        c = d(ints(1, 96))
        args = dict(_slots(("dst", "src", "state", "wgt", "bias")), t=d(ints(1, 64)), c=c, kw=d(ints(2, 4)),
                    src_ld=c + d(ints(0, 8)), dst_ld=c + d(ints(0, 8)), shift=d(ints(0, 20)),
                    out_type=d(st.sampled_from(("i16", "i32"))), upd=d(ints(0, 1)))
    elif op == "ssm":
        h, p, n = d(ints(1, 8)), d(ints(1, 32)), d(ints(1, 16))
        hpg = d(ints(1, h))
        groups = -(-h // hpg)
        b_off = h * p + d(ints(0, 4))
        c_off = b_off + groups * n
        args = dict(_slots(("y", "xbc", "dt", "params", "state")), t=d(ints(1, 8)), h=h, p=p, n=n, hpg=hpg,
                    xbc_ld=c_off + groups * n + d(ints(0, 4)), b_off=b_off, c_off=c_off, dt_ld=h + d(ints(0, 4)),
                    y_ld=h * p + d(ints(0, 4)), dt_frac=d(ints(3, 15)), a_frac=d(ints(0, 20)),
                    dbx_shift=d(ints(0, 20)), y_shift=d(ints(0, 20)), d_shift=d(ints(0, 20)))
    elif op == "vec":
        rows, cols = d(ints(1, 64)), d(ints(1, 128))
        b_mode = d(st.sampled_from(("none", "full", "row")))
        allowed = [m for m in MICRO_OPS if b_mode != "none" or m not in MICRO_OPS_WITH_B]
        micro = [d(st.sampled_from(allowed)) for _ in range(4)]
        args = dict(_slots(("dst", "a", "b")), rows=rows, cols=cols, a_ld=cols + d(ints(0, 8)),
                    b_ld=cols + d(ints(0, 8)), dst_ld=cols + d(ints(0, 8)),
                    a_type=d(st.sampled_from(("i8", "i16", "i32", "f32"))), a_exp=d(ints(-8, 8)),
                    b_type=d(st.sampled_from(("i8", "i16", "i32", "f32"))), b_exp=d(ints(-8, 8)),
                    b_mode=b_mode, op0=micro[0], op1=micro[1], op2=micro[2], op3=micro[3],
                    group=d(st.sampled_from([g for g in range(1, cols + 1) if cols % g == 0])), eps=1e-5,
                    out_type=d(st.sampled_from(("i8", "i16", "i32", "f32"))), out_scale=1.0)
    elif op == "vec.argmax":
        args = dict(_slots(("dst", "a")), rows=d(ints(1, 64)), cols=d(ints(1, 256)))
    elif op == "ctl.wait":
        args = dict(sem=d(ints(1, 32)), count=d(ints(0, 8)))
    else:
        args = {}
    return Instruction(op, args)


def _state() -> MachineState:
    return MachineState(ddr=np.zeros(DDR_BYTES, np.uint8), buf=np.zeros(BUF_BYTES, np.uint8))


def test_every_operation_of_the_table_is_costed():
    """The cost column: every op names a formula of isa.costs and, unless it is a ctl op, a latency parameter."""
    formulas = {getattr(costs, name) for name in dir(costs) if name.endswith("_cycles")}
    for spec in OPS.values():
        assert spec.occupancy in formulas, spec.name
        assert (spec.latency_param is None) == (spec.slot == "CTL"), spec.name
        if spec.latency_param is not None:
            assert isinstance(getattr(VC709, spec.latency_param), int), spec.name


@pytest.mark.parametrize("op", sorted(SEMANTICS))
@pytest.mark.parametrize("target", [VC709, ODD], ids=["vc709", "odd"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_costs_agree_with_the_simulator_footprint(op, target, data):
    instr = data.draw(instructions(op))
    fp = SEMANTICS[op].footprint(instr, _state(), dataclasses.replace(target, buffer_bytes=BUF_BYTES))
    assert costs.ddr_bytes(instr) == fp.ddr_bytes
    if instr.slot in costs.COMPUTE_SLOTS:
        assert costs.occupancy(instr, target) == fp.occupancy
        assert costs.latency(instr, target) == fp.latency
        assert costs.duration(instr, target) == fp.occupancy + fp.latency
    else:  # DMA: the engine times the transfer from ddr_bytes
        assert costs.occupancy(instr, target) == costs.dma_cycles(fp.ddr_bytes, target)
        assert costs.latency(instr, target) == target.dma_latency


@pytest.mark.parametrize("target", [VC709, ODD], ids=["vc709", "odd"])
@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 40), row_bytes=st.integers(1, 300), gap=st.integers(0, 500))
def test_dma_channel_timing_matches_the_engine(target, rows, row_bytes, gap):
    """Two loads: the second starts when the channel frees; cycles = its completion."""
    tgt = dataclasses.replace(target, buffer_bytes=BUF_BYTES)
    a = Instruction("ld", dict(buf=SLOT, ddr=0, rows=rows, row_bytes=row_bytes, ddr_stride=row_bytes,
                               buf_stride=row_bytes, sem=0))
    b = Instruction("ld", dict(buf=4 * SLOT, ddr=0, rows=1, row_bytes=64, ddr_stride=64, buf_stride=64, sem=0))
    stats = simulate([Bundle((a,), delay=gap), Bundle((b,)), Bundle((Instruction("ctl.halt", {}),))], _state(), tgt)
    first_done = costs.occupancy(a, tgt)
    second_start = max(gap + 1, first_done)
    expect = second_start + costs.occupancy(b, tgt) + costs.latency(b, tgt)
    assert stats.cycles == max(expect, first_done + costs.latency(a, tgt))


def test_worked_examples():
    lin = Instruction("lin", dict(dst=0, src=0, wgt=0, scale=0, m=16, k=64, n=16, src_ld=64, dst_ld=16, src_type="i8",
                                  hlog2=0, qmul=1, qshift=0, acc=0, out="i32"))
    assert costs.occupancy(lin, VC709) == 11 and costs.latency(lin, VC709) == 16  # ceil(16384 / 1536)
    ld = Instruction("ld", dict(buf=0, ddr=0, rows=16, row_bytes=64, ddr_stride=64, buf_stride=64, sem=0))
    assert costs.ddr_bytes(ld) == 1024 and costs.occupancy(ld, VC709) == 18  # ceil(1024 / 60)
    assert costs.dma_cycles(60, VC709) == 1 and costs.dma_cycles(61, VC709) == 2 and costs.dma_cycles(0, VC709) == 0
    halt = Instruction("ctl.halt", {})
    assert costs.occupancy(halt, VC709) == 0 and costs.latency(halt, VC709) == 0 and costs.ddr_bytes(halt) == 0
