"""assign-scales: quantize the linear layers (W8A8) and the conv1d and SSM (power-of-two fixed point).

Place in the flow: after calibrate, whose `mamba_quant.range` attributes it reads;
before approximate-nonlinear and fuse-elementwise.  The scales come from
compiler/quant/plan.py, the same functions the golden model's plan uses.

- mamba.linear(x, W) [x possibly hadamard(x0){b}] ->
      qlinear(quantize(x0){out_scale -> i8 | i16}, quantize_weight(W){granularity}){hlog2, qmul, qshift, act_scale}
  int8 weights per output channel (or per tensor), int8 activations with one static
  scale per tensor from calibration, requantized by qmul / 2^qshift in the LIN unit.
- mamba.lm_head(x, W) with head="int8": the same as a linear (its input the rmsnorm'd residual
  stream, which fuse-elementwise fuses with the quantize into one VEC pass; its weight the
  head with norm_f folded in).  A rotated head needs insert-hadamard{head=true} before
  calibrate, so that calibration sees the rotated input ("xr") as for the projections.
- mamba.conv1d -> dequantize(qconv1d(quantize(x){2^fx}, to_fixed(w){fw}, to_fixed(bias){fx+fw}){shift}){-fo}
- mamba.ssm_scan(x, softplus(dt_raw + dt_bias), A_log, B, C, D) ->
      dequantize(qssm_scan(quantize(x), quantize(dt_raw), ssm_params(A_log, D, dt_bias), quantize(B), quantize(C)){-fy}
  with nonlinear = "exact" (approximate-nonlinear switches the unit to its table).
Bit widths from the target: 16-bit conv and SSM inputs, the target's NLA width and state width.

Options: granularity ("channel" or "tensor"), activations ("static": one scale per tensor from
calibration; "dynamic": per-token scales chosen at run time by mamba_quant.qlinear_dynamic, which
the LIN unit runs one row at a time), conv_ssm (false: linear layers only), head ("f32": the
LM head stays a binary32 mamba.lm_head, the default; "int8": W8A8 as above, with the same
granularity and activations).  The SSM's formats come from the module's target (set-target).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from xdsl.context import Context
from xdsl.dialects import builtin
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import GreedyRewritePatternApplier, PatternRewriter, PatternRewriteWalker, RewritePattern
from xdsl.transforms.dead_code_elimination import dce

from fastmamba.compiler.dialects import mamba
from fastmamba.compiler.dialects import mamba_quant as mq
from fastmamba.compiler.dialects.accel import module_target
from fastmamba.compiler.quant.plan import conv_quant, linear_quant, ssm_quant
from fastmamba.isa.errors import InputError
from fastmamba.isa.target import Target

RANGE_ATTR = "mamba_quant.range"


def ranges_of(op: Operation) -> dict[str, float] | None:
    attr = op.attributes.get(RANGE_ATTR)
    if not isinstance(attr, builtin.DictionaryAttr):
        return None
    return {k: v.value.data for k, v in attr.data.items() if isinstance(v, builtin.FloatAttr)}


def _need(op: Operation, r: dict[str, float], keys) -> None:
    missing = [k for k in keys if k not in r]
    if missing:
        raise InputError(f"assign-scales: {op.name} has no calibrated {', '.join(missing)} (run calibrate first)")


@dataclass
class QuantizeLinear(RewritePattern):
    granularity: str
    dynamic: bool = False
    head: bool = False  # also mamba.lm_head

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not (isinstance(op, mamba.LinearOp) or (self.head and isinstance(op, mamba.LMHeadOp))):
            return
        if (r := ranges_of(op)) is None:
            return
        _need(op, r, ("x", "xr"))
        x = op.x
        block = 1
        if isinstance(x.owner, mq.HadamardOp):
            block = x.owner.block.value.data
            x = x.owner.x
        q = linear_quant(r, block, self.granularity, self.dynamic)
        qa = mq.QuantizeOp(x, q.out_scale, q.in_type)
        qw = mq.QuantizeWeightOp(op.weight, self.granularity)
        if q.dynamic:
            ql = mq.QLinearDynamicOp(qa.result, qw.wq, qw.scale, q.hlog2, q.in_scale)
        else:
            ql = mq.QLinearOp(qa.result, qw.wq, qw.scale, q.hlog2, q.qmul, q.qshift, q.act_scale)
        rewriter.replace(op, [qa, qw, ql], [ql.result])


class QuantizeConv(RewritePattern):
    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, mamba.Conv1dOp) or (r := ranges_of(op)) is None:
            return
        _need(op, r, ("x", "y", "w"))
        q = conv_quant(r, r["w"])
        new: list[Operation] = []
        xq = mq.QuantizeOp(op.x, 2.0 ** q.fx, "i16")
        wq = mq.ToFixedOp(op.weight, q.fw, "i16")
        new += [xq, wq]
        if op.bias is not None:
            bias = mq.ToFixedOp(op.bias, q.fx + q.fw, "i32")
        else:
            zeros = mq.FillOp(0.0, mamba.tensor_type((op.x.type.get_shape()[1],)))
            bias = mq.ToFixedOp(zeros.result, 0, "i32")
            new.append(zeros)
        new.append(bias)
        state = None
        if op.state is not None:
            sq = mq.QuantizeOp(op.state, 2.0 ** q.fx, "i16")
            new.append(sq)
            state = sq.result
        qc = mq.QConv1dOp(xq.result, wq.result, bias.result, state, q.shift)
        y = mq.DequantizeOp(qc.result, -q.fo)
        st = mq.DequantizeOp(qc.new_state, -q.fx)
        rewriter.replace(op, [*new, qc, y, st], [y.result, st.result])


@dataclass
class QuantizeSSM(RewritePattern):
    target: Target

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, mamba.SSMScanOp) or (r := ranges_of(op)) is None:
            return
        soft = op.dt.owner
        if not (isinstance(soft, mamba.SoftplusOp) and isinstance(soft.x.owner, mamba.AddOp)):
            return  # dt is not softplus(dt_raw + dt_bias): the SSM unit cannot take it; stays float
        add = soft.x.owner
        if len(add.rhs.type.get_shape()) != 1:
            return
        _need(op, r, ("x", "B", "C", "dt_raw", "dt", "state", "y", "A", "D"))
        t = self.target
        q = ssm_quant(r, r["A"], r["D"], nla_bits=t.nla_bits, nla_segments=t.nla_segments, state_bits=t.ssm_state_bits)
        xq = mq.QuantizeOp(op.x, 2.0 ** q.fx, "i16")
        bq = mq.QuantizeOp(op.B, 2.0 ** q.fb, "i16")
        cq = mq.QuantizeOp(op.C, 2.0 ** q.fc, "i16")
        dq = mq.QuantizeOp(add.lhs, 2.0 ** q.dt_frac, "i16")
        params = mq.SSMParamsOp(op.A_log, op.D, add.rhs, q.a_frac, q.fd, q.dt_frac)
        new: list[Operation] = [xq, bq, cq, dq, params]
        state = None
        if op.state is not None:
            sq = mq.QuantizeOp(op.state, 2.0 ** q.fh, "i32")
            new.append(sq)
            state = sq.result
        qs = mq.QSSMScanOp(xq.result, dq.result, params.result, bq.result, cq.result, state,
                           op.new_state.type.get_shape(), dt_frac=q.dt_frac, a_frac=q.a_frac, dbx_shift=q.dbx_shift,
                           y_shift=q.y_shift, d_shift=q.d_shift, nonlinear="exact")
        y = mq.DequantizeOp(qs.y, -q.fy)
        st = mq.DequantizeOp(qs.new_state, -q.fh)
        rewriter.replace(op, [*new, qs, y, st], [y.result, st.result])


@dataclass(frozen=True)
class AssignScalesPass(ModulePass):
    """Replace calibrated linear, conv1d and SSM ops (and with head="int8" the LM head) by their quantized forms."""

    name = "assign-scales"

    granularity: Literal["channel", "tensor"] = "channel"
    activations: Literal["static", "dynamic"] = "static"
    conv_ssm: bool = True
    head: Literal["f32", "int8"] = "f32"

    def apply(self, ctx: Context, op: builtin.ModuleOp) -> None:
        if not any(RANGE_ATTR in o.attributes for o in op.walk()):
            raise InputError("assign-scales: no calibrated ranges in the IR (run calibrate first)")
        patterns: list[RewritePattern] = [QuantizeLinear(self.granularity, self.activations == "dynamic",
                                                         self.head == "int8")]
        if self.conv_ssm:
            patterns += [QuantizeConv(), QuantizeSSM(module_target(op, self.name))]
        PatternRewriteWalker(GreedyRewritePatternApplier(patterns), apply_recursively=False).rewrite_module(op)
        dce(op)  # the float dt chain (add, softplus) the SSM unit absorbed
