"""The whole compiler: a Mamba2 model -> a `.fmb` binary with a prefill and a decode program.

Place in the flow: the top of the compiler, run by `fastmamba compile` and
`fastmamba demo`.  Stages:

    import          torch.export of the prefill graph at --seq-len and at length 1 (the decode step:
                    a prefill of one token from the carried states), raised to `mamba`, one module
    the pipeline    pass objects (compile_pipeline), run by compiler.pipeline.PassDriver as
                    `fastmamba opt` runs them:
                    set-target{target=...}, fold-norm-weights, insert-hadamard{head=true}, dce,
                    calibrate{text=... model=... windows=... copy_to="decode"} (ranges recorded by
                    interpreting @prefill on calibration tokens, copied onto @decode),
                    assign-scales{head="int8"}, approximate-nonlinear, fuse-elementwise,
                    lower-to-accel, plan-memory, schedule-vliw
    emit            (emit_module) the constant image packed from the weights, the programs encoded, meta
                    (JSON) for `fastmamba run`: model, config, the golden QuantPlan built from the same
                    ranges, all read from what the IR records (calibrate's mamba_quant.calibration), so
                    `fastmamba translate` of the last stage writes the same bytes

Every pass's input is in the IR or its options, so `pipeline_spec(compile_pipeline(...))` run by
`fastmamba opt` on the imported module (--dump-dir's 00-import.mlir) gives the same IR.  A failing
pass leaves the IR it failed on in a file and names the command that reproduces the failure.
Nothing is written to the output path unless every stage succeeded.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.passes import ModulePass

from fastmamba.compiler.backend.lower_batch import BATCH_PROGRAM
from fastmamba.compiler.backend.lowering import DEFAULT_PREFETCH
from fastmamba.compiler.pipeline import (PASSES, DriverOptions, PassDriver, check_print_names, collecting_rarely,
                                         pipeline_spec)
from fastmamba.compiler.config import DEFAULT_SEQ_LEN
from fastmamba.compiler.runner import META_FORMAT
from fastmamba.isa.errors import InputError
from fastmamba.compiler.errors import ModelError

__all__ = ["CompileOptions", "CompileResult", "compile_model", "compile_pipeline", "calibration_pass",
           "model_pipeline", "calibration_source", "default_seq_len",
           "DEFAULT_CALIBRATION_TEXT", "META_FORMAT", "quant_stages", "around_calibration", "backend_stages",
           "merge_decode", "emit_module", "check_inputs", "check_model_fits", "check_config_fits", "max_seq_len",
           "check_options", "CALIBRATION_RANDOM"]

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CALIBRATION_TEXT = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"
CALIBRATION_WINDOWS = 4
CALIBRATION_SEED = 0  # the random calibration tokens when there is no text
CALIBRATION_RANDOM = "random"  # --calibration random: seeded random tokens, asked for explicitly


@dataclass(frozen=True)
class CompileOptions:
    seq_len: int = DEFAULT_SEQ_LEN
    target: str = "vc709"
    calibration_windows: int = CALIBRATION_WINDOWS
    tile_kib: int = 0
    prefetch: int = DEFAULT_PREFETCH
    batch: int = 1  # > 1: also @decode_batch, B sequences advanced a token each (compiler/backend/lower_batch.py)
    print_after: tuple[str, ...] | bool = ()  # pass names, or True for all
    dump_dir: str | None = None
    time_passes: bool = False
    print_before: tuple[str, ...] | bool = ()  # pass names, or True for all
    started: float | None = None  # time.perf_counter() at the command's start (time_passes counts start-up)
    verify_each: bool = False  # the IR verified after every pass (else after the last: DriverOptions.verify_each)


@dataclass
class CompileResult:
    binary: Any  # isa.container.Binary
    module: ModuleOp
    plan: Any  # compiler.quant.golden.QuantPlan
    meta: dict
    timings: list[tuple[str, float]] = field(default_factory=list)
    pipeline: str = ""  # the pass pipeline run, as `fastmamba opt -p` takes it


def _pass(name: str, **options) -> ModulePass:
    return PASSES[name]()(**options)


def calibration_pass(options: CompileOptions, model: str | os.PathLike | None = None,
                     text: str | os.PathLike | None = None) -> ModulePass:
    """calibrate on `text` (None: random tokens, seed CALIBRATION_SEED) with `model`'s weights (None: the bundled
    model), options.calibration_windows windows of @prefill, its ranges copied onto @decode."""
    where = {"model": str(Path(model).resolve())} if model else {}
    source = {"text": str(Path(text).resolve())} if text else {"random": True, "seed": CALIBRATION_SEED}
    copy_to = ("decode",) + ((BATCH_PROGRAM,) if options.batch > 1 else ())
    return _pass("calibrate", **where, **source, windows=options.calibration_windows, copy_to=copy_to)


def compile_pipeline(options: CompileOptions = CompileOptions(), calibrate: ModulePass | None = None) \
        -> list[ModulePass]:
    """The passes `fastmamba compile` runs after the import, in order (calibrate: default calibration_pass)."""
    return [_pass("set-target", target=options.target), _pass("fold-norm-weights"),
            _pass("insert-hadamard", head=True), _pass("dce"), calibrate or calibration_pass(options),
            _pass("assign-scales", head="int8"), _pass("approximate-nonlinear"), _pass("fuse-elementwise"),
            _pass("lower-to-accel", tile_kib=options.tile_kib, prefetch=options.prefetch), _pass("plan-memory"),
            _pass("schedule-vliw")]


def _specs(passes) -> list[str]:
    return [pipeline_spec([p]) for p in passes]


def quant_stages() -> list[str]:
    """The quantization passes of the compile pipeline (after set-target, before lower-to-accel), as specs."""
    return _specs(compile_pipeline()[1:8])


def around_calibration(target: str = "vc709") -> tuple[str, str]:
    """The compile pipeline's passes before calibrate (from set-target{target}) and after it up to
    fuse-elementwise, as pipeline specs (for code that calibrates itself)."""
    passes = compile_pipeline(CompileOptions(target=target))
    return pipeline_spec(passes[:4]), pipeline_spec(passes[5:8])


def backend_stages(o: CompileOptions) -> list[str]:
    """lower-to-accel, plan-memory, schedule-vliw as `o` configures them (the target is the module's)."""
    return _specs(compile_pipeline(o)[8:])


def calibration_source(text_path: str | os.PathLike | None, tokenizer, random: bool = False) \
        -> tuple[Path | None, str]:
    """The calibration text (given, else tinyshakespeare beside the repository when it exists and the model has a
    tokenizer), or None for random tokens (asked for with `random`, or no text found), and a description of it
    (with {count} for the number of tokens): the calibrate pass's own description of its tokens (which the
    binary's metadata records), then why they were chosen; the text is checked readable here, before the import."""
    if random:
        if text_path:
            raise InputError("give --calibration-text FILE or --calibration random, not both")
        return None, f"{{count}} random tokens of seed {CALIBRATION_SEED} (--calibration random)"
    path = Path(text_path) if text_path else DEFAULT_CALIBRATION_TEXT
    if text_path and tokenizer is None:
        raise InputError(f"the model has no tokenizer (tokenizer.json) to encode the calibration text {path}")
    if text_path or (path.is_file() and tokenizer is not None):
        if not os.access(path, os.R_OK) or not path.is_file():
            raise InputError(f"cannot read calibration text {path}")
        chosen = "" if text_path else " (the default calibration text: no --calibration-text given)"
        return path, f"the first {{count}} tokens of {path.resolve()}{chosen}"
    return None, f"{{count}} random tokens of seed {CALIBRATION_SEED} (no calibration text given or found)"


def merge_decode(prefill: ModuleOp, decode: ModuleOp, name: str = "decode") -> None:
    """Move decode's @prefill (a length-1 prefill, or the batched step's length-B one) into `prefill`'s module
    as @decode (@`name`)."""
    fn = next(op for op in decode.body.block.ops if isinstance(op, func.FuncOp))
    fn.detach()
    fn.sym_name = StringAttr(name)
    prefill.body.block.add_op(fn)


def _field_max(op: str, name: str) -> int:
    """The largest value of an unsigned instruction field (widths from isa.instructions)."""
    from fastmamba.isa.instructions import OPS

    return (1 << OPS[op].field_map[name].bits) - 1


def check_model_fits(config, target) -> None:
    """InputError unless every model dimension the binary encodes fits its instruction field and the target:
    the conv kernel (conv.kw, the target's conv_kernel_max), the head dimension and d_state (ssm.p, ssm.n),
    heads per B/C group (ssm.hpg) and the widest activation row (the row pitch of lin/conv/ssm/vec)."""
    from fastmamba.isa.target import CONV_KERNEL_MIN

    low, high = CONV_KERNEL_MIN, min(target.conv_kernel_max, _field_max("conv", "kw"))
    if not low <= config.d_conv <= high:
        raise InputError(f"the model's conv kernel d_conv={config.d_conv} does not fit target {target.name}: "
                         f"its CONV unit takes kernels of {low} .. {high} (conv_kernel_max)")
    hpg = config.nheads // config.ngroups
    rows = {"d_model": config.d_model, "d_inner": config.d_inner, "conv_dim": config.conv_dim,
            "in_proj_out": config.in_proj_out, "vocab_size": config.vocab_size}
    widest = max(rows, key=lambda k: rows[k])
    for what, value, spec, why in (
            ("headdim", config.headdim, ("ssm", "p"), "the ssm.p field"),
            ("d_state", config.d_state, ("ssm", "n"), "the ssm.n field"),
            ("heads per group (nheads / ngroups)", hpg, ("ssm", "hpg"),
             "the ssm.h and ssm.hpg fields (the lowering gives an SSM op a whole B/C group)"),
            (widest, rows[widest], ("ssm", "xbc_ld"), "the row pitch fields (lin dst_ld, ssm xbc_ld, ...)")):
        if value > _field_max(*spec):
            raise InputError(f"the model's {what} = {value} does not fit {why}: at most {_field_max(*spec)}")


def max_seq_len(config, target) -> int:
    """The largest prefill length (--seq-len) that can fit: the token-count fields (lin.m, conv.t, ssm.t), and
    the on-chip buffer, which must hold the SSM step's operands whole for all the tokens of a prefill: its
    int16 x|B|C rows (conv_dim columns) and its int32 output y (d_inner columns), 2 * conv_dim + 4 * d_inner
    bytes a token.  An upper bound: the buffer planner also places the tensors live beside them, so a length
    a little below it can still fail there (with its own message); one above it cannot fit."""
    per_token = 2 * config.conv_dim + 4 * config.d_inner
    return min(_field_max("ssm", "t"), _field_max("lin", "m"), _field_max("conv", "t"),
               target.buffer_bytes // per_token)


def max_batch(config, target) -> tuple[int, str]:
    """The largest --batch that can fit, and what sets it: the batched step's rows (its buffers are a prefill's of
    B tokens: max_seq_len) and the DDR, which holds the constant image (at least the int8 weights of the layers
    and the head and the f32 embedding table) and after it the step's tensors, per sequence its recurrent states
    (int16 conv, int32 SSM) and a row of f32 logits.  An upper bound, as max_seq_len is."""
    from fastmamba.compiler.backend.roofline import roofline

    roof = roofline(config, 1, target)
    image = roof.weight_bytes + roof.head_bytes + 4 * config.vocab_size * config.d_model
    per_sequence = roof.state_bytes // 2 + 4 * config.vocab_size + 8  # states, logits, token in and out
    by_ddr = max(0, target.ddr_bytes - image) // per_sequence
    rows = max_seq_len(config, target)
    if rows <= by_ddr:
        return rows, f"its {target.buffer_bytes}-byte buffer holds the step's rows of {rows} sequences"
    return by_ddr, (f"its {target.ddr_bytes}-byte DDR holds the constant image (at least {image} bytes) and "
                    f"{per_sequence} bytes of states and logits a sequence")


def default_seq_len(config, target) -> int:
    """--seq-len when none is given: 64, or, where the target's buffer is small, the largest power of two
    whose tensors at the layer's gate (y i32 and z f32 [T, d_inner], the residual f32 [T, d_model], the gated
    i16 output: 10 d_inner + 4 d_model bytes a token) take at most half of it (the rest holds the streamed
    weight and state rings and what lives beside them).  The bundled model on `small`: 4."""
    per_token = 10 * config.d_inner + 4 * config.d_model
    fit = max(1, target.buffer_bytes // 2 // per_token)
    return min(DEFAULT_SEQ_LEN, 1 << (fit.bit_length() - 1))


def check_options(options: CompileOptions, target) -> None:
    """InputError naming the option unless every compile option lies in its range (the model-dependent
    bound of --seq-len is checked by _prepare, once the model's config is read)."""
    if options.seq_len < 1:
        raise InputError(f"--seq-len must be at least 1, got {options.seq_len}")
    if options.calibration_windows < 1:
        raise InputError(f"--calibration-windows must be at least 1, got {options.calibration_windows}")
    if not 0 <= options.tile_kib <= target.buffer_bytes // 1024:
        raise InputError(f"--tile-kib must lie in [0, {target.buffer_bytes // 1024}] (0: 1/16 of the buffer; at "
                         f"most target {target.name}'s on-chip buffer), got {options.tile_kib}")
    if options.batch < 1:
        raise InputError(f"--batch must be at least 1 (sequences the batched decode step advances), got "
                         f"{options.batch}")
    if options.prefetch < 1:
        raise InputError(f"--prefetch must be at least 1 (weight tiles loaded ahead), got {options.prefetch}")
    check_print_names(compile_pipeline(options), options.print_before, options.print_after, ("import",))


def check_inputs(model: str | os.PathLike, options: CompileOptions):
    """The model's config and weight store, once the options, the model and --seq-len are checked against the
    target: every bad input is an InputError (or ModelError) here, in seconds, before the import."""
    from fastmamba.compiler.checkpoint import load_model
    from fastmamba.isa.target import load_target

    target = load_target(options.target)
    check_options(options, target)
    config, store = load_model(model)
    check_config_fits(config, target, options.seq_len, options.batch)
    return config, store


def check_config_fits(config, target, seq_len: int, batch: int = 1) -> None:
    """InputError unless the model fits the target (check_model_fits), with a prefill of `seq_len` tokens
    (max_seq_len) and `batch` sequences (max_batch), the option named."""
    check_model_fits(config, target)
    longest = max_seq_len(config, target)
    if seq_len > longest:
        raise InputError(f"--seq-len {seq_len} does not fit: at most {longest} tokens of this model's "
                         f"prefill fit target {target.name} (its {target.buffer_bytes}-byte buffer holds "
                         f"{2 * config.conv_dim + 4 * config.d_inner} bytes a token at the SSM step)")
    most, why = max_batch(config, target) if batch > 1 else (1, "")
    if batch > most:
        raise InputError(f"--batch {batch} does not fit: at most {most} sequences of this model fit target "
                         f"{target.name} ({why})")


def _prepare(model, options: CompileOptions, calibration_text, random: bool = False):
    """The model's config, weight store and tokenizer (None without one), where the calibration tokens come from,
    and the pipeline; bad options and inputs, and a model the target cannot run, are InputErrors here, before
    the import."""
    from fastmamba.compiler.tokenizer import load_tokenizer

    config, store = check_inputs(model, options)
    try:
        tokenizer = load_tokenizer(config, model)
    except ModelError:  # no tokenizer: calibration falls back to random tokens (unless a text is given)
        tokenizer = None
    text, origin = calibration_source(calibration_text, tokenizer, random)
    return config, store, tokenizer, origin, compile_pipeline(options, calibration_pass(options, model, text))


def model_pipeline(model: str | os.PathLike, options: CompileOptions = CompileOptions(),
                   calibration_text: str | os.PathLike | None = None, calibration_random: bool = False) -> str:
    """The pipeline `compile_model(model, options, calibration_text=...)` runs, as `fastmamba opt -p` takes it."""
    return pipeline_spec(_prepare(model, options, calibration_text, calibration_random)[4])


def compile_model(model: str | os.PathLike, options: CompileOptions = CompileOptions(), *,
                  calibration_text: str | os.PathLike | None = None, calibration_random: bool = False,
                  log: TextIO | None = None, progress=None) -> CompileResult:
    """Compile the model at `model` (a checkpoint directory); the binary is returned, not written.

    Calibration reads `calibration_text`, or seeded random tokens with `calibration_random`; with neither, the
    default text (else random tokens) is used and a warning naming it goes to `log` before the long work.
    `progress` (a compiler.progress.Progress) is told each stage (import, the passes, emit) and the steps inside
    them (calibration windows, constant blocks)."""
    from fastmamba.compiler.frontend.importer import import_model
    from fastmamba.compiler.progress import showing, step
    from fastmamba.compiler.weights import NumpyWeights
    from fastmamba.passes.calibrate import loaded_model

    log = log or sys.stderr
    t0 = time.perf_counter()
    config, store, tokenizer, origin, passes = _prepare(model, options, calibration_text, calibration_random)
    count = options.seq_len * options.calibration_windows
    if not calibration_text and not calibration_random:
        log.write(f"warning: calibrating on {origin.format(count=count)}; choose with --calibration-text FILE or "
                  f"--calibration random\n")
        log.flush()
    driver = PassDriver(passes, DriverOptions(print_after=options.print_after, print_before=options.print_before,
                                              dump_dir=options.dump_dir,
                                              time_passes=options.time_passes, input_name="import",
                                              reproducer=True, started=options.started, input_stage=True,
                                              progress=progress, verify_each=options.verify_each), log)
    driver.start_up(t0)
    with showing(progress), collecting_rarely():
        if progress is not None:
            progress.plan(["import", *(p.name for p in passes), "emit"])
            progress.stage("import")
        # (the programs are exported from the config's skeleton, as import_model(model) does after loading the
        # checkpoint again: the weights are named, not read)
        module = import_model(config, "prefill", options.seq_len).module
        step(1, 2, "program")
        merge_decode(module, import_model(config, "prefill", 1).module)
        step(2, 2, "program")
        if options.batch > 1:  # the batched step: a prefill graph of B rows returning every row's logits
            merge_decode(module, import_model(config, "prefill", options.batch, all_logits=True).module,
                         BATCH_PROGRAM)
        weights = NumpyWeights(store)
        driver.record("import", time.perf_counter() - t0)
        driver.print_input(module)
        with loaded_model(model, config, weights, tokenizer):
            driver.run(module)
        if progress is not None:
            progress.stage("emit")
        start = time.perf_counter()
        binary, plan, meta = emit_module(module, config, weights)
        driver.record("emit", time.perf_counter() - start)
    if options.time_passes:
        log.write(driver.report())
    return CompileResult(binary, module, plan, meta, driver.timings, driver.spec)


def _prefill_length(module: ModuleOp) -> int:
    """The tokens of the module's `prefill` program (--seq-len)."""
    from fastmamba.compiler.dialects.accel import ProgramOp

    for program in module.walk():
        if isinstance(program, ProgramOp) and program.program_name == "prefill":
            return next(t.shape[0] for t in program.tensor_descs if t.name == "tokens")
    raise InputError("the module has no accel.program @prefill (with its tokens input)")


def _batch_slots(module: ModuleOp) -> int:
    """The slots of the module's batched decode program (its tokens' length), 0 without one."""
    from fastmamba.compiler.dialects.accel import ProgramOp

    for program in module.walk():
        if isinstance(program, ProgramOp) and program.program_name == BATCH_PROGRAM:
            return next(t.shape[0] for t in program.tensor_descs if t.name == "tokens")
    return 0


def emit_module(module: ModuleOp, config=None, weights=None):
    """The binary, golden plan and metadata of a scheduled module, from what the module records: its target
    (set-target), its calibration (calibrate: the checkpoint, the tokens, the ranges the plan is built from) and
    its programs.  `config` and `weights` are the checkpoint's (read from the recorded checkpoint when not
    given).  `fastmamba compile` and `fastmamba translate` both emit through here: the same IR gives the same
    bytes.  The plan is the compile pipeline's quantization (fastmamba's scheme, the LM head int8)."""
    from fastmamba.compiler.backend.constants import build_image
    from fastmamba.compiler.backend.emit import emit_binary
    from fastmamba.compiler.checkpoint import load_model
    from fastmamba.compiler.dialects.accel import TARGET_ATTR, module_target
    from fastmamba.compiler.progress import step
    from fastmamba.compiler.quant.evaluate import build_plan
    from fastmamba.compiler.quant.plan_io import plan_to_dict
    from fastmamba.compiler.weights import NumpyWeights
    from fastmamba.passes.calibrate import recorded_calibration

    target = module_target(module, "emit")
    spec = module.attributes[TARGET_ATTR].spec.data  # type: ignore[attr-defined]
    model, tokens, ranges = recorded_calibration(module)
    if config is None or weights is None:
        config, store = load_model(model)
        weights = NumpyWeights(store)
    image = build_image(module, weights, target, lambda n, total: step(n, total, "constant block"))
    plan = build_plan("fastmamba", config, weights, ranges, target=target, head=True)
    meta = {"format": META_FORMAT, "model": model, "bundled": _is_bundled(model),
            "config": config.to_dict() if hasattr(config, "to_dict") else dict(config.__dict__),
            "seq_len": _prefill_length(module), "target": spec, "calibration": tokens, "plan": plan_to_dict(plan)}
    batch = _batch_slots(module)
    if batch:
        meta["batch"] = batch
    binary = emit_binary(module, target, image, meta=json.dumps(meta, sort_keys=True))
    return binary, plan, meta


def _is_bundled(model) -> bool:
    from fastmamba.compiler.checkpoint import DEFAULT_MODEL_DIR

    try:
        return Path(model).resolve() == Path(DEFAULT_MODEL_DIR).resolve()
    except OSError:
        return False
