"""The RTL's VEC unit (hardware/vec_unit.py around hardware/vec_datapath.py): the machine's VEC against the simulator,
the controller in Amaranth's simulator, its depth against the target's vec_latency, the cost rule.

Random `vec` programs on the `small` preset (tests/hw_programs.random_vec_program: chains of up to four micro-ops
with at most one rmsnorm, every type and b mode, padded pitches, in place over a, ties, saturation, signed zeros,
subnormals, +-inf, NaN; 1-3 ops back to back beside a prefetch load) run on the RTL machine and on the simulator:
the DDR images equal byte for byte and every counter equal; a schedule for a vec_latency one short is a RAW hazard
on the RTL only.  The controller alone (2 lanes on a buffer of 4-byte words, so that every operand takes two ports
and windows straddle words) runs four ops back to back (an rmsnorm chain over partial beats with an i8 b, silu on
i16 with a broadcast b into i8, argmax, an rmsnorm into i16), bit-exact against simulator/units/vec.py, each
starting the cycle the previous one frees the unit and completing vec_latency cycles after its last beat.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fastmamba.hardware.backend import RtlError
from fastmamba.hardware.buffer import Buffer
from fastmamba.hardware.vec_unit import VecUnit, vec_latency
from fastmamba.isa import costs
from fastmamba.isa.encoding import encode_instruction
from fastmamba.isa.instructions import Instruction
from fastmamba.isa.target import PRESETS
from fastmamba.simulator.effects import MachineState
from fastmamba.simulator.units.vec import ARGMAX, CHAIN

from hw_programs import compare_random_programs, random_vec_program, run_rtl, run_sim

SMALL = PRESETS["small"]
N_RANDOM = 200


def test_target_latency_is_the_rtl_pipeline_depth():
    assert SMALL.vec_latency == vec_latency(SMALL)


def test_random_vec_programs_bit_exact_and_cycle_equal():
    assert compare_random_programs(random_vec_program, SMALL, N_RANDOM) > 0


def test_a_wrong_vec_latency_is_caught_by_the_rtl_only():
    wrong = dataclasses.replace(SMALL, vec_latency=SMALL.vec_latency - 1)
    seed = next(s for s in range(100) if sum(b.op_in("VEC") is not None for b in random_vec_program(s, SMALL)[0]) == 1)
    bundles, image = random_vec_program(seed, SMALL, schedule_target=wrong)
    run_sim(wrong, bundles, image)  # the simulator, told that latency, runs it
    with pytest.raises(RtlError, match="RAW hazard"):
        run_rtl(SMALL, bundles, image)


def test_rmsnorm_cycles_per_group_and_pass():
    op = Instruction("vec", dict(dst=0x400, a=0, b=0, rows=2, cols=12, a_ld=12, b_ld=12, dst_ld=12, a_type="f32",
                                 a_exp=0, b_type="f32", b_exp=0, b_mode="none", op0="rmsnorm", op1="none",
                                 op2="none", op3="none", group=4, eps=0.0, out_type="f32", out_scale=1.0))
    assert costs.occupancy(op, SMALL) == 2 * 3 * 2 * 1  # rows * groups * passes * ceil(group / lanes)
    wide = Instruction("vec", {**dict(op.args), "group": 12, "op0": "silu"})  # no rmsnorm: one pass
    assert costs.occupancy(wide, SMALL) == 2 * 2 and costs.occupancy(wide, PRESETS["vc709"]) == 1
    argmax = Instruction("vec.argmax", dict(dst=0, a=0, rows=3, cols=9))
    assert costs.occupancy(argmax, SMALL) == 3 * 2 and costs.occupancy(argmax, PRESETS["vc709"]) == 1


def test_a_beat_goes_round_smalls_one_stage_once_per_micro_op():
    """small's vec_stages = 1: a beat holds the unit one cycle per micro-op other than none (at least one);
    vc709's four stages take any chain in one pass, so its cycles are the rule without stages."""
    args = dict(dst=0x400, a=0, b=0x200, rows=3, cols=20, a_ld=20, b_ld=20, dst_ld=20, a_type="i8", a_exp=0,
                b_type="f32", b_exp=0, b_mode="full", group=10, eps=0.0, out_type="f32", out_scale=1.0)
    for ops, per_beat in ((("none",) * 4, 1), (("none", "silu", "none", "none"), 1),
                          (("add", "none", "none", "mul"), 2), (("rmsnorm", "mul", "add", "none"), 3),
                          (("mul", "gate", "rmsnorm", "softplus"), 4)):
        op = Instruction("vec", {**args, **dict(zip(costs.VEC_MICRO_OP_FIELDS, ops))})
        # rows * groups * passes * ceil(10 / 8), or rows * ceil(20 / 8)
        beats = 3 * 2 * 2 * 2 if "rmsnorm" in ops else 3 * 3
        assert costs.vec_beat_cycles(op, SMALL) == per_beat and costs.occupancy(op, SMALL) == beats * per_beat
        assert costs.vec_beat_cycles(op, PRESETS["vc709"]) == 1
        two = dataclasses.replace(SMALL, vec_stages=2)
        assert costs.occupancy(op, two) == beats * max(1, -(-per_beat // 2))


def _run_unit(target, word_bytes: int, buf_bytes: int, ops, mem: np.ndarray) -> dict:
    """The VEC unit on a buffer in Amaranth's simulator: each op starts the first cycle `ready` allows; returns
    the start cycles, (done cycle, entry) pairs, busy cycles and the final buffer bytes."""
    from amaranth.hdl import Module
    from amaranth.sim import Simulator

    buf = Buffer(buf_bytes, word_bytes)
    m = Module()
    buf.add_to(m)
    unit = VecUnit(target, buf, m)
    m.submodules.unit = unit
    log: dict = {"start": [], "done": [], "busy": 0}

    async def bench(ctx):
        for b, bank in enumerate(buf.banks):
            for row in range(buf.rows):
                word = 2 * row + b
                ctx.set(bank.data[row], int.from_bytes(mem[word * word_bytes:(word + 1) * word_bytes].tobytes(),
                                                       "little"))
        pending = list(ops)
        for cycle in range(sum(costs.duration(op, target) for op in ops) + 4):
            go = bool(pending) and ctx.get(unit.ready)
            if go:
                ctx.set(unit.op, int.from_bytes(encode_instruction(pending.pop(0)), "little"))
                ctx.set(unit.entry, len(ops) - len(pending))
                log["start"].append(cycle)
            ctx.set(unit.start, int(go))
            log["busy"] += ctx.get(unit.busy_cycle)
            if ctx.get(unit.done):
                log["done"].append((cycle, ctx.get(unit.done_entry)))
            await ctx.tick()
        out = bytearray(buf_bytes)
        for b, bank in enumerate(buf.banks):
            for row in range(buf.rows):
                word = 2 * row + b
                out[word * word_bytes:(word + 1) * word_bytes] = ctx.get(bank.data[row]).to_bytes(word_bytes, "little")
        log["mem"] = np.frombuffer(bytes(out), np.uint8)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return log


def test_the_controller_in_amaranth_sim_two_ports_back_to_back():
    target = dataclasses.replace(SMALL, vec_lanes=2)
    rng = np.random.default_rng(5)
    mem = rng.integers(0, 256, 512, dtype=np.uint8)
    mem[0:96] = (rng.standard_normal(24) * 3).astype("<f4").view(np.uint8)
    mem[96:128] = rng.integers(-100, 100, 32).astype(np.int8).view(np.uint8)
    common = dict(a_exp=0, b_exp=0, op2="none", op3="none", group=0, eps=0.0, out_scale=1.0)
    ops = [
        Instruction("vec", {**common, **dict(dst=0x100, a=0, b=96, rows=2, cols=5, a_ld=6, b_ld=7, dst_ld=6,
                                             a_type="f32", b_type="i8", b_exp=-3, b_mode="full", op0="add",
                                             op1="rmsnorm", op2="mul", group=5, eps=1e-5, out_type="f32")}),
        Instruction("vec", {**common, **dict(dst=0x141, a=98, b=4, rows=3, cols=3, a_ld=5, b_ld=0, dst_ld=4,
                                             a_type="i16", a_exp=2, b_type="f32", b_mode="row", op0="silu",
                                             op1="mul", out_type="i8", out_scale=0.25)}),
        Instruction("vec.argmax", dict(dst=0x160, a=8, rows=3, cols=5)),
        Instruction("vec", {**common, **dict(dst=0x170, a=0, b=0, rows=1, cols=4, a_ld=4, b_ld=4, dst_ld=4,
                                             a_type="f32", b_type="f32", b_mode="none", op0="rmsnorm", op1="none",
                                             group=2, out_type="i16", out_scale=100.0)}),
    ]
    log = _run_unit(target, 4, 512, ops, mem)
    state = MachineState(ddr=np.zeros(16, np.uint8), buf=mem.copy())
    for op in ops:
        (ARGMAX if op.op == "vec.argmax" else CHAIN).execute(op, state, target)
    assert np.array_equal(log["mem"], state.buf)
    occ = [costs.occupancy(op, target) for op in ops]
    starts = [0] + list(np.cumsum(occ)[:-1])
    assert log["start"] == starts and log["busy"] == sum(occ)
    assert log["done"] == [(s + o - 1 + target.vec_latency, i + 1) for i, (s, o) in enumerate(zip(starts, occ))]
