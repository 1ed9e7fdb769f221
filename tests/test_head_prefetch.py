"""lower-to-accel's head prefetch: a prefill's first head tiles loaded while the last layer runs.

A small random model's prefill (int8 head, weight tiles of 1 KiB so its head
has many) lowered with `head_prefetch` on and off: the logits and the states
equal the `mamba_quant` interpreter's bit for bit either way, the program with
it loads some head tiles early (as many as the DDR channel has time for
beside the last layer's weights, the rest streamed after it) and takes fewer
cycles; a decode step is the same program either way.
"""

from __future__ import annotations

import numpy as np
from fastmamba.compiler.checkpoint import load_model
from fastmamba.compiler.dialects.accel import AccelInstructionOp
from fastmamba.compiler.frontend.importer import import_model
from fastmamba.compiler.interpreters.mamba_quant import run_function
from fastmamba.compiler.pipeline import print_ir, run_pipeline
from fastmamba.compiler.weights import NumpyWeights
from fastmamba.passes.calibrate import calibrate_module
from model_factory import make_config, random_hf_model
from test_lower_to_accel import simulate


def _quantized(length: int):
    hf = random_hf_model(make_config("tiny", n_layer=2), seed=5)
    config, store = load_model(hf)
    weights = NumpyWeights(store)
    module = import_model(hf, "prefill", length).module
    tokens = np.random.default_rng(5).integers(0, config.vocab_size, 3 * length)
    run_pipeline(module, "set-target,fold-norm-weights,insert-hadamard{head=true},dce")
    calibrate_module(module, weights, tokens, windows=2)
    run_pipeline(module, 'assign-scales{head="int8"},approximate-nonlinear,fuse-elementwise')
    return weights, module, tokens[2 * length:]


def _lowered(module, on: bool):
    copy = module.clone()
    run_pipeline(copy, f"lower-to-accel{{tile_kib=1 head_prefetch={str(on).lower()}}},plan-memory,schedule-vliw")
    return copy


def _debug(module, marker: str) -> list[str]:
    return [op.debug_text for op in module.walk()
            if isinstance(op, AccelInstructionOp) and marker in (op.debug_text or "")]


def test_prefetched_head_is_bit_exact_and_faster():
    weights, module, ids = _quantized(48)
    ref = run_function(module, weights, "prefill", ids)
    off, on = _lowered(module, False), _lowered(module, True)
    early = {text.split(" part ")[0] for text in _debug(on, " part ")}
    head = set(_debug(off, "embeddings tile"))  # the tied head's tile loads
    assert _debug(off, " part ") == [] and 0 < len(early) < len(head)  # some tiles early, the rest streamed
    cycles = {}
    for name, mod in (("off", off), ("on", on)):
        prog, result = simulate(mod, weights, ids)
        assert np.array_equal(result.outputs["logits"], ref[0])
        assert result.outputs["next_token"][0] == int(np.argmax(ref[0][0]))
        cycles[name] = result.stats.cycles
    assert cycles["on"] < cycles["off"]


def test_decode_step_is_unchanged():
    _, module, _ = _quantized(1)
    assert print_ir(_lowered(module, True)) == print_ir(_lowered(module, False))
