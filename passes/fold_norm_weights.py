"""fold-norm-weights: fold each RMSNorm scale into the linear layers that read the norm.

Place in the flow: the first quantization pass, before insert-hadamard (a rotation
must see the scaled weights, not an activation scaled per channel).  For
rmsnorm(x, g) or gated_rmsnorm(y, z, g) whose every use is a linear layer's input
(mamba.linear or mamba.lm_head, possibly through row slices), each such layer's
weight W becomes scale_columns(W, g) = W diag(g) and the norm's weight a fill of
1.0:  (n * g) W^T = n (W diag(g))^T, exact in real arithmetic (the interpreter
agrees with the unfolded IR within float32 rounding).  A norm read by anything
else keeps its weight.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import builtin
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from fastmamba.compiler.dialects import mamba
from fastmamba.compiler.dialects import mamba_quant as mq

_LINEAR = (mamba.LinearOp, mamba.LMHeadOp)


def _linear_readers(value: SSAValue) -> list[Operation] | None:
    """The linear ops reading `value` as their input (through row slices), or None if any use is something else."""
    readers: list[Operation] = []
    for use in value.uses:
        user = use.operation
        if isinstance(user, _LINEAR) and use.index == 0:
            readers.append(user)
        elif isinstance(user, mamba.SliceOp) and user.axis.value.data == 0:
            inner = _linear_readers(user.result)
            if inner is None:
                return None
            readers.extend(inner)
        else:
            return None
    return readers


def _fold(norm: Operation, weight: SSAValue, rewriter: PatternRewriter) -> None:
    if isinstance(weight.owner, mq.FillOp):
        return  # already folded
    readers = _linear_readers(norm.results[0])
    if not readers:
        return
    for linear in readers:
        scaled = mq.ScaleColumnsOp(linear.operands[1], weight)
        rewriter.insert(scaled, InsertPoint.before(linear))
        linear.operands[1] = scaled.result
        rewriter.notify_op_modified(linear)
    ones = mq.FillOp(1.0, weight.type)
    rewriter.insert(ones, InsertPoint.before(norm))
    norm.operands[len(norm.operands) - 1] = ones.result
    rewriter.notify_op_modified(norm)


class FoldRMSNorm(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: mamba.RMSNormOp, rewriter: PatternRewriter) -> None:
        _fold(op, op.weight, rewriter)


class FoldGatedRMSNorm(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: mamba.GatedRMSNormOp, rewriter: PatternRewriter) -> None:
        _fold(op, op.weight, rewriter)


@dataclass(frozen=True)
class FoldNormWeightsPass(ModulePass):
    """Fold RMSNorm and gated-RMSNorm weights into the linear layers that read them."""

    name = "fold-norm-weights"

    def apply(self, ctx: Context, op: builtin.ModuleOp) -> None:
        PatternRewriteWalker(GreedyRewritePatternApplier([FoldRMSNorm(), FoldGatedRMSNorm()]),
                             apply_recursively=False).rewrite_module(op)
