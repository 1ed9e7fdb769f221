"""The constant image's int8 weights checked by a second route (compiler.backend.image_check).

`fastmamba run --check` compares the binary with a golden model that takes its
int8 weights from the same `offline.quantize_weight`; these tests check the
image against the checkpoint's FP32 weights instead, and show that the check
sees the bugs the golden comparison cannot: weights rounded toward -inf, a
missing Hadamard rotation, a wrong scale.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

from fastmamba.compiler.backend.constants import build_image
from fastmamba.compiler.backend.image_check import ImageCheckError, check_image, hadamard
from fastmamba.compiler.checkpoint import DEFAULT_MODEL_DIR, load_model
from fastmamba.compiler.compile import CompileOptions, compile_model
from fastmamba.compiler.quant import offline
from fastmamba.compiler.weights import NumpyWeights
from fastmamba.isa.target import load_target


@pytest.fixture(scope="module")
def compiled():
    result = compile_model(DEFAULT_MODEL_DIR, CompileOptions(), log=io.StringIO())
    config, store = load_model(DEFAULT_MODEL_DIR)
    return result, config, store


def test_hadamard_is_the_documented_matrix():
    h4 = [[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]]  # docs/NUMERICS.md §2
    assert np.array_equal(hadamard(4), h4)
    assert np.array_equal(np.array([[1, 2, 3, 4]]) @ hadamard(4), [[10, -2, -4, 0]])
    h = hadamard(256)
    assert np.array_equal(h @ h, 256 * np.eye(256))


def test_every_linear_weight_of_the_image_follows_from_the_checkpoint(compiled):
    result, config, _ = compiled
    checks = {c.name: c for c in check_image(result.module, result.binary.const_image, DEFAULT_MODEL_DIR)}
    want = {f"backbone.layers.{i}.mixer.{p}.weight" for i in range(config.n_layer) for p in ("in_proj", "out_proj")}
    assert want <= set(checks) and len(checks) == len(want) + 1  # and the W8A8 head
    for check in checks.values():
        assert check.max_error <= 0.5 + 1e-4 and check.max_scale_error <= 1e-6, check
        assert check.max_error > 0.45, check  # a real rounding error, not a vacuous comparison
    assert checks["backbone.layers.0.mixer.out_proj.weight"].channels == config.d_model


def _floor_quantize(w, granularity="channel"):
    """offline.quantize_weight with the rounding of the audit's surviving mutation: toward -inf."""
    wq, scale = ORIGINAL_QUANTIZE(w, granularity)
    w64 = np.asarray(w, np.float64)
    return np.clip(np.floor(w64 / scale.astype(np.float64)[:, None]), -127, 127).astype(np.int8), scale


ORIGINAL_QUANTIZE = offline.quantize_weight


@pytest.mark.parametrize("mutation", ["floor", "no_rotation", "scale"])
def test_broken_offline_weights_fail_it(compiled, monkeypatch, mutation):
    result, _, store = compiled
    if mutation == "floor":
        monkeypatch.setattr(offline, "quantize_weight", _floor_quantize)
        message = "of a step away"
    elif mutation == "no_rotation":
        monkeypatch.setattr(offline, "rotate_columns", lambda w, block: np.asarray(w, np.float32))
        message = "scale|of a step away"
    else:
        monkeypatch.setattr(offline, "quantize_weight",
                            lambda w, g="channel": (ORIGINAL_QUANTIZE(w, g)[0], ORIGINAL_QUANTIZE(w, g)[1] * 1.01))
        message = "scale"
    # new weights for each mutation: a NumpyWeights keeps the offline forms it computed (its derived values)
    image = build_image(result.module, NumpyWeights(store), load_target("vc709"))
    assert image != result.binary.const_image
    with pytest.raises(ImageCheckError, match=message):
        check_image(result.module, image, DEFAULT_MODEL_DIR)


def test_every_rmsnorm_of_the_binary_carries_the_models_eps(compiled):
    """The eps of the model's norms reaches every VEC instruction with an rmsnorm (tests/test_rmsnorm_eps_directed.py
    shows the units use it); a fusion or lowering that dropped it would leave eps = 0 here."""
    result, config, _ = compiled
    eps = {float(np.float32(config.norm_eps)), float(np.float32(config.gated_norm_eps))}
    norms = [op for prog in result.binary.programs for bundle in prog.bundles for op in bundle.ops
             if op.op == "vec" and "rmsnorm" in (op.enum(f) for f in ("op0", "op1", "op2", "op3"))]
    per_step = 2 * config.n_layer + 1  # the norm before each mixer, the gated norm in it, the final norm
    assert len(norms) >= 2 * per_step and all(float(op["eps"]) in eps for op in norms)
    assert min(eps) > 0


def test_an_image_assembled_in_a_temporary_file_has_the_same_bytes(compiled, monkeypatch):
    from fastmamba.compiler.backend import constants

    result, _, store = compiled
    monkeypatch.setattr(constants, "IMAGE_FILE_BYTES", 0)  # this small image too goes through the file
    image = build_image(result.module, NumpyWeights(store), load_target("vc709"))
    assert isinstance(image, bytes) and image == result.binary.const_image


def test_offline_weights_are_computed_once_per_weight_store(compiled, monkeypatch):
    """A NumpyWeights keeps the rotated weights it computed (compile: calibration's, taken by the image)."""
    result, _, store = compiled
    weights, target = NumpyWeights(store), load_target("vc709")
    first = build_image(result.module, weights, target)
    rotations = []
    real = offline.rotate_columns
    monkeypatch.setattr(offline, "rotate_columns", lambda w, block: rotations.append(block) or real(w, block))
    assert build_image(result.module, weights, target) == first and rotations == []
    assert build_image(result.module, NumpyWeights(store), target) == first and len(rotations) > 0


def test_offline_weights_beyond_the_memory_budget_are_read_back_from_a_file(compiled, monkeypatch):
    """With no memory for derived values, the rotations go to the weights' temporary file and come back whole."""
    result, _, store = compiled
    weights, target = NumpyWeights(store, derived_bytes=0), load_target("vc709")
    first = build_image(result.module, weights, target)
    rotations = []
    real = offline.rotate_columns
    monkeypatch.setattr(offline, "rotate_columns", lambda w, block: rotations.append(block) or real(w, block))
    assert build_image(result.module, weights, target) == first and rotations == []
    assert build_image(result.module, NumpyWeights(store, derived_bytes=0, spill_bytes=0), target) == first
    assert len(rotations) > 0
