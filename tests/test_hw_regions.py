"""hardware/regions.py: the region forms recovered from the instruction table, and their RTL spans.

The forms (const x field [x field] + offset per flag combination) must give
exactly `Instruction.regions()` for random instructions of every op the RTL
runs; the Amaranth expressions `op_ranges` builds from them, evaluated in
Amaranth's simulator, must give the same spans (`Region.span`).
"""

from __future__ import annotations

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import data
from amaranth.sim import Simulator

from fastmamba.hardware.decode import op_layout
from fastmamba.hardware.regions import flag_fields, op_ranges, region_forms
from fastmamba.isa.encoding import encode_instruction
from fastmamba.isa.instructions import OPS, Instruction

OPS_RTL = ("ld", "ldg", "st", "lin", "conv", "ssm", "vec", "vec.argmax")


def random_instruction(op: str, rng: random.Random) -> Instruction:
    args = {}
    for f in OPS[op].fields:
        if f.kind == "f32":
            args[f.name] = 1.0
        elif f.kind == "enum" or f.bits == 1:
            args[f.name] = rng.randint(0, f.max)
        else:
            args[f.name] = rng.choice([0, 1, rng.randint(0, min(f.max, 5000)), rng.randint(0, min(f.max, 1 << 20))])
    if op == "conv":
        args["kw"] = max(1, args["kw"])  # kw = 0 would give -1 state rows (the units refuse kw < 2)
    return Instruction(op, args)


@pytest.mark.parametrize("op", OPS_RTL)
def test_forms_reproduce_the_table(op):
    rng = random.Random(op)
    for _ in range(200):
        instr = random_instruction(op, rng)
        flags = tuple(int(instr[f]) for f in flag_fields(op))
        forms = dict(region_forms(op))[flags]
        regions = instr.regions()
        assert len(forms) == len(regions)
        for rf, r in zip(forms, regions):
            assert (rf.space, rf.field, rf.access, rf.align) == (r.space, r.field, r.access, r.align)
            assert (rf.rows.value(instr.args), rf.row_bytes.value(instr.args), rf.stride.value(instr.args)) == \
                (r.rows, r.row_bytes, r.stride)


@pytest.mark.parametrize("op", ("ldg", "lin", "conv", "ssm", "vec"))
def test_rtl_spans_equal_the_table(op):
    rng = random.Random(op + "rtl")
    layout = op_layout(op)
    raw = Signal(layout.size)
    view = data.View(layout, raw)
    count = max(len(f) for _, f in region_forms(op))
    m = Module()
    ranges = op_ranges(m, op, view, count)
    outs = []
    for i, r in enumerate(ranges):
        sig = {k: Signal(64, name=f"r{i}_{k}") for k in ("valid", "lo", "hi", "read", "write")}
        m.d.comb += [sig[k].eq(r[k]) for k in sig]
        outs.append(sig)
    instrs = [random_instruction(op, rng) for _ in range(20)]
    sim = Simulator(m)

    async def bench(ctx):
        for instr in instrs:
            ctx.set(raw, int.from_bytes(encode_instruction(instr), "little") & ((1 << layout.size) - 1))
            regions = instr.regions()
            for i, sig in enumerate(outs):
                if i < len(regions):
                    r = regions[i]
                    assert ctx.get(sig["valid"]) == 1
                    assert (ctx.get(sig["lo"]), ctx.get(sig["hi"])) == r.span
                    assert ctx.get(sig["read"]) == (r.access in ("r", "rw"))
                    assert ctx.get(sig["write"]) == (r.access in ("w", "rw"))
                else:
                    assert ctx.get(sig["valid"]) == 0

    sim.add_testbench(bench)
    sim.run()
