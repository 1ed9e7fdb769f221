"""insert-hadamard: block Hadamard rotations on the linear layers (in_proj, out_proj).

Place in the flow: after fold-norm-weights, before calibrate.  Each
mamba.linear(x, W) becomes linear(hadamard(x){b}, rotate_columns(W){b}): the weight
is rotated offline (a weight expression, evaluated into the weight store), the
activation online by an explicit op the LIN unit executes.  With R = blockdiag(H_b/sqrt(b))
orthonormal, (x R)(W R)^T = x W^T: outputs unchanged in FP32 (within rounding),
while an outlier channel of x is spread over its block.

Options: block (0: the largest power of two dividing each layer's input width, at
most the target's hadamard_max_block; else a power of two dividing every width),
target (a preset name or file, for hadamard_max_block).  The LM head is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import builtin
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter, PatternRewriteWalker, RewritePattern, op_type_rewrite_pattern
from xdsl.rewriter import InsertPoint

from compiler.dialects import mamba
from compiler.dialects import mamba_quant as mq
from compiler.quant.hadamard import check_block, default_block
from isa.target import load_target


@dataclass
class RotateLinear(RewritePattern):
    block: int
    max_block: int

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: mamba.LinearOp, rewriter: PatternRewriter) -> None:
        if isinstance(op.x.owner, mq.HadamardOp):
            return  # already rotated
        k = op.x.type.get_shape()[1]
        block = self.block or default_block(k, self.max_block)
        check_block(block, k, self.max_block)
        if block == 1:
            return
        rot_x = mq.HadamardOp(op.x, block)
        rot_w = mq.RotateColumnsOp(op.weight, block)
        rewriter.insert(rot_x, InsertPoint.before(op))
        rewriter.insert(rot_w, InsertPoint.before(op))
        op.operands = [rot_x.result, rot_w.result]
        rewriter.notify_op_modified(op)


@dataclass(frozen=True)
class InsertHadamardPass(ModulePass):
    """Rotate every mamba.linear by block Hadamard matrices (weights offline, activations online)."""

    name = "insert-hadamard"

    block: int = 0
    target: str = "vc709"

    def apply(self, ctx: Context, op: builtin.ModuleOp) -> None:
        max_block = load_target(self.target).hadamard_max_block
        PatternRewriteWalker(RotateLinear(self.block, max_block), apply_recursively=False).rewrite_module(op)
