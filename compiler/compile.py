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
    emit            the constant image packed from the weights, the programs encoded, meta (JSON) for
                    `fastmamba run`: model, config, the golden QuantPlan built from the same ranges

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

from fastmamba.compiler.backend.lowering import DEFAULT_PREFETCH
from fastmamba.compiler.pipeline import PASSES, DriverOptions, PassDriver, pipeline_spec
from fastmamba.compiler.runner import META_FORMAT
from fastmamba.isa.errors import InputError
from fastmamba.compiler.errors import ModelError

__all__ = ["CompileOptions", "CompileResult", "compile_model", "compile_pipeline", "calibration_pass",
           "model_pipeline", "calibration_source",
           "DEFAULT_CALIBRATION_TEXT", "META_FORMAT", "quant_stages", "around_calibration", "backend_stages",
           "merge_decode"]

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CALIBRATION_TEXT = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"
CALIBRATION_WINDOWS = 4
CALIBRATION_SEED = 0  # the random calibration tokens when there is no text


@dataclass(frozen=True)
class CompileOptions:
    seq_len: int = 64
    target: str = "vc709"
    calibration_windows: int = CALIBRATION_WINDOWS
    tile_kib: int = 0
    prefetch: int = DEFAULT_PREFETCH
    print_after: tuple[str, ...] | bool = ()  # pass names, or True for all
    dump_dir: str | None = None
    time_passes: bool = False


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
    return _pass("calibrate", **where, **source, windows=options.calibration_windows, copy_to=("decode",))


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


def calibration_source(text_path: str | os.PathLike | None, tokenizer) -> tuple[Path | None, str]:
    """The calibration text (given, else tinyshakespeare beside the repository when it exists and the model has a
    tokenizer), or None for random tokens; checked readable here, before the import."""
    path = Path(text_path) if text_path else DEFAULT_CALIBRATION_TEXT
    if text_path and tokenizer is None:
        raise InputError(f"the model has no tokenizer (tokenizer.json) to encode the calibration text {path}")
    if text_path or (path.is_file() and tokenizer is not None):
        if not os.access(path, os.R_OK) or not path.is_file():
            raise InputError(f"cannot read calibration text {path}")
        return path, f"the first {{count}} tokens of {path}"
    return None, f"{{count}} random tokens (seed {CALIBRATION_SEED}; no calibration text found)"


def merge_decode(prefill: ModuleOp, decode: ModuleOp) -> None:
    """Move decode's @prefill (a length-1 prefill) into `prefill`'s module as @decode."""
    fn = next(op for op in decode.body.block.ops if isinstance(op, func.FuncOp))
    fn.detach()
    fn.sym_name = StringAttr("decode")
    prefill.body.block.add_op(fn)


def _prepare(model, options: CompileOptions, calibration_text):
    """The model's config, weight store and tokenizer (None without one), where the calibration tokens come from,
    and the pipeline; bad options and inputs are InputErrors here, before the import."""
    from fastmamba.compiler.checkpoint import load_model
    from fastmamba.compiler.tokenizer import load_tokenizer

    if options.seq_len < 1:
        raise InputError(f"--seq-len must be at least 1, got {options.seq_len}")
    config, store = load_model(model)
    try:
        tokenizer = load_tokenizer(config, model)
    except ModelError:  # no tokenizer: calibration falls back to random tokens (unless a text is given)
        tokenizer = None
    text, origin = calibration_source(calibration_text, tokenizer)
    return config, store, tokenizer, origin, compile_pipeline(options, calibration_pass(options, model, text))


def model_pipeline(model: str | os.PathLike, options: CompileOptions = CompileOptions(),
                   calibration_text: str | os.PathLike | None = None) -> str:
    """The pipeline `compile_model(model, options, calibration_text=...)` runs, as `fastmamba opt -p` takes it."""
    return pipeline_spec(_prepare(model, options, calibration_text)[4])


def compile_model(model: str | os.PathLike, options: CompileOptions = CompileOptions(), *,
                  calibration_text: str | os.PathLike | None = None, log: TextIO | None = None) -> CompileResult:
    """Compile the model at `model` (a checkpoint directory); the binary is returned, not written."""
    from fastmamba.compiler.backend.constants import build_image
    from fastmamba.compiler.backend.emit import emit_binary
    from fastmamba.compiler.frontend.importer import import_model
    from fastmamba.compiler.quant.evaluate import build_plan
    from fastmamba.compiler.quant.plan_io import plan_to_dict
    from fastmamba.compiler.weights import NumpyWeights
    from fastmamba.isa.target import load_target
    from fastmamba.passes.calibrate import CalibratePass, loaded_model, recorded_ranges

    log = log or sys.stderr
    target = load_target(options.target)
    t0 = time.perf_counter()
    config, store, tokenizer, origin, passes = _prepare(model, options, calibration_text)
    driver = PassDriver(passes, DriverOptions(print_after=options.print_after, dump_dir=options.dump_dir,
                                              time_passes=options.time_passes, input_name="import",
                                              reproducer=True), log)
    module = import_model(model, "prefill", options.seq_len).module
    merge_decode(module, import_model(model, "prefill", 1).module)
    weights = NumpyWeights(store)
    driver.record("import", time.perf_counter() - t0)
    ranges: dict = {}

    def keep_ranges(p: ModulePass, m: ModuleOp) -> None:  # the golden plan is built from the same ranges
        if isinstance(p, CalibratePass):
            ranges.update(recorded_ranges(m, "prefill"))

    with loaded_model(model, config, weights, tokenizer):
        driver.run(module, on_pass=keep_ranges)
    start = time.perf_counter()
    image = build_image(module, weights, target)
    plan = build_plan("fastmamba", config, weights, ranges, target=target, head=True)
    count = options.seq_len * options.calibration_windows
    meta = {"format": META_FORMAT, "model": str(Path(model).resolve()), "bundled": _is_bundled(model),
            "config": config.to_dict() if hasattr(config, "to_dict") else dict(config.__dict__),
            "seq_len": options.seq_len, "target": options.target, "calibration": origin.format(count=count),
            "plan": plan_to_dict(plan)}
    binary = emit_binary(module, target, image, meta=json.dumps(meta, sort_keys=True))
    driver.record("emit", time.perf_counter() - start)
    return CompileResult(binary, module, plan, meta, driver.timings, driver.spec)


def _is_bundled(model) -> bool:
    from fastmamba.compiler.checkpoint import DEFAULT_MODEL_DIR

    try:
        return Path(model).resolve() == Path(DEFAULT_MODEL_DIR).resolve()
    except OSError:
        return False
