"""The whole compiler: a Mamba2 model -> a `.fmb` binary with a prefill and a decode program.

Place in the flow: the top of the compiler, run by `fastmamba compile` and
`fastmamba demo`.  Stages, each inspectable (print after it, dump it, time it):

    import          torch.export of the prefill graph at --seq-len and at length 1 (the decode step:
                    a prefill of one token from the carried states), raised to `mamba`, one module
    fold-norm-weights, insert-hadamard{block=0 head=true}, dce
    calibrate       ranges recorded by interpreting @prefill on calibration tokens, copied onto @decode
    assign-scales{head="int8"}, approximate-nonlinear, fuse-elementwise
    lower-to-accel, plan-memory, schedule-vliw
    emit            the constant image packed from the weights, the programs encoded, meta (JSON) for
                    `fastmamba run`: model, config, the golden QuantPlan built from the same ranges

A failing stage leaves the IR it failed on in a file and names the command
that reproduces the failure.  Nothing is written to the output path unless
every stage succeeded.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, StringAttr

from fastmamba.compiler.backend.lowering import DEFAULT_PREFETCH
from fastmamba.compiler.pipeline import build_pipeline, mamba_context, print_ir
from fastmamba.compiler.runner import META_FORMAT
from fastmamba.isa.errors import FastmambaError, InputError
from fastmamba.compiler.errors import ModelError

__all__ = ["CompileOptions", "CompileResult", "compile_model", "calibration_tokens", "DEFAULT_CALIBRATION_TEXT",
           "META_FORMAT", "quant_stages", "around_calibration", "backend_stages", "merge_decode"]

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CALIBRATION_TEXT = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"
CALIBRATION_WINDOWS = 4


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


def quant_stages() -> list[str]:
    return ["fold-norm-weights", "insert-hadamard{block=0 head=true}", "dce", "calibrate",
            'assign-scales{head="int8"}', "approximate-nonlinear", "fuse-elementwise"]


def around_calibration() -> tuple[str, str]:
    """The quantization stages before and after calibrate, as pipeline specs (for code that calibrates itself)."""
    stages = quant_stages()
    cut = stages.index("calibrate")
    return ",".join(stages[:cut]), ",".join(stages[cut + 1:])


def backend_stages(o: CompileOptions) -> list[str]:
    t = f'target="{o.target}"'
    return [f"lower-to-accel{{{t} tile_kib={o.tile_kib} prefetch={o.prefetch}}}", f"plan-memory{{{t}}}",
            f"schedule-vliw{{{t}}}"]


def calibration_tokens(text_path: str | os.PathLike | None, tokenizer, count: int, vocab: int) -> tuple[np.ndarray,
                                                                                                        str]:
    """`count` calibration tokens from the start of a text (default: tinyshakespeare beside the repo), or
    seeded random tokens when there is no text (or no tokenizer for the default text); and a description
    of where they came from."""
    path = Path(text_path) if text_path else DEFAULT_CALIBRATION_TEXT
    if text_path and tokenizer is None:
        raise InputError(f"the model has no tokenizer (tokenizer.json) to encode the calibration text {path}")
    if text_path or (path.is_file() and tokenizer is not None):
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read calibration text {path}: {exc.strerror}") from None
        from fastmamba.compiler.quant.evaluate import calibration_ids

        ids, _ = calibration_ids(data, 0, len(data), tokenizer)
        if len(ids) < count:
            raise InputError(f"calibration text {path} holds {len(ids)} tokens, {count} are needed")
        return np.asarray(ids[:count], np.int64), f"the first {count} tokens of {path}"
    rng = np.random.default_rng(0)
    return rng.integers(0, vocab, count), f"{count} random tokens (seed 0; no calibration text found)"


class _Stages:
    """Runs named stages on one module with print-after, dump-dir, timing and failure capture."""

    def __init__(self, module: ModuleOp, options: CompileOptions, log: TextIO):
        self.module, self.options, self.log = module, options, log
        self.index = 0
        self.timings: list[tuple[str, float]] = []
        self.ctx = mamba_context()
        self.last_dump: Path | None = None
        if options.dump_dir:
            Path(options.dump_dir).mkdir(parents=True, exist_ok=True)
        self._dump("import")

    def _base(self, spec: str) -> str:
        return spec.split("{", 1)[0]

    def _dump(self, name: str, text: str | None = None) -> None:
        if self.options.dump_dir:
            self.last_dump = Path(self.options.dump_dir) / f"{self.index:02d}-{self._base(name)}.mlir"
            self.last_dump.write_text(text if text is not None else print_ir(self.module))
        self.index += 1

    def run(self, spec: str, action: Callable[[ModuleOp], None] | None = None) -> None:
        name = self._base(spec)
        # The input IR for a reproducer: the last dump when dumping (already written), else a copy of the module
        # (printed only if the stage fails).
        snapshot = self.module.clone() if action is None and not self.options.dump_dir else None
        start = time.perf_counter()
        try:
            if action is not None:
                action(self.module)
            else:
                (p,) = build_pipeline(spec).passes
                p.apply(self.ctx, self.module)
            self.module.verify()
        except FastmambaError as exc:
            raise InputError(f"{exc}{self._repro(spec, snapshot)}") from None
        except Exception as exc:  # a bug in a pass: still say where and how to reproduce
            raise InputError(f"pass {name} failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                             f"{self._repro(spec, snapshot)}") from None
        self.record(name, time.perf_counter() - start)
        pa = self.options.print_after
        text = None
        if pa is True or (pa and name in pa):
            text = print_ir(self.module)
            self.log.write(f"// -----// IR Dump After {name} //----- //\n{text}")
        self._dump(name, text)

    def record(self, name: str, seconds: float) -> None:
        """Keep a stage's time (and print it with --time-passes)."""
        self.timings.append((name, seconds))
        if self.options.time_passes:
            self.log.write(f"  {name:<24} {seconds:8.2f} s\n")

    def _repro(self, spec: str, snapshot: ModuleOp | None) -> str:
        if self.options.dump_dir:
            folder, source = Path(self.options.dump_dir), self.last_dump
        elif snapshot is not None:
            folder, source = Path(os.environ.get("TMPDIR", "/tmp")), None
        else:
            return ""
        path = folder / f"{self.index:02d}-{self._base(spec)}.failed-input.mlir"
        try:
            path.write_text(source.read_text() if source is not None else print_ir(snapshot))
        except OSError:
            return ""
        return f" (its input IR: {path}; reproduce: fastmamba opt {path} -p '{spec}')"


def merge_decode(prefill: ModuleOp, decode: ModuleOp) -> None:
    """Move decode's @prefill (a length-1 prefill) into `prefill`'s module as @decode."""
    fn = next(op for op in decode.body.block.ops if isinstance(op, func.FuncOp))
    fn.detach()
    fn.sym_name = StringAttr("decode")
    prefill.body.block.add_op(fn)


def compile_model(model: str | os.PathLike, options: CompileOptions = CompileOptions(), *,
                  calibration_text: str | os.PathLike | None = None, log: TextIO | None = None) -> CompileResult:
    """Compile the model at `model` (a checkpoint directory); the binary is returned, not written."""
    from fastmamba.compiler.backend.constants import build_image
    from fastmamba.compiler.backend.emit import emit_binary
    from fastmamba.compiler.checkpoint import load_model
    from fastmamba.compiler.frontend.importer import import_model
    from fastmamba.compiler.quant.evaluate import build_plan
    from fastmamba.compiler.quant.plan_io import plan_to_dict
    from fastmamba.compiler.tokenizer import load_tokenizer
    from fastmamba.compiler.weights import NumpyWeights
    from fastmamba.isa.target import load_target
    from fastmamba.passes.calibrate import apply_ranges, calibrate_module

    log = log or sys.stderr
    target = load_target(options.target)
    if options.seq_len < 1:
        raise InputError(f"--seq-len must be at least 1, got {options.seq_len}")
    t0 = time.perf_counter()
    config, store = load_model(model)
    try:
        tokenizer = load_tokenizer(config, model)
    except ModelError:  # no tokenizer: calibration falls back to random tokens (unless a text is given)
        tokenizer = None
    ids, origin = calibration_tokens(calibration_text, tokenizer, options.seq_len * options.calibration_windows,
                                     config.vocab_size)
    module = import_model(model, "prefill", options.seq_len).module
    merge_decode(module, import_model(model, "prefill", 1).module)
    weights = NumpyWeights(store)
    stages = _Stages(module, options, log)
    stages.record("import", time.perf_counter() - t0)
    ranges: dict = {}

    def calibrate(m: ModuleOp) -> None:
        ranges.update(calibrate_module(m, weights, ids, function="prefill", windows=options.calibration_windows,
                                       target=target))
        apply_ranges(m, ranges, function="decode")

    for spec in quant_stages():
        stages.run(spec, calibrate if spec == "calibrate" else None)
    for spec in backend_stages(options):
        stages.run(spec)
    start = time.perf_counter()
    image = build_image(module, weights, target)
    plan = build_plan("fastmamba", config, weights, ranges, target=target, head=True)
    meta = {"format": META_FORMAT, "model": str(Path(model).resolve()), "bundled": _is_bundled(model),
            "config": config.to_dict() if hasattr(config, "to_dict") else dict(config.__dict__),
            "seq_len": options.seq_len, "target": options.target, "calibration": origin, "plan": plan_to_dict(plan)}
    binary = emit_binary(module, target, image, meta=json.dumps(meta, sort_keys=True))
    stages.record("emit", time.perf_counter() - start)
    return CompileResult(binary, module, plan, meta, stages.timings)


def _is_bundled(model) -> bool:
    from fastmamba.compiler.checkpoint import DEFAULT_MODEL_DIR

    try:
        return Path(model).resolve() == Path(DEFAULT_MODEL_DIR).resolve()
    except OSError:
        return False
