"""The pass registry and the `opt` driver: parse `mamba` IR, run a pass pipeline, print.

Place in the flow: top of the compiler, above the dialects and passes/ (it
may import both; nothing below imports it).  Passes are xDSL `ModulePass`es
registered by name with a factory that imports them lazily, so listing the
registry loads no pass module.  Pipelines use xdsl-opt's syntax
(`canonicalize,dce` or `pass{opt=v}`); `PassPipeline`'s callback runs after
each pass and is the base for `--print-ir-after[-all]`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection
from typing import TextIO

from xdsl.context import Context
from xdsl.dialects.builtin import Builtin, ModuleOp
from xdsl.dialects.func import Func
from xdsl.parser import Parser
from xdsl.passes import ModulePass, PassPipeline
from xdsl.printer import Printer
from xdsl.utils.exceptions import ParseError, VerifyException

from fastmamba.compiler.dialects.accel import Accel
from fastmamba.compiler.dialects.mamba import Mamba
from fastmamba.compiler.dialects.mamba_quant import MambaQuant
from fastmamba.isa.errors import InputError

__all__ = ["PASSES", "register_pass", "mamba_context", "parse_ir", "print_ir", "build_pipeline", "run_pipeline"]


def _lazy(module: str, cls: str) -> Callable[[], type[ModulePass]]:
    return lambda: getattr(importlib.import_module(module), cls)


# name -> factory returning the pass class.  xDSL's generic passes first; fastmamba's passes
# (fold-norm-weights, insert-hadamard, calibrate, ...) register here as they land in passes/.
PASSES: dict[str, Callable[[], type[ModulePass]]] = {
    "canonicalize": _lazy("xdsl.transforms.canonicalize", "CanonicalizePass"),
    "dce": _lazy("xdsl.transforms.dead_code_elimination", "DeadCodeElimination"),
    "cse": _lazy("xdsl.transforms.common_subexpression_elimination", "CommonSubexpressionElimination"),
    "fold-norm-weights": _lazy("fastmamba.passes.fold_norm_weights", "FoldNormWeightsPass"),
    "insert-hadamard": _lazy("fastmamba.passes.insert_hadamard", "InsertHadamardPass"),
    "calibrate": _lazy("fastmamba.passes.calibrate", "CalibratePass"),
    "assign-scales": _lazy("fastmamba.passes.assign_scales", "AssignScalesPass"),
    "approximate-nonlinear": _lazy("fastmamba.passes.approximate_nonlinear", "ApproximateNonlinearPass"),
    "fuse-elementwise": _lazy("fastmamba.passes.fuse_elementwise", "FuseElementwisePass"),
    "lower-to-accel": _lazy("fastmamba.passes.lower_to_accel", "LowerToAccelPass"),
    "plan-memory": _lazy("fastmamba.passes.plan_memory", "PlanMemoryPass"),
    "schedule-vliw": _lazy("fastmamba.passes.schedule_vliw", "ScheduleVliwPass"),
}


def register_pass(name: str, factory: Callable[[], type[ModulePass]]) -> None:
    """Add a pass to the registry (a later registration of the same name replaces it)."""
    PASSES[name] = factory


def mamba_context() -> Context:
    """A context knowing builtin, func and fastmamba's dialects (mamba, mamba_quant, accel)."""
    ctx = Context()
    for dialect in (Builtin, Func, Mamba, MambaQuant, Accel):
        ctx.load_dialect(dialect)
    return ctx


def parse_ir(text: str, source: str = "<input>") -> ModuleOp:
    """Parse and verify `mamba` IR text; a bad file is an InputError naming it."""
    try:
        module = Parser(mamba_context(), text, source).parse_module()
    except ParseError as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        raise InputError(f"cannot parse {source}: {lines[-1].strip() if lines else 'syntax error'}") from None
    try:
        module.verify()
    except VerifyException as exc:
        raise InputError(f"{source} does not verify: {str(exc).splitlines()[0]}") from None
    return module


def print_ir(module: ModuleOp) -> str:
    from io import StringIO

    out = StringIO()
    Printer(stream=out).print_op(module)
    return out.getvalue() + "\n"


def build_pipeline(spec: str, callback=None) -> PassPipeline:
    """The pipeline of `spec` (empty: no passes); unknown passes or options are InputErrors."""
    if not spec.strip():
        return PassPipeline((), callback)
    try:
        return PassPipeline.parse_spec(PASSES, spec, callback)
    except (ValueError, ParseError, TypeError) as exc:
        raise InputError(f"bad pass pipeline {spec!r}: {str(exc).splitlines()[0]} "
                         f"(available: {', '.join(sorted(PASSES))})") from None


def run_pipeline(module: ModuleOp, spec: str, print_after: Collection[str] | bool = (),
                 dump: TextIO | None = None) -> ModuleOp:
    """Run `spec` on `module` in place, verifying after each pass.

    `print_after` is True (after every pass) or pass names; the IR is
    written to `dump` after each such pass, headed as MLIR does.
    """

    def after_each(prev: ModulePass | None, op: ModuleOp, _next: ModulePass | None) -> None:
        if prev is None:
            return
        try:
            op.verify()
        except VerifyException as exc:
            raise InputError(f"IR does not verify after pass {prev.name}: {str(exc).splitlines()[0]}") from None
        if dump is not None and (print_after is True or (print_after and prev.name in print_after)):
            dump.write(f"// -----// IR Dump After {prev.name} //----- //\n{print_ir(op)}")

    pipeline = build_pipeline(spec, after_each)
    if print_after and print_after is not True:
        unknown = sorted(set(print_after) - {p.name for p in pipeline.passes})
        if unknown:
            raise InputError(f"--print-ir-after names a pass not in the pipeline: {', '.join(unknown)}")
    pipeline.apply(mamba_context(), module)
    return module
