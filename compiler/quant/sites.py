"""Names of quantization sites: which checkpoint tensor an IR op belongs to.

Place in the flow: shared by the passes (calibrate records ranges per site,
assign-scales reads them) and by the tensor-level calibration of the evaluation,
so both speak of the same tensors.  A site is the checkpoint name of the op's
weight without ".weight": "backbone.layers.0.mixer.in_proj",
"backbone.layers.0.mixer.conv1d", "backbone.layers.0.mixer" (the SSM, by its A_log).
The LM head is HEAD_SITE ("lm_head") whether its weight is lm_head.weight or tied to
backbone.embeddings.weight (a matmul by the embeddings can only be the head).
"""

from __future__ import annotations

from xdsl.ir import Operation, SSAValue

from fastmamba.compiler.dialects import mamba
from fastmamba.compiler.dialects import mamba_quant as mq
from fastmamba.compiler.quant.plan import HEAD_SITE

__all__ = ["HEAD_SITE", "WEIGHT_EXPRESSIONS", "weight_name", "site_of"]

# Ops that only transform weights (evaluated offline).
# The offline weight expressions: pure functions of named weights, evaluated when the constants are built.
WEIGHT_EXPRESSIONS = (mamba.WeightOp, mq.FillOp, mq.ScaleColumnsOp, mq.RotateColumnsOp, mq.QuantizeWeightOp,
                      mq.ToFixedOp,
                      mq.SSMParamsOp)


def weight_name(value: SSAValue) -> str | None:
    """The checkpoint name a weight value derives from (through offline weight expressions), or None."""
    op = value.owner
    while isinstance(op, Operation) and isinstance(op, WEIGHT_EXPRESSIONS):
        if isinstance(op, mamba.WeightOp):
            return op.weight_name.data
        if not op.operands:
            return None
        op = op.operands[0].owner
    return None


def site_of(op: Operation) -> str | None:
    """The site of a linear, conv or SSM op (mamba or mamba_quant), from its weight's checkpoint name."""
    operand = {
        mamba.LinearOp: 1, mamba.LMHeadOp: 1, mq.QLinearOp: 1, mamba.Conv1dOp: 1,
        mamba.SSMScanOp: 2, mamba.SSMStepOp: 2,
    }.get(type(op))
    if operand is None:
        return None
    if isinstance(op, mamba.LMHeadOp):
        return HEAD_SITE
    name = weight_name(op.operands[operand])
    if name is None:
        return None
    for suffix in (".weight", ".A_log"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return HEAD_SITE if name == "backbone.embeddings" else name  # (a quantized head)
