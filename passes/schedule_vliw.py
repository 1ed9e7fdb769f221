"""schedule-vliw: group an `accel.program`'s instructions into VLIW bundles with delays, semaphores and waits.

Place in the flow: after lower-to-accel and plan-memory, before the emitter
(compiler/backend/emit.py).  Input: `accel.program`s holding instruction ops
in program order (LD/ST semaphores unset or ignored; any ctl ops are dropped,
the pass places its own).  Output: the same operations in `accel.bundle`s
whose meaning equals the program order, which run on the accelerator with no
hazard, DMA overlapped with compute, ending with `accel.ctl.halt`.  The
algorithm (dependence graph, critical-path list scheduling, DMA
synchronization, static timing from isa.costs) is compiler.backend.schedule.
Programs already scheduled are left as they are.  Debug text of each op
travels with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter

from fastmamba.compiler.backend.schedule import schedule
from fastmamba.compiler.dialects.accel import (AccelInstructionOp, BundleOp, ProgramOp, instruction_of, module_target,
                                               op_of)
from fastmamba.isa.instructions import Instruction


@dataclass(frozen=True)
class ScheduleVliwPass(ModulePass):
    """Option: `lookahead` (0: unlimited reordering).  The target is the module's (set-target)."""

    name = "schedule-vliw"

    lookahead: int = 0

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        target = module_target(op, self.name)
        for program in [p for p in op.walk() if isinstance(p, ProgramOp)]:
            if program.is_scheduled:
                continue
            loose = [o for o in program.body.block.ops if isinstance(o, AccelInstructionOp) and o.slot != "CTL"]
            instrs = [instruction_of(o) for o in loose]
            result = schedule(instrs, target, self.lookahead)
            for old in list(program.body.block.ops):
                if isinstance(old, AccelInstructionOp) and old.slot != "CTL":
                    old.detach()  # moved into its bundle below
                else:
                    Rewriter.erase_op(old)
            bundles = []
            for bundle, sources in zip(result.bundles, result.sources):
                # an operation moves into its bundle, the fields the schedule changed (an LD/ST's semaphore) set in
                # place; the ctl ops it placed are new ops
                ops = [op_of(i) if n is None else _updated(loose[n], instrs[n], i) for i, n in zip(bundle.ops, sources)]
                bundles.append(BundleOp(ops, bundle.delay))
            program.body.block.add_ops(bundles)


def _updated(op: AccelInstructionOp, before: Instruction, after: Instruction) -> AccelInstructionOp:
    """`op` (standing for `before`) with the fields `after` changes set."""
    if after is not before:
        for name, value in after.args.items():
            if value != before[name]:
                op.set_field(name, value)
    return op
