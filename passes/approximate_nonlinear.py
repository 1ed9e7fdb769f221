"""approximate-nonlinear: exp and softplus by the paper's first-order approximations.

Place in the flow: after assign-scales, before fuse-elementwise.  The NLA
computes e^x = 2^(1.4375 x) with 2^v from an 8-segment first-order table, and
softplus(x) ~ e^x for x <= 0, x + e^-x for x > 0 (docs/NUMERICS.md §4; the
segment count and width from the target).  This pass
- switches every mamba_quant.qssm_scan from nonlinear = "exact" (float softplus
  and exp rounded to the unit's formats) to "table" (the NLA), and
- replaces a float mamba.softplus by mamba_quant.softplus_approx (the same
  approximation in real arithmetic), for a model left in floating point.
SiLU and RMSNorm stay in floating point (the VEC unit).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import builtin
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import GreedyRewritePatternApplier, PatternRewriter, PatternRewriteWalker, RewritePattern

from fastmamba.compiler.dialects import mamba
from fastmamba.compiler.dialects import mamba_quant as mq


class TableSSM(RewritePattern):
    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if isinstance(op, mq.QSSMScanOp) and op.nonlinear.data != "table":
            op.nonlinear = builtin.StringAttr("table")
            rewriter.notify_op_modified(op)


class ApproxSoftplus(RewritePattern):
    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if isinstance(op, mamba.SoftplusOp) and op.x.type.element_type == builtin.f32:
            rewriter.replace(op, mq.SoftplusApproxOp(op.x))


@dataclass(frozen=True)
class ApproximateNonlinearPass(ModulePass):
    """exp and softplus by the NLA's first-order approximations (SiLU and RMSNorm stay float)."""

    name = "approximate-nonlinear"

    def apply(self, ctx: Context, op: builtin.ModuleOp) -> None:
        PatternRewriteWalker(GreedyRewritePatternApplier([TableSSM(), ApproxSoftplus()]),
                             apply_recursively=False).rewrite_module(op)
