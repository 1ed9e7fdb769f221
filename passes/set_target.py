"""set-target: record the hardware the module is compiled for, once, as the module attribute `accel.target`.

Place in the flow: first (fastmamba compile runs it from --target; after an
import, `fastmamba opt -p 'set-target{target=NAME|FILE},...'`).  Every pass
that needs hardware facts (insert-hadamard, calibrate, assign-scales,
lower-to-accel, plan-memory, schedule-vliw) reads the target from this
attribute (compiler.dialects.accel.module_target), so one pipeline cannot mix
targets.  Option: `target`, a preset name or a .toml/.json file (recorded by
its absolute path with the digest of its parameters).  A later set-target
replaces the attribute.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from fastmamba.compiler.dialects.accel import TARGET_ATTR, target_attr


@dataclass(frozen=True)
class SetTargetPass(ModulePass):
    """Record the target (a preset name or a target file) on the module."""

    name = "set-target"

    target: str = "vc709"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        op.attributes[TARGET_ATTR] = target_attr(self.target)
