"""calibrate: run calibration text through the IR and record activation ranges per tensor.

Place in the flow: after fold-norm-weights and insert-hadamard, before
assign-scales (which reads what this pass writes).  The module's function (a
prefill: tokens in) is interpreted on consecutive windows of the calibration
text; each linear, conv1d and SSM op gets a `mamba_quant.range` dictionary of
its quantities (compiler/quant/plan.py lists them): the linear layer's input
before and after its Hadamard rotation ("x", "xr"), the conv's input and
output, the SSM's x, B, C, dt before and after softplus, y, and its state's
largest magnitude over time, plus the weight magnitudes the fixed-point formats
need ("w", "A", "D").

Options: text (file) or random=true and seed (uniform tokens), model (checkpoint
directory; default the bundled model), method ("max" or "percentile"), percentile
(for the linear layers' activations), windows (how many windows of the function's
length), function, copy_to (functions given the same ranges site by site, e.g. the
decode step).  The target is the module's (set-target).  Every input is an option,
so `fastmamba opt -p 'calibrate{...}'` reruns what fastmamba compile ran.  In-process
callers with weights in hand use `calibrate_module`; `apply_ranges` writes ranges already
recorded (calibrate_module's result) onto another module with the same sites, e.g. the same
model imported for another sequence length, without running it.  The LM head's input is
recorded too (site "lm_head", "x" and "xr"), for assign-scales{head="int8"}.  The module keeps a record of
the calibration (`mamba_quant.calibration`: the checkpoint, the tokens run, every site's ranges) that outlives
the ops' ranges, for the binary's metadata (compiler/compile.py, `fastmamba translate`).  The function is
interpreted op by op through xDSL's public `Interpreter.run_op`, each value dropped after its
last use (a large model's weights and their folded copies are not all held at once).
"""

from __future__ import annotations

import os
import types
import weakref
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from xdsl.context import Context
from xdsl.dialects import builtin, func
from xdsl.interpreter import Interpreter
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass

from fastmamba.compiler.dialects import mamba
from fastmamba.compiler.dialects import mamba_quant as mq
from fastmamba.compiler import progress
from fastmamba.compiler.dialects.accel import module_target
from fastmamba.compiler.quant.calibration import RangeRecorder
from fastmamba.compiler.quant.golden import ssm_f32
from fastmamba.compiler.quant.sites import site_of
from fastmamba.isa.errors import InputError
from fastmamba.isa.target import Target

RANGE_ATTR = "mamba_quant.range"
WEIGHT_OPS = (mamba.WeightOp, mq.ScaleColumnsOp, mq.RotateColumnsOp)  # values the same in every window
# The module's record of its calibration (calibrate writes it; the emitter's metadata reads it, after later passes
# have dropped the ops' ranges): {model = checkpoint dir, tokens = what was run, ranges = {site = {quantity = v}}}.
CALIBRATION_ATTR = "mamba_quant.calibration"


def _dt_raw(op: mamba.SSMScanOp) -> SSAValue | None:
    """dt_raw of dt = softplus(dt_raw + dt_bias), the form assign-scales quantizes."""
    soft = op.dt.owner
    if isinstance(soft, mamba.SoftplusOp) and isinstance(soft.x.owner, mamba.AddOp):
        return soft.x.owner.lhs
    return None


def sites_of(fn: func.FuncOp) -> dict[Operation, str]:
    """The ops of `fn` that have a site (compiler.quant.sites), in program order: where calibrate writes ranges."""
    return {op: site for op in fn.walk() if (site := site_of(op)) is not None}


def write_ranges(sites: Mapping[Operation, str], ranges: Mapping[str, Mapping[str, float]]) -> None:
    """Each op's site's ranges as its RANGE_ATTR (quantities sorted), for the sites that have ranges."""
    for op, site in sites.items():
        if site in ranges:
            op.attributes[RANGE_ATTR] = builtin.DictionaryAttr(
                {q: builtin.FloatAttr(float(v), builtin.f64) for q, v in sorted(ranges[site].items())})


class _Recorder(Interpreter.Listener):
    """Sends the values of the watched SSA values to a RangeRecorder as (site, quantity)."""

    def __init__(self, fn: func.FuncOp, recorder: RangeRecorder):
        self.recorder = recorder
        self.watch: dict[SSAValue, list[tuple[str, str]]] = {}
        self.ssm_ops: dict[Operation, str] = {}
        self.sites = sites_of(fn)
        self.rotated: set[str] = set()
        self.seen: dict[SSAValue, weakref.ref] = {}
        for op, site in self.sites.items():
            if isinstance(op, mamba.LinearOp | mamba.LMHeadOp):
                x = op.x
                if isinstance(x.owner, mq.HadamardOp):
                    self.rotated.add(site)
                    self._add(x.owner.x, site, "x")
                    self._add(x, site, "xr")
                else:
                    self._add(x, site, "x")
                self._add(op.weight, site, "w")
            elif isinstance(op, mamba.Conv1dOp):
                self._add(op.x, site, "x")
                self._add(op.result, site, "y")
                self._add(op.weight, site, "w")
            elif isinstance(op, mamba.SSMScanOp):
                for value, quantity in ((op.x, "x"), (op.B, "B"), (op.C, "C"), (op.dt, "dt"), (op.y, "y"),
                                        (op.A_log, "A_log"), (op.D, "D")):
                    self._add(value, site, quantity)
                if (raw := _dt_raw(op)) is not None:
                    self._add(raw, site, "dt_raw")
                self.ssm_ops[op] = site

    def _add(self, value: SSAValue, site: str, quantity: str) -> None:
        self.watch.setdefault(value, []).append((site, quantity))

    def _seen_before(self, value: SSAValue, array) -> bool:
        """Whether this very array (a weight or an offline form of one, the same object in every window) was
        recorded for `value` before: with method "max" recording it again changes nothing."""
        if self.recorder.method != "max" or not isinstance(value.owner, WEIGHT_OPS) \
                or not isinstance(array, np.ndarray):
            return False
        last = self.seen.get(value)
        if last is not None and last() is array:
            return True
        self.seen[value] = weakref.ref(array)
        return False

    def _see(self, values, arrays) -> None:
        for value, array in zip(values, arrays):
            watched = self.watch.get(value, ())
            if watched and self._seen_before(value, array):
                continue
            for site, quantity in watched:
                if quantity == "A_log":
                    self.recorder(site, "A", np.exp(np.asarray(array, np.float64)))
                elif site in self.rotated and quantity in ("x", "xr"):  # both seen in the IR: record as they are
                    self.recorder.record(site, quantity, array)
                else:  # (an unrotated linear input also gives "xr" = "x")
                    self.recorder(site, quantity, array)

    def will_interpret_op(self, op: Operation, args) -> None:
        self._see(op.operands, args)
        if op in self.ssm_ops:
            x, dt, A_log, B, C, D, *rest = args
            h, p, n = op.new_state.type.get_shape()
            shape = types.SimpleNamespace(nheads=h, headdim=p, d_state=n, ngroups=B.shape[1] // n,
                                          heads_per_group=h // (B.shape[1] // n))
            state = rest[0] if rest else np.zeros((h, p, n), np.float32)
            _, _, amax = ssm_f32(x, dt, A_log, B, C, D, state, shape, with_y=False)
            self.recorder(self.ssm_ops[op], "state", amax)

    def did_interpret_op(self, op: Operation, results) -> None:
        self._see(op.results, results)


def _find_function(module: builtin.ModuleOp, name: str, who: str) -> func.FuncOp:
    fn = next((op for op in module.body.block.ops if isinstance(op, func.FuncOp) and op.sym_name.data == name), None)
    if fn is None:
        raise InputError(f"{who}: the module has no function @{name}")
    return fn


def _function(module: builtin.ModuleOp, name: str) -> func.FuncOp:
    fn = _find_function(module, name, "calibrate")
    inputs = fn.function_type.inputs.data
    if len(inputs) != 1 or len(inputs[0].get_shape()) != 1:
        raise InputError(f"calibrate: @{name} must take only a token tensor (a prefill program), "
                         f"got {len(inputs)} inputs")
    return fn


def check_weights_match(fn: func.FuncOp, config, model: str | os.PathLike) -> None:
    """One-line InputError unless every weight `fn` names is in the model `config` describes, with the shape
    the IR gives it: IR imported from another model (or with other shapes) is named before anything runs."""
    from fastmamba.compiler.checkpoint import expected_shapes

    shapes = expected_shapes(config)
    for w in fn.walk():
        if not isinstance(w, mamba.WeightOp):
            continue
        name, want = w.weight_name.data, tuple(w.result.type.get_shape())
        if name not in shapes:
            raise InputError(f"calibrate: the IR is not of the model in {model}: it names weight {name}, which "
                             f"that model (n_layer={config.n_layer}) does not have; give model=DIR, the "
                             "checkpoint the IR was imported from")
        if shapes[name] != want:
            raise InputError(f"calibrate: the IR is not of the model in {model}: weight {name} is "
                             f"{'x'.join(map(str, shapes[name]))} there, {'x'.join(map(str, want))} in the IR; "
                             "give model=DIR, the checkpoint the IR was imported from")


MEMO_LIMIT_BYTES = 1 << 30  # weights (f32) up to this size: their folded/rotated forms are kept across windows


def _last_uses(fn: func.FuncOp) -> dict[Operation, list[SSAValue]]:
    """op -> the values (arguments and results) whose last use it is: dropped once it has run, so that a large
    model's weights and their folded and rotated copies are not all held until the function returns."""
    ops = list(fn.body.block.ops)
    position = {op: n for n, op in enumerate(ops)}
    dead_after: dict[Operation, list[SSAValue]] = {}
    for value in [*fn.body.block.args, *(r for op in ops for r in op.results)]:
        users = [u.operation for u in value.uses]
        last = max(users, key=lambda u: position.get(u, -1)) if users else value.owner
        if isinstance(last, Operation):
            dead_after.setdefault(last, []).append(value)
    return dead_after


def _interpret(interpreter: Interpreter, fn: func.FuncOp, inputs: tuple, dead_after) -> None:
    """Run `fn`'s body op by op through the public `Interpreter.run_op` (its listeners see every op), keeping the
    values in a dict of our own that drops each after its last use; the function's results are not needed."""
    values: dict[SSAValue, Any] = dict(zip(fn.body.block.args, inputs))
    for op in fn.body.block.ops:
        if isinstance(op, func.ReturnOp):
            break
        if op.regions:
            raise InputError(f"calibrate: @{fn.sym_name.data} holds {op.name}, an op with regions")
        results = interpreter.run_op(op, tuple(values[v] for v in op.operands))
        values.update(zip(op.results, results))
        for value in dead_after.get(op, ()):
            values.pop(value, None)


def _weight_bytes(fn: func.FuncOp) -> int:
    total = 0
    for op in fn.body.block.ops:
        if isinstance(op, mamba.WeightOp):
            total += 4 * int(np.prod(op.result.type.get_shape()))
    return total


def calibrate_module(module: builtin.ModuleOp, weights: Mapping[str, Any], tokens: np.ndarray, *,
                     function: str = "prefill", method: str = "max", percentile: float = 99.99, windows: int = 4,
                     target: str | Target = "vc709") -> dict:
    """Run `function` on up to `windows` consecutive windows of `tokens`; write and return the ranges per site."""
    from fastmamba.compiler.interpreters.mamba import checked_inputs, single_threaded
    from fastmamba.compiler.interpreters.mamba_quant import make_interpreter

    fn = _function(module, function)
    (length,) = fn.function_type.inputs.data[0].get_shape()
    tokens = np.asarray(tokens, np.int64)
    if len(tokens) < length:
        raise InputError(f"calibrate: the calibration text has {len(tokens)} tokens, @{function} needs {length}")
    try:
        recorder = RangeRecorder(method, percentile)
    except ValueError as exc:
        raise InputError(f"calibrate: {exc}") from None
    listener = _Recorder(fn, recorder)
    count = min(windows, len(tokens) // length)
    memo = count > 1 and _weight_bytes(fn) <= MEMO_LIMIT_BYTES  # small models: weights folded and rotated once
    interpreter = make_interpreter(module, weights, target, (listener,), memo_offline=memo)
    dead_after = _last_uses(fn)
    with single_threaded():
        for w in range(count):
            inputs = checked_inputs(module, function, (tokens[w * length:(w + 1) * length],))
            _interpret(interpreter, fn, tuple(inputs), dead_after)
            progress.step(w + 1, count, "window")
    ranges = recorder.ranges()
    write_ranges(listener.sites, ranges)
    return ranges


def apply_ranges(module: builtin.ModuleOp, ranges: Mapping[str, Mapping[str, float]], function: str = "prefill") -> int:
    """Write `ranges` (site -> quantity -> value, as calibrate_module returns them) onto the ops of `function`.

    For a module with the same sites as the calibrated one (the same model imported for another
    sequence length, or a decode step): assign-scales then chooses the same scales, without
    interpreting anything.  Every site of the function must have ranges (extra sites are ignored).
    Returns how many ops got ranges."""
    sites = sites_of(_find_function(module, function, "apply_ranges"))
    missing = sorted({site for site in sites.values() if site not in ranges})
    if missing:
        raise InputError(f"apply_ranges: no ranges for site(s) {', '.join(missing)} of @{function}")
    write_ranges(sites, ranges)
    return len(sites)


def recorded_ranges(module: builtin.ModuleOp, function: str = "prefill") -> dict[str, dict[str, float]]:
    """The ranges the ops of `function` carry (site -> quantity -> value): what calibrate_module returned when it
    wrote them (the IR holds them as f64, exactly)."""
    out: dict[str, dict[str, float]] = {}
    for op, site in sites_of(_find_function(module, function, "recorded_ranges")).items():
        attr = op.attributes.get(RANGE_ATTR)
        if isinstance(attr, builtin.DictionaryAttr):
            out[site] = {q: float(v.value.data) for q, v in attr.data.items() if isinstance(v, builtin.FloatAttr)}
    return out


def recorded_calibration(module: builtin.ModuleOp) -> tuple[str, str, dict[str, dict[str, float]]]:
    """The calibration the module records (CALIBRATION_ATTR): the checkpoint directory, a description of the
    tokens run and the ranges per site; an InputError when calibrate has not run on it."""
    attr = module.attributes.get(CALIBRATION_ATTR)
    if not isinstance(attr, builtin.DictionaryAttr):
        raise InputError(f"the module has no calibration record ({CALIBRATION_ATTR}): run calibrate first")
    d: dict[str, Any] = dict(attr.data)
    ranges = {site: {q: float(v.value.data) for q, v in qs.data.items() if isinstance(v, builtin.FloatAttr)}
              for site, qs in d["ranges"].data.items() if isinstance(qs, builtin.DictionaryAttr)}
    return d["model"].data, d["tokens"].data, ranges


# Models an in-process caller (fastmamba compile) has loaded already: resolved directory -> (config, weights,
# tokenizer or None).  The calibrate pass takes them from here instead of reading the checkpoint again.
_LOADED: dict[Path, tuple[Any, Mapping[str, Any], Any]] = {}


@contextmanager
def loaded_model(model_dir: str | os.PathLike, config, weights: Mapping[str, Any], tokenizer):
    """While active, calibrate{model=model_dir} uses these (the same checkpoint, already read) instead of loading
    it: the weights converted for calibration are then the ones the caller packs afterwards."""
    key = Path(model_dir).resolve()
    _LOADED[key] = (config, weights, tokenizer)
    try:
        yield
    finally:
        _LOADED.pop(key, None)


def _load(model_dir: str | os.PathLike):
    from fastmamba.compiler.checkpoint import load_model
    from fastmamba.compiler.errors import ModelError
    from fastmamba.compiler.tokenizer import load_tokenizer
    from fastmamba.compiler.weights import NumpyWeights

    key = Path(model_dir).resolve()
    if key in _LOADED:
        return _LOADED[key]
    config, store = load_model(model_dir)
    try:
        tokenizer = load_tokenizer(config, model_dir)
    except ModelError:
        tokenizer = None
    return config, NumpyWeights(store), tokenizer


@dataclass(frozen=True)
class CalibratePass(ModulePass):
    """Record activation ranges on the linear, conv and SSM ops by interpreting the IR on calibration tokens.

    The tokens: the start of `text` (a file, encoded with the model's tokenizer), or with random=true `seed`'s
    uniform tokens over the vocabulary; windows x the function's length of them must be there.  `model`: the
    checkpoint directory (default the bundled model).  `copy_to`: other functions (the decode step) whose ops
    take the recorded ranges site by site.  The target is the module's (set-target)."""

    name = "calibrate"

    text: str = ""
    random: bool = False
    seed: int = 0
    model: str = ""
    method: Literal["max", "percentile"] = "max"
    percentile: float = 99.99
    windows: int = 4
    function: str = "prefill"
    copy_to: tuple[str, ...] = ()

    def tokens(self, length: int, config, tokenizer) -> np.ndarray:
        """The windows x length calibration tokens the options name."""
        count = self.windows * length
        if self.random:
            if self.text:
                raise InputError("calibrate: give text or random=true, not both")
            return np.random.default_rng(self.seed).integers(0, config.vocab_size, count)
        if not self.text:
            raise InputError('calibrate: give the calibration text: calibrate{text="FILE"} (or random=true)')
        path = Path(self.text)
        if tokenizer is None:
            raise InputError(f"calibrate: the model has no tokenizer (tokenizer.json) to encode {path}")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(f"calibrate: cannot read {path}: {exc.strerror}") from None
        from fastmamba.compiler.quant.evaluate import calibration_ids

        ids, _ = calibration_ids(data, 0, len(data), tokenizer)
        if len(ids) < count:
            raise InputError(f"calibrate: calibration text {path} holds {len(ids)} tokens, {count} are needed "
                             f"({self.windows} windows of {length})")
        return np.asarray(ids[:count], np.int64)

    def apply(self, ctx: Context, op: builtin.ModuleOp) -> None:
        from fastmamba.compiler.checkpoint import DEFAULT_MODEL_DIR

        if self.windows < 1:
            raise InputError(f"calibrate: windows must be at least 1, got {self.windows}")
        fn = _function(op, self.function)
        (length,) = fn.function_type.inputs.data[0].get_shape()
        model = str(Path(self.model or DEFAULT_MODEL_DIR).resolve())
        config, weights, tokenizer = _load(model)
        tokens = self.tokens(length, config, tokenizer)
        check_weights_match(fn, config, self.model or DEFAULT_MODEL_DIR)
        ranges = calibrate_module(op, weights, tokens, function=self.function,
                                  method=self.method, percentile=self.percentile, windows=self.windows,
                                  target=module_target(op, self.name))
        for other in self.copy_to:
            apply_ranges(op, ranges, function=other)
        count = self.windows * length
        used = (f"{count} random tokens of seed {self.seed}" if self.random
                else f"the first {count} tokens of {self.text}")
        op.attributes[CALIBRATION_ATTR] = builtin.DictionaryAttr({
            "model": builtin.StringAttr(model), "tokens": builtin.StringAttr(used),
            "ranges": builtin.DictionaryAttr({site: builtin.DictionaryAttr(
                {q: builtin.FloatAttr(float(v), builtin.f64) for q, v in sorted(qs.items())})
                for site, qs in sorted(ranges.items())})})
