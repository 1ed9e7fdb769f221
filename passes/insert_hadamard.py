"""insert-hadamard: block Hadamard rotations on the linear layers (in_proj, out_proj; optionally the LM head).

Place in the flow: after fold-norm-weights, before calibrate.  Each
mamba.linear(x, W) becomes linear(hadamard(x){b}, rotate_columns(W){b}): the weight
is rotated offline (a weight expression, evaluated into the weight store), the
activation online by an explicit op the LIN unit executes.  With R = blockdiag(H_b/sqrt(b))
orthonormal, (x R)(W R)^T = x W^T: outputs unchanged in FP32 (within rounding),
while an outlier channel of x is spread over its block.

Options: block (0: the largest power of two dividing each layer's input width, at
most the target's hadamard_max_block; else a power of two dividing every width),
head (false: the LM head is left alone; true: mamba.lm_head is rotated the same way,
for a W8A8 head, assign-scales{head="int8"}).  hadamard_max_block is the module's
target's (set-target).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import builtin
from xdsl.passes import ModulePass
from xdsl.ir import Operation
from xdsl.pattern_rewriter import PatternRewriter, PatternRewriteWalker, RewritePattern
from xdsl.rewriter import InsertPoint

from fastmamba.compiler.dialects import mamba
from fastmamba.compiler.dialects import mamba_quant as mq
from fastmamba.compiler.quant.hadamard import check_block, default_block
from fastmamba.compiler.dialects.accel import module_target


@dataclass
class RotateLinear(RewritePattern):
    block: int
    max_block: int
    head: bool = False

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not (isinstance(op, mamba.LinearOp) or (self.head and isinstance(op, mamba.LMHeadOp))):
            return
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
    """Rotate every mamba.linear (and with head=true the mamba.lm_head) by block Hadamard matrices."""

    name = "insert-hadamard"

    block: int = 0
    head: bool = False

    def apply(self, ctx: Context, op: builtin.ModuleOp) -> None:
        max_block = module_target(op, self.name).hadamard_max_block
        PatternRewriteWalker(RotateLinear(self.block, max_block, self.head), apply_recursively=False).rewrite_module(op)
