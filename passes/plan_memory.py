"""plan-memory: DDR layout and on-chip buffer allocation of lowered `accel.program`s.

Place in the flow: after lower-to-accel, before schedule-vliw.  Replaces the
symbolic memory of every instruction (its `mem` attribute) with addresses:
constant blocks once in a shared image at DDR 0, each program's tensors after
it, buffers placed by lifetime in the order a schedule on symbolic memory
issues the ops (compiler/backend/memory.py).  The target is the module's (set-target).  Option: `lookahead`
(how many ops an op may move up in that reordering; 0 keeps the lowering's order).  A buffer that
does not fit the target is an error naming it and the sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from fastmamba.compiler.backend.memory import DEFAULT_LOOKAHEAD, plan_memory
from fastmamba.compiler.dialects.accel import module_target


@dataclass(frozen=True)
class PlanMemoryPass(ModulePass):
    name = "plan-memory"

    lookahead: int = DEFAULT_LOOKAHEAD

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        plan_memory(op, module_target(op, self.name), self.lookahead)
