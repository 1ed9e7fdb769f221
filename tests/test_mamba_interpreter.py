"""The `mamba` interpreter (compiler/interpreters/mamba.py) on raised IR against the FP32 reference.

The reference (compiler/reference.py) is an independent formulation, itself
checked against transformers; a prefill followed by decode steps must give
its logits within 1e-4 and its states, for several configs and the bundled model.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastmamba.compiler.checkpoint import DEFAULT_MODEL_DIR, load_model
from fastmamba.compiler.frontend.importer import import_model
from fastmamba.compiler.interpreters.mamba import run_function
from fastmamba.compiler.reference import Mamba2Reference
from fastmamba.compiler.weights import NumpyWeights
from model_factory import make_config, random_hf_model, random_tokens, save_hf_dir, save_mamba_ssm_dir
from xdsl.utils.exceptions import InterpretationError


def _check(source, ref: Mamba2Reference, length: int, steps: int = 2) -> None:
    c = ref.config
    tokens = random_tokens(c, 1, length + steps, seed=5)
    prefill = import_model(source, "prefill", length, all_logits=True)
    decode = import_model(source, "decode")
    weights = NumpyWeights(prefill.weights)
    logits, states = ref.prefill(tokens[:, :length])
    out = run_function(prefill.module, weights, "prefill", tokens[0, :length].numpy())
    assert np.abs(logits.numpy()).max() > 1.0
    assert np.abs(out[0] - logits[0].numpy()).max() < 1e-4
    for i, s in enumerate(states):
        assert np.abs(out[1 + 2 * i] - s.conv[0].numpy()).max() < 1e-5
        assert np.abs(out[2 + 2 * i] - s.ssm[0].numpy()).max() < 1e-4
    carried = out[1:]
    for t in range(length, length + steps):
        logits, states = ref.decode_step(tokens[:, t], states)
        out = run_function(decode.module, weights, "decode", tokens[0, t:t + 1].numpy(), *carried)
        assert np.abs(out[0] - logits.numpy()).max() < 1e-4
        carried = out[1:]
    assert np.abs(carried[-1] - states[-1].ssm[0].numpy()).max() < 1e-4


@pytest.mark.parametrize("name,length", [("tiny", 11), ("groups2", 9), ("expand3_k3", 6), ("groups4_k2", 7)])
def test_live_transformers_models(name, length):
    hf = random_hf_model(make_config(name), seed=11)
    _check(hf, Mamba2Reference(*load_model(hf)), length)


def test_checkpoint_directories(tmp_path):
    config = make_config("groups2", headdim=16, d_state=12)
    hf = random_hf_model(config, seed=2)
    ref = Mamba2Reference(*load_model(hf))
    _check(save_hf_dir(hf, tmp_path / "hf"), ref, 5, steps=1)
    _check(save_mamba_ssm_dir(hf, config, tmp_path / "ssm"), ref, 5, steps=1)


@pytest.mark.skipif(not (DEFAULT_MODEL_DIR / "config.json").is_file(), reason="bundled model not trained yet")
def test_bundled_model():
    _check(str(DEFAULT_MODEL_DIR), Mamba2Reference(*load_model(DEFAULT_MODEL_DIR)), 16, steps=1)


def test_bad_inputs_are_reported():
    hf = random_hf_model(make_config("tiny"), seed=1)
    imported = import_model(hf, "prefill", 4)
    weights = NumpyWeights(imported.weights)
    with pytest.raises(InterpretationError, match="token ids"):
        run_function(imported.module, weights, "prefill", np.array([0, 1, 2, 999]))
    with pytest.raises(InterpretationError, match="shape"):
        run_function(imported.module, weights, "prefill", np.array([0, 1, 2]))
    with pytest.raises(InterpretationError, match="no weight named"):
        run_function(imported.module, {}, "prefill", np.array([0, 1, 2, 3]))
    with pytest.raises(InterpretationError, match="no function @decode"):
        run_function(imported.module, weights, "decode", np.array([0]))


def test_softplus_follows_torch_threshold():
    from fastmamba.compiler.interpreters.mamba import MambaFunctions

    x = np.array([-30.0, -1.0, 0.0, 19.9, 20.0, 25.0], np.float32)
    got = MambaFunctions.run_softplus(MambaFunctions({}), None, None, (x,))[0]
    assert np.allclose(got, torch.nn.functional.softplus(torch.from_numpy(x)).numpy(), rtol=1e-6, atol=1e-7)
