"""The FP32 reference Mamba2 (compiler/reference.py) against transformers' Mamba2ForCausalLM.

transformers runs its pure-PyTorch chunked SSD form here (no mamba_ssm
kernels on the CPU), an independent formulation of the same function.
Where transformers and mamba_ssm differ and what we follow:
- Conv state width: both cache d_conv conv inputs; the oldest is never used
  again, so our state keeps d_conv-1 and is compared with their last d_conv-1.
- Gated RMSNorm epsilon: mamba_ssm hard-codes 1e-5, transformers uses
  layer_norm_epsilon.  With the usual 1e-5 they agree.  A transformers config
  keeps its own epsilon (the model was trained with it, see
  test_transformers_epsilon_is_kept); the mamba_ssm layout gets 1e-5.
- time_step_limit: transformers clamps dt in prefill but not in its decode
  step; mamba_ssm applies it only in its fused kernels.  We reject any limit
  but (0, inf) (tests/test_checkpoint.py), so neither behaviour arises.
For every accepted config the two compute the same function; the tests check
it within 1e-4 (float32) on sequence lengths that are not multiples of
chunk_size.
"""

from __future__ import annotations

import pytest
import torch

from fastmamba.compiler.checkpoint import load_model
from fastmamba.compiler.reference import LayerState, Mamba2Reference, one_thread
from fastmamba.isa.errors import InputError
from model_factory import CONFIGS, make_config, random_hf_model, random_tokens

# (config, sequence length): none of the lengths is a multiple of the config's chunk_size.
CASES = [("tiny", 37), ("groups2", 21), ("expand3_k3", 10), ("groups4_k2", 23)]


@pytest.fixture(scope="module")
def models():
    """name -> (HF model, our reference), built once per module."""
    out = {}
    for name in CONFIGS:
        hf = random_hf_model(make_config(name), seed=len(out))
        out[name] = (hf, Mamba2Reference(*load_model(hf)))
    return out


@pytest.mark.parametrize("name,length", CASES)
def test_prefill_logits_match_transformers(models, name, length):
    hf, ref = models[name]
    assert length % ref.config.chunk_size != 0
    tokens = random_tokens(ref.config, batch=2, length=length)
    with torch.no_grad():
        expected = hf(tokens, use_cache=False).logits
    logits, _ = ref.prefill(tokens)
    assert logits.shape == expected.shape
    assert expected.abs().max() > 1.0  # non-trivial logits
    assert (logits - expected).abs().max().item() < 1e-4


@pytest.mark.parametrize("name,length", CASES)
def test_states_and_decode_match_transformers_cache(models, name, length):
    hf, ref = models[name]
    c = ref.config
    tokens = random_tokens(c, batch=2, length=length, seed=5)
    with torch.no_grad():
        out = hf(tokens, use_cache=True)
    logits, states = ref.prefill(tokens)
    for i, state in enumerate(states):
        assert state.conv.shape == (2, c.conv_dim, c.d_conv - 1)
        assert state.ssm.shape == (2, c.nheads, c.headdim, c.d_state)
        hf_conv = out.cache.get_conv_state(i, state_idx=0)  # [batch, conv_dim, d_conv]
        hf_ssm = out.cache.get_recurrent_state(i, state_idx=0)
        assert (state.conv - hf_conv[..., 1:]).abs().max().item() < 1e-5
        assert (state.ssm - hf_ssm).abs().max().item() < 1e-4
        assert hf_ssm.abs().max() > 0.1
    nxt = random_tokens(c, batch=2, length=1, seed=6)
    with torch.no_grad():
        hf_next = hf(nxt, cache=out.cache, use_cache=True).logits[:, 0]
    step_logits, _ = ref.decode_step(nxt[:, 0], states)
    assert (step_logits - hf_next).abs().max().item() < 1e-4


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 2e-5)])
@pytest.mark.parametrize("name", ["groups2", "expand3_k3"])
def test_prefill_then_decode_equals_longer_prefill(name, dtype, tol):
    config = make_config(name)
    ref = Mamba2Reference(*load_model(random_hf_model(config, seed=3)), dtype=dtype)
    n, k = 9, 6
    tokens = random_tokens(config, batch=3, length=n + k, seed=7)
    full_logits, full_states = ref.prefill(tokens)
    logits, states = ref.prefill(tokens[:, :n])
    steps = [logits]
    for t in range(n, n + k):
        step, states = ref.decode_step(tokens[:, t], states)
        steps.append(step[:, None])
    assert (torch.cat(steps, dim=1) - full_logits).abs().max().item() < tol
    for a, b in zip(states, full_states):
        assert (a.conv - b.conv).abs().max().item() < tol
        assert (a.ssm - b.ssm).abs().max().item() < tol


def test_prefill_in_pieces_equals_one_prefill():
    """States carried between prefills (as eval does per segment), including pieces shorter than d_conv - 1."""
    config = make_config("tiny", d_conv=4)
    ref = Mamba2Reference(*load_model(random_hf_model(config, seed=4)), dtype=torch.float64)
    tokens = random_tokens(config, batch=1, length=40, seed=8)
    full, full_states = ref.prefill(tokens)
    pieces, states = [], None
    for a, b in [(0, 1), (1, 3), (3, 20), (20, 21), (21, 40)]:
        logits, states = ref.prefill(tokens[:, a:b], states)
        pieces.append(logits)
    assert (torch.cat(pieces, dim=1) - full).abs().max().item() < 1e-10
    assert all((a.ssm - b.ssm).abs().max().item() < 1e-10 for a, b in zip(states, full_states))


def test_float32_is_close_to_float64(models):
    hf, ref32 = models["groups2"]
    ref64 = Mamba2Reference(*load_model(hf), dtype=torch.float64)
    tokens = random_tokens(ref32.config, batch=1, length=50, seed=9)
    l32, _ = ref32.prefill(tokens)
    l64, _ = ref64.prefill(tokens)
    assert l64.dtype == torch.float64
    assert (l32.double() - l64).abs().max().item() < 1e-4


def test_transformers_epsilon_is_kept():
    """A transformers config's layer_norm_epsilon applies to all its norms, the gated one included, as in
    transformers."""
    config = make_config("groups2", norm_eps=1e-2, gated_norm_eps=1e-2)
    hf = random_hf_model(config, seed=11)
    loaded, weights = load_model(hf)
    assert loaded.norm_eps == loaded.gated_norm_eps == 1e-2
    tokens = random_tokens(config, batch=1, length=12)
    with torch.no_grad():
        expected = hf(tokens, use_cache=False).logits
    logits, _ = Mamba2Reference(loaded, weights).prefill(tokens)
    assert (logits - expected).abs().max().item() < 1e-4


def test_bad_inputs_are_input_errors(models):
    _, ref = models["tiny"]
    with pytest.raises(InputError, match="token ids"):
        ref.prefill(torch.tensor([[0, ref.config.vocab_size]]))
    with pytest.raises(InputError, match="shape"):
        ref.prefill(torch.tensor([1, 2, 3]))
    with pytest.raises(InputError, match="integer"):
        ref.prefill(torch.zeros(1, 3))
    states = ref.empty_states(batch=2)
    with pytest.raises(InputError, match="batch 1"):
        ref.decode_step(torch.tensor([1]), states)
    with pytest.raises(InputError, match="layer states"):
        ref.decode_step(torch.tensor([1, 2]), states[:1])
    bad = [LayerState(conv=s.conv.double(), ssm=s.ssm.double()) for s in states]
    with pytest.raises(InputError, match="float32"):
        ref.decode_step(torch.tensor([1, 2]), bad)
    with pytest.raises(InputError, match="dtype"):
        Mamba2Reference(ref.config, load_model(models["tiny"][0])[1], dtype=torch.float16)


def test_one_thread_restores_the_thread_count():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError):
        with one_thread():
            assert torch.get_num_threads() == 1
            raise RuntimeError("leave the block early")
    assert torch.get_num_threads() == before
