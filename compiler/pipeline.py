"""The pass registry and the one pipeline driver: parse `mamba` IR, run pass objects, print.

Place in the flow: top of the compiler, above the dialects and passes/ (it
may import both; nothing below imports it).  Passes are xDSL `ModulePass`es
registered by name with a factory that imports them lazily, so listing the
registry loads no pass module.  Pipelines use xdsl-opt's syntax
(`canonicalize,dce` or `pass{opt=v}`); a list of pass objects prints back to
that syntax (`pipeline_spec`), so any pipeline a command runs can be rerun
by `fastmamba opt -p`.

`PassDriver` runs a list of pass objects on one module for `fastmamba opt`
and `fastmamba compile` alike: it verifies after each pass (compile: after the last), prints the IR
before and after the named passes (or all), writes every stage into a dump folder
(NN-<pass>.mlir, 00 the input), times each pass (`report`: mlir-opt's table
of wall time and percentage of the total, start-up its own line), and on a failure leaves
the failing pass's input IR in a file and names the `fastmamba opt` command
that reproduces it.  A pass that raises an input error (FastmambaError) is
one line; any other exception, or IR that no longer verifies after a pass,
is a bug in fastmamba (InternalError, reported by compiler/diagnostics.py
with the reproducer).
"""

from __future__ import annotations

import gc
import importlib
import os
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import MISSING, dataclass, fields
from io import StringIO
from pathlib import Path
from typing import Any, Literal, TextIO, get_args, get_origin, get_type_hints

from xdsl.context import Context
from xdsl.dialects.builtin import Builtin, FileLineColLoc, IntAttr, ModuleOp, StringAttr, UnknownLoc
from xdsl.dialects.func import Func
from xdsl.ir import Operation
from xdsl.parser import Parser
from xdsl.passes import ModulePass, PassPipeline
from xdsl.printer import Printer
from xdsl.utils.arg_spec import parse_pipeline
from xdsl.utils.exceptions import ArgSpecParseError, ParseError, VerifyException

from fastmamba.compiler.dialects.accel import Accel, ProgramOp
from fastmamba.compiler.dialects.mamba import Mamba
from fastmamba.compiler.dialects.mamba_quant import MambaQuant
from fastmamba.compiler.diagnostics import describe, write_reproducer
from fastmamba.isa.errors import FastmambaError, InputError, InternalError

__all__ = ["PASSES", "register_pass", "describe_passes", "check_print_names", "mamba_context", "parse_ir",
           "print_ir", "parse_passes", "check_level", "LEVELS", "NEEDS", "pipeline_spec", "DriverOptions", "PassDriver",
           "run_pipeline", "collecting_rarely"]


# Objects allocated (net) between two young collections of the cyclic garbage collector while the compiler runs
# (Python's default: 700).  The IR is hundreds of thousands of long-lived objects that form no garbage cycles;
# at the default every pass's allocations set off collections that walk them again and again (a fifth of the
# 130M compile's CPU time).  Garbage in cycles is still freed, a little later.
COLLECT_EVERY = 100_000


@contextmanager
def collecting_rarely() -> Iterator[None]:
    """Within: the cyclic garbage collector's young generation collected every COLLECT_EVERY allocations (the
    older generations' thresholds kept); the thresholds before are restored on leaving, also on an error.
    Nests (an inner use changes nothing)."""
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], COLLECT_EVERY), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _lazy(module: str, cls: str) -> Callable[[], type[ModulePass]]:
    return lambda: getattr(importlib.import_module(module), cls)


# name -> factory returning the pass class.  xDSL's generic passes first; fastmamba's passes
# (fold-norm-weights, insert-hadamard, calibrate, ...) register here as they land in passes/.
PASSES: dict[str, Callable[[], type[ModulePass]]] = {
    "canonicalize": _lazy("xdsl.transforms.canonicalize", "CanonicalizePass"),
    "dce": _lazy("xdsl.transforms.dead_code_elimination", "DeadCodeElimination"),
    "cse": _lazy("xdsl.transforms.common_subexpression_elimination", "CommonSubexpressionElimination"),
    "set-target": _lazy("fastmamba.passes.set_target", "SetTargetPass"),
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


# --- levels of IR ------------------------------------------------------------------------------------------
# A pass that needs IR some earlier pass produces names that pass here, and PassDriver checks the IR before
# running it: run on the wrong level, it is a one-line error naming the pass to run first, not a failure deep
# inside it (nor, worse, a run that changes nothing).  LEVELS: a pass -> what holds once it has run, as a
# check of a module giving what does not hold yet (None: it holds).  NEEDS: a pass (or `translate`, the
# emitter) -> the levels it needs, in the compile pipeline's order (the first one missing is named).


def _without(*names: str) -> Callable[[ModuleOp], str | None]:
    """The level at which no op of `names` is left (the pass replaces them all)."""
    def check(module: ModuleOp) -> str | None:
        found = next((op.name for op in module.walk() if op.name in names), None)
        return f"holds {found}" if found else None
    return check


def _programs(done: Callable[[ProgramOp], bool] | None = None, what: str = "") -> Callable[[ModuleOp], str | None]:
    """The level at which the module holds accel.programs (and each is `done`, else it is `what`)."""
    def check(module: ModuleOp) -> str | None:
        programs = [op for op in module.walk() if isinstance(op, ProgramOp)]
        if not programs:
            return "has no accel.program"
        late = next((p.program_name for p in programs if done is not None and not done(p)), None)
        return f"holds accel.program @{late}, {what}" if late else None
    return check


def _calibrated(module: ModuleOp) -> str | None:
    """The level at which ops carry calibrated ranges (calibrate's mamba_quant.range)."""
    from fastmamba.passes.calibrate import RANGE_ATTR

    if any(RANGE_ATTR in op.attributes for op in module.walk()):
        return None
    return f"has no calibrated ranges ({RANGE_ATTR})"


def _planned(program: ProgramOp) -> bool:
    """plan-memory ran, or nothing is left to plan (every address concrete, as in a hand-written program)."""
    from fastmamba.compiler.backend.memory import PEAK_ATTR
    from fastmamba.compiler.dialects.accel import MEM_PROP

    return PEAK_ATTR in program.attributes or not any(MEM_PROP in op.properties for op in program.walk())


LEVELS: dict[str, Callable[[ModuleOp], str | None]] = {
    "calibrate": _calibrated,
    "assign-scales": _without("mamba.linear", "mamba.conv1d", "mamba.ssm_scan", "mamba_quant.hadamard"),
    "fuse-elementwise": _without("mamba.rmsnorm", "mamba.gated_rmsnorm", "mamba.silu", "mamba.softplus",
                                 "mamba.add", "mamba.mul"),
    "lower-to-accel": _programs(),
    "plan-memory": _programs(_planned, "its memory not planned"),
    "schedule-vliw": _programs(lambda p: p.is_scheduled, "not scheduled"),
}
NEEDS: dict[str, tuple[str, ...]] = {
    "assign-scales": ("calibrate",),
    "lower-to-accel": ("assign-scales", "fuse-elementwise"),
    "plan-memory": ("lower-to-accel",),
    "schedule-vliw": ("lower-to-accel", "plan-memory"),
    "translate": ("lower-to-accel", "plan-memory", "schedule-vliw"),
}


def check_level(name: str, module: ModuleOp) -> None:
    """An InputError naming the first pass that must run before `name` (a pass, or `translate`) on `module`,
    when the IR is not yet at a level `name` needs (NEEDS)."""
    for level in NEEDS.get(name, ()):
        problem = LEVELS[level](module)
        if problem:
            raise InputError(f"{name}: the IR {problem}: run {level} first")


def register_pass(name: str, factory: Callable[[], type[ModulePass]]) -> None:
    """Add a pass to the registry (a later registration of the same name replaces it)."""
    PASSES[name] = factory


def _type_name(hint) -> str:
    """An option's type as `opt -p` takes it: int, bool, str, float, a choice ("a" | "b") or a list (str, ...)."""
    if get_origin(hint) is Literal:
        return " | ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in get_args(hint))
    if get_origin(hint) is tuple:
        return f"{_type_name(get_args(hint)[0])}, ..."
    return getattr(hint, "__name__", str(hint))


def _value_text(value) -> str:
    """A default as the pipeline syntax writes it (true/false, strings quoted, a list comma-separated)."""
    if isinstance(value, tuple):
        return ",".join(map(_value_text, value)) if value else "(none)"
    if isinstance(value, bool):
        return str(value).lower()
    return f'"{value}"' if isinstance(value, str) else str(value)


def describe_passes() -> str:
    """Every registered pass, by name, as a block: `name: summary` (the first line of the pass class's own
    docstring) and a line per option, `option: type = default` (the pass dataclass's fields).  This imports
    every pass module."""
    blocks = []
    for name in sorted(PASSES):
        cls = PASSES[name]()
        doc = (cls.__doc__ or "").strip().splitlines()
        own = doc[0] if doc and not doc[0].startswith(f"{cls.__name__}(") else ""  # (dataclass writes one)
        hints = get_type_hints(cls)
        lines = [f"{name}: {own}" if own else name]
        for f in fields(cls):
            default = f.default if f.default is not MISSING else (
                f.default_factory() if f.default_factory is not MISSING else None)
            lines.append(f"  {f.name}: {_type_name(hints[f.name])}"
                         + ("" if default is None else f" = {_value_text(default)}"))
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def mamba_context() -> Context:
    """A context knowing builtin, func and fastmamba's dialects (mamba, mamba_quant, accel)."""
    ctx = Context()
    for dialect in (Builtin, Func, Mamba, MambaQuant, Accel):
        ctx.load_dialect(dialect)
    return ctx


def _verify_message(exc: VerifyException) -> str:
    """A verifier's message on one line: its first line, and an IRDL constraint's underlying failure."""
    lines = str(exc).splitlines()
    under = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("Underlying verification")), "")
    return f"{lines[0]} ({under})" if under else lines[0]


class _AtOperation(ParseError):
    """A parse error placed at the operation it is about."""


class _LocatingParser(Parser):
    """xDSL's parser, but an unknown operation's error points at the operation (xDSL's points at the token after
    its name, often on the next line), and with `locate` each operation that has no `loc(...)` of its own gets
    the place it was parsed at (`loc("FILE":LINE:COL)`, as mlir-opt does)."""

    locate = False

    def parse_operation(self) -> Operation:
        span = self._current_token.span
        try:
            op = super().parse_operation()
        except _AtOperation:
            raise
        except ParseError as exc:
            message = exc.args[1] if len(exc.args) > 1 else ""
            if isinstance(message, str) and message.startswith("Operation ") and message.endswith(" not registered"):
                raise _AtOperation(span, message) from None
            raise
        if self.locate and isinstance(op.location, UnknownLoc):
            start = span.start
            text = self.lexer.input.content
            line = text.count("\n", 0, start) + 1
            column = start - text.rfind("\n", 0, start)
            op.location = FileLineColLoc(StringAttr(self.lexer.input.name), IntAttr(line), IntAttr(column))
        return op


def parse_ir(text: str, source: str = "<input>", locations: bool = False) -> ModuleOp:
    """Parse and verify `mamba` IR text; a bad file is an InputError naming it, and for a syntax error the
    place, `FILE:LINE:COL` (xDSL's span of the error).  `locations`: every op without a `loc(...)` gets the
    place it was parsed at (for --mlir-print-debuginfo)."""
    try:
        parser = _LocatingParser(mamba_context(), text, source)
        parser.locate = locations
        module = parser.parse_module()
        module.verify()
    except ParseError as exc:
        span = getattr(exc, "span", None)
        lines = [line for line in str(exc).splitlines() if line.strip()]
        message = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], str) else (
            lines[-1].strip() if lines else "syntax error")
        where = span.get_location() if span is not None else source
        raise InputError(f"cannot parse {where}: {message.strip()}") from None
    except VerifyException as exc:  # (IRDL constraints are checked as the parser builds an op, too)
        raise InputError(f"{source} does not verify: {_verify_message(exc)}") from None
    return module


def print_ir(module: ModuleOp, debuginfo: bool = False) -> str:
    """The module's text; `debuginfo`: each op's and block argument's location too (`loc(...)`, as mlir-opt's
    --mlir-print-debuginfo; `loc(unknown)` where none is known)."""
    out = StringIO()
    Printer(stream=out, print_debuginfo=debuginfo).print_op(module)
    return out.getvalue() + "\n"


def _check_choices(spec: str) -> None:
    """An option typed as a Literal of choices (assign-scales{head="int8"}) given another value: an InputError
    naming the pass, the option and the choices (xDSL's own message names neither)."""
    for arg in parse_pipeline(spec):
        if arg.name not in PASSES:
            continue
        hints = get_type_hints(PASSES[arg.name]())
        for option, values in arg.normalize_parameter_names().parameters.items():
            hint = hints.get(option)
            if get_origin(hint) is Literal and not (len(values) == 1 and values[0] in get_args(hint)):
                got = ", ".join(repr(v) for v in values) or "nothing"
                raise InputError(f"{arg.name}: {option} must be one of {', '.join(map(repr, get_args(hint)))}, "
                                 f"got {got}")


def parse_passes(spec: str) -> list[ModulePass]:
    """The pass objects of `spec` (empty: none); unknown passes or options are InputErrors."""
    if not spec.strip():
        return []
    try:
        _check_choices(spec)
        return list(PassPipeline.parse_spec(PASSES, spec).passes)
    except ArgSpecParseError as exc:  # malformed text ('cse,,dce', 'cse{', 'cse dce'); a BaseException in xDSL
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        column = lines[1].rsplit(":", 1)[-1] if len(lines) > 1 else "?"
        raise InputError(f"bad pass pipeline {spec!r}: {lines[-1][:1].lower()}{lines[-1][1:]} "
                         f"(at character {column})") from None
    except (ValueError, ParseError, TypeError) as exc:
        raise InputError(f"bad pass pipeline {spec!r}: {str(exc).splitlines()[0]} "
                         f"(available: {', '.join(sorted(PASSES))})") from None


def pipeline_spec(passes: Sequence[ModulePass]) -> str:
    """The pipeline text of `passes` (options at their defaults left out): `opt -p` parses it back to equal passes."""
    return ",".join(str(p.pipeline_pass_spec()) for p in passes)


def check_print_names(passes: Sequence[ModulePass], print_before: Collection[str] | bool = (),
                      print_after: Collection[str] | bool = (), stages: Sequence[str] = ()) -> None:
    """An InputError unless every pass --print-ir-before / --print-ir-after names is in `passes` (checked before
    any work: `compile` calls it on its pipeline before the import); `stages`: the stages before the passes
    that --print-ir-after may name too (compile's import)."""
    names = [*stages, *(p.name for p in passes)]
    for flag, chosen in (("--print-ir-before", print_before), ("--print-ir-after", print_after)):
        allowed = set(names) - (set(stages) if flag == "--print-ir-before" else set())
        unknown = sorted(set(chosen) - allowed) if chosen and chosen is not True else []
        if unknown:
            raise InputError(f"{flag} names a pass not in the pipeline: {', '.join(unknown)} "
                             f"(its passes: {', '.join(n for n in names if n in allowed) or 'none'})")


@dataclass(frozen=True)
class DriverOptions:
    """What PassDriver shows of a run.  print_before / print_after: True (before / after every pass) or pass
    names, the IR printed to `log` headed as mlir-opt does; dump_dir: a folder
    for NN-<pass>.mlir after every pass (00: the input, named input_name); time_passes: the caller writes
    `report()` to `log` (default stderr) at the end; started: the time.perf_counter() at which the command
    started (its start-up, up to `start_up(until)`, is a line of the report, and the total runs from it);
    reproducer: on a failure, the failing pass's input IR is written (into
    dump_dir, else a new temporary file) and the error names it and the `fastmamba opt` command that reruns
    the pass; debuginfo: the IR printed and dumped with its locations (print_ir); input_stage: the input is a
    stage of its own (compile's import, input_name): --print-ir-after may name it and --print-ir-after-all
    prints it (print_input); progress: a compiler.progress.Progress each pass is announced to (its line is
    cleared before the driver prints IR); verify_each: the IR is verified after every pass (mlir-opt's
    --verify-each), else once, after the last pass (a failure then names the last pass and the option that
    finds the pass that broke the IR: verifying the whole IR takes longer than most passes)."""

    print_after: Collection[str] | bool = ()
    dump_dir: str | os.PathLike | None = None
    print_before: Collection[str] | bool = ()
    started: float | None = None
    time_passes: bool = False
    input_name: str = "input"
    reproducer: bool = False
    input_stage: bool = False
    progress: Any = None  # compiler.progress.Progress
    debuginfo: bool = False
    verify_each: bool = True


class PassDriver:
    """Runs pass objects on a module in place: verification, print-before/after, dump folder, timing,
    reproducer."""

    def __init__(self, passes: Sequence[ModulePass], options: DriverOptions = DriverOptions(),
                 log: TextIO | None = None):
        self.passes, self.options, self.log = list(passes), options, log
        self.timings: list[tuple[str, float]] = []
        self._replay: tuple[ModuleOp, Context] | None = None
        self.index = 0
        self.last_dump: Path | None = None
        check_print_names(self.passes, options.print_before, options.print_after,
                          (options.input_name,) if options.input_stage else ())

    @property
    def spec(self) -> str:
        return pipeline_spec(self.passes)

    def _write(self, text: str) -> None:
        import sys

        if self.options.progress is not None:
            self.options.progress.close()
        (self.log or sys.stderr).write(text)

    def record(self, name: str, seconds: float) -> None:
        """Keep a stage's time for the report; also for stages outside the pipeline (import, parse, emit)."""
        self.timings.append((name, seconds))

    def start_up(self, until: float) -> None:
        """Record the command's start-up, from options.started (when given) to `until` (a perf_counter time)."""
        if self.options.started is not None:
            self.record("start-up", until - self.options.started)

    def report(self) -> str:
        """mlir-opt's --mlir-timing table: each recorded stage's wall time and share of the total, then the
        total (from options.started when given, else the stages' sum); the time no stage holds (printing and
        dumping IR, writing the output) is the line `other`."""
        stages = list(self.timings)
        total = sum(seconds for _, seconds in stages)
        if self.options.started is not None:
            wall = time.perf_counter() - self.options.started
            if wall > total:
                stages.append(("other", wall - total))
            total = max(wall, total)
        rule = "===" + "-" * 73 + "===\n"
        lines = [rule, "... Execution time report ...".center(79).rstrip() + "\n", rule,
                 f"  Total Execution Time: {total:.4f} seconds\n\n", "  ----Wall Time----  ----Name----\n"]
        for name, seconds in stages + [("Total", total)]:
            share = 100.0 * seconds / total if total > 0 else 0.0
            lines.append(f"  {seconds:10.4f} ({share:5.1f}%)  {name}\n")
        return "".join(lines)

    def _dump(self, name: str, module: ModuleOp, text: str | None = None) -> None:
        if self.options.dump_dir:
            folder = Path(self.options.dump_dir)
            folder.mkdir(parents=True, exist_ok=True)
            self.last_dump = folder / f"{self.index:02d}-{name}.mlir"
            self.last_dump.write_text(text if text is not None else print_ir(module, self.options.debuginfo))
        self.index += 1

    def print_input(self, module: ModuleOp) -> None:
        """With input_stage: the input IR after --print-ir-after-all or --print-ir-after naming it, headed as
        the passes' IR is (`// -----// IR Dump After import //----- //`)."""
        pa, name = self.options.print_after, self.options.input_name
        if self.options.input_stage and (pa is True or (pa and name in pa)):
            self._write(f"// -----// IR Dump After {name} //----- //\n{print_ir(module, self.options.debuginfo)}")

    def run(self, module: ModuleOp, ctx: Context | None = None,
            on_pass: Callable[[ModulePass, ModuleOp], None] | None = None) -> ModuleOp:
        """Apply every pass to `module` in place (it must verify before); returns it.  `on_pass(pass, module)` is
        called after each pass has run (and verified, with verify_each; a caller reading what a pass recorded
        before later passes drop it).
        The garbage collector runs rarely meanwhile (collecting_rarely), and each pass starts with what exists
        (the IR, the weights read) frozen (gc.freeze: left out of the collector's passes, unfrozen when the run
        ends), unless the caller froze objects itself."""
        freeze = gc.get_freeze_count() == 0  # (none frozen by a caller: this run may unfreeze what it froze)
        try:
            with collecting_rarely():
                return self._run(module, ctx or mamba_context(), on_pass, freeze)
        finally:
            if freeze:
                gc.unfreeze()

    def _run(self, module: ModuleOp, ctx: Context, on_pass: Callable[[ModulePass, ModuleOp], None] | None,
             freeze: bool) -> ModuleOp:
        if self.index == 0:
            self._dump(self.options.input_name, module)
        pa, pb = self.options.print_after, self.options.print_before
        # A reproducer's input IR: the last dump when dumping, else this run's input, kept (a copy) to replay the
        # passes before the failing one on (printed only on a failure: a copy of the IR before every pass took
        # longer than many passes).
        self._replay = (module.clone(), ctx) if self.options.reproducer and not self.options.dump_dir else None
        for n, p in enumerate(self.passes, 1):
            if pb is True or (pb and p.name in pb):
                before = print_ir(module, self.options.debuginfo)
                self._write(f"// -----// IR Dump Before {p.name} //----- //\n{before}")
            check_level(p.name, module)
            if self.options.progress is not None:
                self.options.progress.stage(p.name)
            if freeze:  # what exists now (the IR) is left out of the collector's passes while this pass runs
                gc.freeze()
            start = time.perf_counter()
            try:
                p.apply(ctx, module)
            except FastmambaError as exc:  # the input: one line, naming the reproducer
                path, rerun = self._repro(p, n - 1)
                raise InputError(f"{exc} (its input IR: {path}; reproduce: {rerun})" if path else str(exc)) from None
            except Exception as exc:  # a bug in the pass
                raise InternalError(f"pass {p.name} failed: {describe(exc)}", *self._repro(p, n - 1)) from exc
            if self.options.verify_each or n == len(self.passes):
                try:
                    module.verify()
                except VerifyException as exc:  # a bug in the pass too: it left IR that does not verify
                    where = (f"pass {p.name}" if self.options.verify_each else
                             f"the last pass, {p.name} (--verify-each names the pass that broke it)")
                    raise InternalError(f"IR does not verify after {where}: {_verify_message(exc)}",
                                        *self._repro(p, n - 1)) from exc
            self.record(p.name, time.perf_counter() - start)
            if on_pass is not None:
                on_pass(p, module)
            text = None
            if pa is True or (pa and p.name in pa):
                text = print_ir(module, self.options.debuginfo)
                self._write(f"// -----// IR Dump After {p.name} //----- //\n{text}")
            self._dump(p.name, module, text)
        return module

    def _repro(self, p: ModulePass, done: int) -> tuple[str | None, str | None]:
        """With reproducer: the failing pass's input IR written (into dump_dir, else a new file named in the
        message, compiler.diagnostics.write_reproducer; its absolute path) and the command rerunning the pass on it.
        Without dump_dir that IR is the run's input with the `done` passes before `p` run again (the passes are
        deterministic); none when they do not run again."""
        if not self.options.reproducer:
            return None, None
        if self.options.dump_dir and self.last_dump:
            text = self.last_dump.read_text()
        else:
            if self._replay is None:
                return None, None
            snapshot, ctx = self._replay
            self._replay = None
            try:
                for earlier in self.passes[:done]:
                    earlier.apply(ctx, snapshot)
            except Exception:
                return None, None
            text = print_ir(snapshot, self.options.debuginfo)
        try:
            path = write_reproducer(text, f"{self.index:02d}-{p.name}.failed-input.mlir", self.options.dump_dir)
        except OSError:
            return None, None
        path = Path(os.path.abspath(path))  # (the command reruns from any folder)
        return str(path), f"fastmamba opt {path} -p '{pipeline_spec([p])}'"


def run_pipeline(module: ModuleOp, spec: str | Sequence[ModulePass], print_after: Collection[str] | bool = (),
                 dump: TextIO | None = None) -> ModuleOp:
    """Run `spec` (pipeline text or pass objects) on `module` in place with a PassDriver; returns the module.

    `print_after` is True (after every pass) or pass names; the IR is
    written to `dump` after each such pass, headed as MLIR does.
    """
    passes = parse_passes(spec) if isinstance(spec, str) else list(spec)
    return PassDriver(passes, DriverOptions(print_after=print_after), log=dump).run(module)
