"""fuse-elementwise: chains of element-wise ops fused into single VEC passes.

Place in the flow: the last quantization pass, after approximate-nonlinear; the
accelerator lowering maps each mamba_quant.vec to one VEC instruction.  First
every element-wise op on [rows, cols] tensors becomes a one-pass mamba_quant.vec
(VEC semantics, docs/NUMERICS.md §6): rmsnorm (weight folded to 1, or a `mul` by
the weight), gated_rmsnorm with a folded weight (`gate`, `rmsnorm`), silu,
softplus, add, mul, dequantize (the input exponent) and quantize (the integer
output).  Then a vec whose f32 result feeds only the `a` operand of another is
merged into it while the chain stays one pass: at most 4 micro-ops, one `b`
operand, one rmsnorm group.  A column-wise vec (silu, softplus: no `b`, no
norm) whose result is only sliced, each slice feeding a vec, is merged into
each of them, which reads its slice of the first vec's input instead (the
SiLU of the conv output and the quantizations of x, B and C become one pass
each).  Fusing never changes a value: the unit keeps the
same binary32 intermediates it would have stored.

The module gets `mamba_quant.fused = {converted, fused, passes}`: how many ops
became VEC passes, how many passes were merged away, how many remain.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xdsl.context import Context
from xdsl.dialects import builtin
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import GreedyRewritePatternApplier, PatternRewriter, PatternRewriteWalker, RewritePattern
from xdsl.transforms.dead_code_elimination import dce

from fastmamba.compiler.dialects import mamba
from fastmamba.compiler.dialects import mamba_quant as mq

FUSED_ATTR = "mamba_quant.fused"


def _rank2(*values) -> bool:
    return all(len(v.type.get_shape()) == 2 for v in values)


def _is_ones(value) -> bool:
    return isinstance(value.owner, mq.FillOp) and value.owner.value.value.data == 1.0


def _as_vec(op: Operation) -> mq.VecOp | None:
    """The one-pass VEC form of an element-wise op, or None."""
    if isinstance(op, mamba.RMSNormOp) and _rank2(op.x):
        d = op.x.type.get_shape()[1]
        eps = op.eps.value.data
        if _is_ones(op.weight):
            return mq.VecOp(op.x, None, ["rmsnorm"], group=d, eps=eps)
        return mq.VecOp(op.x, op.weight, ["rmsnorm", "mul"], group=d, eps=eps)
    if isinstance(op, mamba.GatedRMSNormOp) and _rank2(op.y) and _is_ones(op.weight):
        return mq.VecOp(op.y, op.z, ["gate", "rmsnorm"], group=op.group_size.value.data, eps=op.eps.value.data)
    if isinstance(op, mamba.SiluOp | mamba.SoftplusOp) and _rank2(op.x) and op.x.type.element_type == builtin.f32:
        return mq.VecOp(op.x, None, ["silu" if isinstance(op, mamba.SiluOp) else "softplus"])
    if isinstance(op, mamba.AddOp | mamba.MulOp) and _rank2(op.lhs) and op.lhs.type.element_type == builtin.f32:
        return mq.VecOp(op.lhs, op.rhs, ["add" if isinstance(op, mamba.AddOp) else "mul"])
    if isinstance(op, mq.DequantizeOp) and _rank2(op.x):
        return mq.VecOp(op.x, None, [], a_exp=op.exp.value.data)
    if isinstance(op, mq.QuantizeOp) and _rank2(op.x):
        out = mq.int_type_name(op.result.type.element_type)
        return mq.VecOp(op.x, None, [], out_type=out, out_scale=op.out_scale.value.data)
    return None


@dataclass
class ToVec(RewritePattern):
    count: list[int] = field(default_factory=lambda: [0])

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        vec = _as_vec(op)
        if vec is not None:
            rewriter.replace(op, vec)
            self.count[0] += 1


def _chain(first: mq.VecOp, op: mq.VecOp, a) -> mq.VecOp:
    """One pass doing `first`'s micro-ops then `op`'s on `a` (first's input, or a slice of it): the one `b`
    and the one rmsnorm group of the two, op's output type and scale."""
    norm = next((v for v in (first, op) if "rmsnorm" in v.micro_ops), op)
    b, b_exp = (first.b, first.b_exp.value.data) if first.b is not None else (op.b, op.b_exp.value.data)
    out = mq.int_type_name(op.result.type.element_type) or "f32"
    return mq.VecOp(a, b, first.micro_ops + op.micro_ops, a_exp=first.a_exp.value.data, b_exp=b_exp,
                    group=norm.group.value.data, eps=norm.eps.value.data, out_type=out,
                    out_scale=op.out_scale.value.data)


@dataclass
class MergeVec(RewritePattern):
    count: list[int] = field(default_factory=lambda: [0])

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, mq.VecOp) or not isinstance(first := op.a.owner, mq.VecOp):
            return
        if first.result.type.element_type != builtin.f32 or not first.result.has_one_use():
            return
        ops = first.micro_ops + op.micro_ops
        if len(ops) > 4 or (first.b is not None and op.b is not None):
            return
        norms = [v for v in (first, op) if "rmsnorm" in v.micro_ops]
        if len(norms) > 1 and (norms[0].group.value.data != norms[1].group.value.data
                               or norms[0].eps.value.data != norms[1].eps.value.data):
            return
        rewriter.replace(op, _chain(first, op, first.a))
        rewriter.erase(first)
        self.count[0] += 1


COLUMNWISE = ("silu", "softplus")


def _slices_into_vecs(first: mq.VecOp) -> bool:
    """Every use of `first` is a mamba.slice whose every use is the `a` operand of a vec."""
    for use in first.result.uses:
        sl = use.operation
        if not isinstance(sl, mamba.SliceOp) or not all(
                isinstance(u.operation, mq.VecOp) and u.index == 0 for u in sl.result.uses):
            return False
    return True


@dataclass
class MergeThroughSlice(RewritePattern):
    count: list[int] = field(default_factory=lambda: [0])

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, mq.VecOp) or not isinstance(sl := op.a.owner, mamba.SliceOp):
            return
        first = sl.x.owner
        if not isinstance(first, mq.VecOp) or first.b is not None or first.result.type.element_type != builtin.f32:
            return
        if not first.micro_ops or any(m not in COLUMNWISE for m in first.micro_ops):
            return
        if len(first.micro_ops) + len(op.micro_ops) > 4 or not _slices_into_vecs(first):
            return
        part = mamba.SliceOp(first.a, sl.axis.value.data, sl.start.value.data, sl.size.value.data)
        merged = _chain(first, op, part.result)
        rewriter.replace(op, [part, merged], [merged.result])
        self.count[0] += 1


@dataclass(frozen=True)
class FuseElementwisePass(ModulePass):
    """Element-wise ops to VEC passes, chains merged; the counts land on the module."""

    name = "fuse-elementwise"

    def apply(self, ctx: Context, op: builtin.ModuleOp) -> None:
        to_vec, merge, through = ToVec(), MergeVec(), MergeThroughSlice()
        PatternRewriteWalker(to_vec, apply_recursively=False).rewrite_module(op)
        PatternRewriteWalker(GreedyRewritePatternApplier([merge])).rewrite_module(op)
        PatternRewriteWalker(GreedyRewritePatternApplier([through])).rewrite_module(op)
        dce(op)
        passes = sum(isinstance(o, mq.VecOp) for o in op.walk())
        previous = op.attributes.get(FUSED_ATTR)
        converted, fused = to_vec.count[0], merge.count[0] + through.count[0]
        if isinstance(previous, builtin.DictionaryAttr):  # a second run adds to the first
            converted += previous.data["converted"].value.data
            fused += previous.data["fused"].value.data
        op.attributes[FUSED_ATTR] = builtin.DictionaryAttr({
            "converted": builtin.IntegerAttr(converted, 64), "fused": builtin.IntegerAttr(fused, 64),
            "passes": builtin.IntegerAttr(passes, 64)})
