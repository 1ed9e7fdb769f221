"""The frontend (compiler/frontend): canonical export form, torch-mlir import, raising to `mamba`.

The exported programs are run in PyTorch and compared with the FP32 reference
(compiler/reference.py, an independent sequential formulation); the raised IR
is checked for weights by name and for one-line errors on what it cannot raise.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fastmamba.compiler.checkpoint import load_model
from fastmamba.compiler.frontend import custom_ops
from fastmamba.compiler.frontend.canonical import canonical_form
from fastmamba.compiler.frontend.export import export_program, torch_mlir_text
from fastmamba.compiler.frontend.importer import import_model
from fastmamba.compiler.frontend.raise_torch import parse_torch_module, raise_to_mamba
from fastmamba.compiler.pipeline import print_ir
from fastmamba.compiler.reference import Mamba2Reference
from fastmamba.isa.errors import InputError
from fastmamba.compiler.errors import ModelError
from model_factory import make_config, random_hf_model, random_tokens


@pytest.fixture(scope="module")
def groups2():
    hf = random_hf_model(make_config("groups2"), seed=3)
    return hf, Mamba2Reference(*load_model(hf))


def _opcheck_cases():
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    T, H, P, N, G, C, K = 5, 4, 3, 2, 2, 6, 4
    return [
        (custom_ops.rmsnorm, (r(T, 8), r(8), 1e-5)),
        (custom_ops.gated_rmsnorm, (r(T, 8), r(T, 8), r(8), 4, 1e-5)),
        (custom_ops.causal_conv1d, (r(T, C), r(C, 1, K), r(C), r(C, K - 1))),
        (custom_ops.causal_conv1d, (r(T, C), r(C, 1, K), None, None)),
        (custom_ops.ssm_scan, (r(T, H * P), r(T, H).abs(), r(H), r(T, G * N), r(T, G * N), r(H), None, G)),
        (custom_ops.ssm_step, (r(1, H * P), r(1, H).abs(), r(H), r(1, G * N), r(1, G * N), r(H), r(H, P, N))),
        (custom_ops.lm_head, (r(T, 8), r(11, 8))),
    ]


@pytest.mark.parametrize("op,args", _opcheck_cases(), ids=lambda v: getattr(v, "__name__", ""))
def test_custom_op_fake_matches_real(op, args):
    torch.library.opcheck(op, args, test_utils=("test_schema", "test_faketensor"))


def test_scan_then_step_equals_longer_scan():
    g = torch.Generator().manual_seed(1)
    H, P, N, G, T = 4, 3, 5, 2, 6
    x, dt, B, C = torch.randn(T, H * P, generator=g), torch.rand(T, H, generator=g), torch.randn(T, G * N,
                                                                                                 generator=g), \
        torch.randn(T, G * N, generator=g)
    A_log, D = torch.randn(H, generator=g), torch.randn(H, generator=g)
    y_all, s_all = custom_ops.ssm_scan(x, dt, A_log, B, C, D, None, G)
    y0, s0 = custom_ops.ssm_scan(x[:-1], dt[:-1], A_log, B[:-1], C[:-1], D, None, G)
    y1, s1 = custom_ops.ssm_step(x[-1:], dt[-1:], A_log, B[-1:], C[-1:], D, s0)
    assert torch.allclose(torch.cat([y0, y1]), y_all, atol=1e-6) and torch.allclose(s1, s_all, atol=1e-6)


@pytest.mark.parametrize("name,length", [("tiny", 9), ("groups2", 7), ("expand3_k3", 5), ("groups4_k2", 6)])
def test_exported_prefill_and_decode_run_and_match_reference(name, length):
    hf = random_hf_model(make_config(name), seed=7)
    ref = Mamba2Reference(*load_model(hf))
    c = ref.config
    tokens = random_tokens(c, 1, length)
    logits, states = ref.prefill(tokens)
    prefill = export_program(hf, c, "prefill", length, all_logits=True).module()
    out = prefill(tokens[0])
    assert (out[0] - logits[0]).abs().max() < 1e-4
    for i, s in enumerate(states):
        assert (out[1 + 2 * i] - s.conv[0]).abs().max() < 1e-5
        assert (out[2 + 2 * i] - s.ssm[0]).abs().max() < 1e-5
    token = torch.tensor([3])
    step_logits, step_states = ref.decode_step(token, states)
    decode = export_program(hf, c, "decode").module()
    out = decode(token, *[t for s in states for t in (s.conv[0], s.ssm[0])])
    assert (out[0] - step_logits).abs().max() < 1e-4
    assert (out[-1] - step_states[-1].ssm[0]).abs().max() < 1e-5


def test_canonical_form_restores_the_model(groups2):
    hf, _ = groups2
    tokens = random_tokens(hf_config := load_model(hf)[0], 1, 6)
    before = hf(tokens).logits
    with canonical_form(hf, hf_config):
        assert "forward" in hf.backbone.layers[0].mixer.__dict__
    assert all("forward" not in m.__dict__ for m in hf.modules())
    assert torch.equal(hf(tokens).logits, before)


def test_unsupported_module_is_named():
    hf = random_hf_model(make_config("tiny"), seed=1)
    hf.backbone.layers[1].mixer = nn.Identity()
    with pytest.raises(ModelError, match=r"unsupported module backbone\.layers\.1\.mixer .*Identity"):
        import_model(hf, "prefill", 4)


def test_non_float32_model_is_rejected():
    hf = random_hf_model(make_config("tiny"), seed=1).to(torch.float64)
    with pytest.raises(ModelError, match="float32"):
        import_model(hf, "prefill", 4)


@pytest.mark.parametrize("program,seq_len", [("verify", 4), ("prefill", 0)])
def test_bad_program_or_length(groups2, program, seq_len):
    with pytest.raises(InputError):
        import_model(groups2[0], program, seq_len)


def test_ir_holds_names_not_weights(groups2):
    hf, ref = groups2
    text = print_ir(import_model(hf, "prefill", 8).module)
    c = ref.config
    assert "dense_resource" not in text and "torch." not in text
    for name in load_model(hf)[1]:
        assert f'mamba.weight "{name}"' in text
    assert len(text) < 400 * (c.n_layer * 30 + 10)  # a few hundred bytes per op, no tensor data


def test_meta_skeleton_imports_without_weights():
    c = make_config("groups4_k2", n_layer=3)
    module = import_model(c, "decode").module
    names = [op.weight_name.data for op in module.walk() if op.name == "mamba.weight"]
    assert len(names) == len(set(names)) == 1 + 3 * 9 + 1  # embeddings, 9 per layer, norm_f; tied head


def test_unknown_torch_op_names_op_and_location(groups2):
    hf, ref = groups2
    text = torch_mlir_text(export_program(hf, ref.config, "prefill", 4), "prefill")
    text = text.replace('"torch.aten.silu"', '"torch.aten.tanh"', 1)
    with pytest.raises(ModelError, match=r"cannot raise torch\.aten\.tanh at backbone\.layers\.0\.mixer/silu"):
        raise_to_mamba(parse_torch_module(text))


def test_unsupported_torch_op_attribute_is_an_error(groups2):
    hf, ref = groups2
    text = torch_mlir_text(export_program(hf, ref.config, "prefill", 4), "prefill")
    # softplus(x, beta=1, threshold=20): make beta 2 by rewriting its constant's first use
    head, sep, tail = text.partition('"torch.aten.softplus"(')
    args = tail.split(")", 1)[0].split(", ")
    beta = args[1]
    text = head.replace(f"{beta} = \"torch.constant.int\"() <{{value = 1 : i64}}>",
                        f"{beta} = \"torch.constant.int\"() <{{value = 2 : i64}}>") + sep + tail
    with pytest.raises(ModelError, match="softplus with beta 1"):
        raise_to_mamba(parse_torch_module(text))
