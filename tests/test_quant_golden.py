"""The golden quantized model (compiler/quant/golden.py) against the IR after the whole quantization pipeline.

The IR of a tiny random model goes through fold-norm-weights, insert-hadamard,
calibrate, assign-scales, approximate-nonlinear and fuse-elementwise; the
interpreter's logits and states must equal the golden model's bit for bit, with
the golden plan built from the same calibration ranges (compiler/quant/evaluate.py
build_plan), with the LM head binary32 or W8A8 (assign-scales{head="int8"}); also with
the ranges of one import applied (apply_ranges) to a one-token import of the same
model.  Also: the float plan is close to the FP32 reference, the schemes are
ordered as expected, and outlier injection keeps the FP32 function.

What the interpreter-vs-golden comparison can and cannot see: both sides run
the same arithmetic code (compiler/quant/fixed.py for rounding, saturation,
the NLA and the units; compiler/quant/offline.py for the folded, rotated and
quantized weights), so it checks the passes' structure, i.e. which operations the
pipeline leaves, with which scales, shifts, rotation blocks and fused chains,
in which order, and that the printed IR carries all of it; it cannot see a bug
in that shared arithmetic.  Independent checks of the arithmetic: the
simulator's isa/numerics.py (written separately from fixed.py) against the
golden model (`fastmamba run --check`; tests/test_compile.py, tests/test_runner.py,
tests/test_units_*.py), the worked examples of docs/NUMERICS.md
(tests/test_numerics.py), and the constant image's weights against the
checkpoint by a second route (tests/test_image_check.py).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from fastmamba.compiler.checkpoint import load_model
from fastmamba.compiler.dialects import mamba_quant as mq
from fastmamba.compiler.frontend.importer import import_model
from fastmamba.compiler.interpreters.mamba_quant import run_function
from fastmamba.compiler.pipeline import parse_ir, print_ir, run_pipeline
from fastmamba.compiler.quant.evaluate import build_plan, calibrate, inject_outliers
from fastmamba.compiler.quant.golden import GoldenMamba2, LayerPlan, QuantPlan
from fastmamba.compiler.quant.plan import HEAD_SITE
from fastmamba.compiler.reference import Mamba2Reference
from fastmamba.compiler.weights import NumpyWeights
from model_factory import make_config, random_hf_model
from fastmamba.isa.errors import InputError
from fastmamba.passes.calibrate import RANGE_ATTR, apply_ranges, calibrate_module

LENGTH = 12


@pytest.fixture(scope="module")
def tiny():
    hf = random_hf_model(make_config("tiny"), seed=3)
    imported = import_model(hf, "prefill", LENGTH, all_logits=True)
    config, store = load_model(hf)
    rng = np.random.default_rng(7)
    tokens = rng.integers(0, config.vocab_size, 5 * LENGTH)
    return config, store, imported.module, tokens


@pytest.mark.parametrize("block,activations,head", [(0, "static", "f32"), (1, "static", "f32"), (0, "dynamic", "f32"),
                                                     (0, "static", "int8"), (1, "static", "int8")])
def test_interpreter_equals_golden_after_the_full_pipeline(tiny, block, activations, head):
    """Same arithmetic code on both sides (fixed.py, offline.py): this checks the pipeline's structure and
    scales, not the arithmetic (see the module docstring for the independent checks)."""
    config, store, module, tokens = tiny
    weights = NumpyWeights(store)
    rotate_head = " head=true" if head == "int8" else ""
    hadamard = f"insert-hadamard{{block={block}{rotate_head}}}," if block != 1 else ""
    ir = run_pipeline(module.clone(), f"set-target,fold-norm-weights,{hadamard}dce")
    ranges = calibrate_module(ir, weights, tokens, windows=4)
    run_pipeline(ir,
                 f'assign-scales{{activations="{activations}" head="{head}"}},approximate-nonlinear,fuse-elementwise')
    text = print_ir(ir)
    assert "mamba.linear" not in text and "mamba.ssm_scan" not in text and "mamba.conv1d" not in text
    assert "mamba.rmsnorm" not in text and "mamba.silu" not in text and 'nonlinear = "table"' in text
    assert ("mamba.lm_head" in text) == (head == "f32") and "mamba_quant.hadamard" not in text
    if head == "int8":  # the head: one VEC pass (the last residual add, rmsnorm, quantize) into one LIN op
        (ret,) = [o for o in ir.walk() if o.name == "func.return"]
        qhead = ret.operands[0].owner
        assert qhead.name == "mamba_quant.qlinear" and qhead.hlog2.value.data == (0 if block == 1 else 5)
        vec = qhead.operands[0].owner
        assert vec.name == "mamba_quant.vec" and vec.micro_ops[-1] == "rmsnorm"
        assert mq.int_type_name(vec.result.type.element_type) == ("i8" if block == 1 else "i16")
    ir = parse_ir(text)  # the printed IR carries every scale: it round-trips exactly
    ids = tokens[LENGTH:2 * LENGTH]
    logits, conv0, ssm0, conv1, ssm1 = run_function(ir, weights, "prefill", ids)

    scheme = "w8a8_rtn" if block == 1 else "fastmamba"
    dynamic = activations == "dynamic"
    assert ("qlinear_dynamic" in text) == dynamic
    plan = build_plan(scheme, config, None, ranges, dynamic=dynamic, head=head == "int8")
    assert (plan.head is not None) == (head == "int8")
    if block == 1:  # rtn has no conv/SSM quantization: use fastmamba's for those units
        full = build_plan("fastmamba", config, None, ranges)
        plan = QuantPlan(tuple(LayerPlan(a.in_proj, a.out_proj, b.conv, b.ssm) for a, b in zip(plan.layers,
                                                                                               full.layers)),
                         head=plan.head)
    golden = GoldenMamba2(config, store, plan)
    g_logits, g_states = golden.run(ids)
    assert np.array_equal(logits, g_logits)
    for (conv, ssm), (g_conv, g_ssm), q in zip(((conv0, ssm0), (conv1, ssm1)), g_states, plan.layers):
        assert np.array_equal(conv, np.ldexp(g_conv.T.astype(np.float32), -q.conv.fx))
        assert np.array_equal(ssm, np.ldexp(g_ssm.astype(np.float32), -q.ssm.fh))


def test_golden_changes_when_a_scale_changes(tiny):
    """The equality above is not vacuous: a requantization multiplier 1% off changes the logits."""
    config, store, _, tokens = tiny
    ranges = calibrate(config, store, tokens[:4 * LENGTH]).ranges()
    plan = build_plan("fastmamba", config, NumpyWeights(store), ranges)
    base, _ = GoldenMamba2(config, store, plan).run(tokens[:LENGTH])
    lp = plan.layers[0]
    off = lp.in_proj.__class__(**{**lp.in_proj.__dict__, "qmul": lp.in_proj.qmul * 99 // 100})
    plan2 = QuantPlan((LayerPlan(off, lp.out_proj, lp.conv, lp.ssm), *plan.layers[1:]))
    other, _ = GoldenMamba2(config, store, plan2).run(tokens[:LENGTH])
    assert not np.array_equal(base, other)
    # And so does the quantized head's.
    plan = build_plan("fastmamba", config, NumpyWeights(store), ranges, head=True)
    base, _ = GoldenMamba2(config, store, plan).run(tokens[:LENGTH])
    head = dataclasses.replace(plan.head, qmul=plan.head.qmul * 99 // 100)
    other, _ = GoldenMamba2(config, store, dataclasses.replace(plan, head=head)).run(tokens[:LENGTH])
    assert not np.array_equal(base, other)


def test_quantized_head_is_close_to_the_float_head(tiny):
    """W8A8 head logits within a few percent of the binary32 head's, the rest of the plan the same."""
    config, store, _, tokens = tiny
    ranges = calibrate(config, store, tokens[:4 * LENGTH]).ranges()
    assert {"x", "xr"} <= set(ranges[HEAD_SITE]) and ranges[HEAD_SITE]["xr"] < ranges[HEAD_SITE]["x"]
    ids = tokens[4 * LENGTH:5 * LENGTH]
    plan = build_plan("w8a8_hadamard_linear", config, None, ranges)
    assert plan.head is None
    f32_head, _ = GoldenMamba2(config, store, plan).run(ids)
    q_head, _ = GoldenMamba2(config, store, dataclasses.replace(plan, head=build_plan(
        "w8a8_hadamard_linear", config, None, ranges, head=True).head)).run(ids)
    assert plan.head is None and not np.array_equal(f32_head, q_head)
    assert np.abs(q_head - f32_head).max() < 0.05 * np.abs(f32_head).max()


def test_float_plan_matches_the_fp32_reference(tiny):
    config, store, _, tokens = tiny
    golden = GoldenMamba2(config, store, QuantPlan(tuple(LayerPlan() for _ in range(config.n_layer))))
    logits, _ = golden.prefill(torch.from_numpy(tokens[None, :3 * LENGTH]))
    ref, _ = Mamba2Reference(config, store).prefill(torch.from_numpy(tokens[None, :3 * LENGTH]))
    assert torch.abs(logits - ref).max() < 1e-4 * max(1.0, float(ref.abs().max()))


def test_state_carries_across_calls(tiny):
    config, store, _, tokens = tiny
    ranges = calibrate(config, store, tokens[:4 * LENGTH]).ranges()
    golden = GoldenMamba2(config, store, build_plan("fastmamba", config, NumpyWeights(store), ranges))
    whole, _ = golden.run(tokens[:2 * LENGTH])
    first, states = golden.run(tokens[:LENGTH])
    second, _ = golden.run(tokens[LENGTH:2 * LENGTH], states)
    assert np.array_equal(whole, np.concatenate([first, second]))


def test_injected_outliers_keep_the_fp32_function(tiny):
    config, store, _, tokens = tiny
    injected = inject_outliers(config, store, channels=2, factor=50.0)
    ids = torch.from_numpy(tokens[None, :LENGTH])
    a, _ = Mamba2Reference(config, store).prefill(ids)
    b, _ = Mamba2Reference(config, injected).prefill(ids)
    assert torch.abs(a - b).max() < 1e-4 * float(a.abs().max())
    recorder = calibrate(config, injected, tokens[:4 * LENGTH], fold_norms=False)
    ratios = recorder.outlier_ratios()
    assert all(r["before"] > 20 for r in ratios.values())  # the injected columns dominate every linear input
    assert all(r["after"] < r["before"] / 4 for r in ratios.values())  # and the rotation spreads them


def test_hadamard_beats_rtn_when_inputs_have_outlier_channels(tiny):
    """With injected outlier channels, rotated W8A8 logits stay much closer to FP32 than plain round to nearest."""
    config, store, _, tokens = tiny
    injected = inject_outliers(config, store, channels=2, factor=32.0)
    ranges = calibrate(config, injected, tokens[:4 * LENGTH], fold_norms=False).ranges()
    ids = tokens[4 * LENGTH:5 * LENGTH]
    ref, _ = GoldenMamba2(config, injected, QuantPlan(tuple(LayerPlan() for _ in range(config.n_layer)),
                                                      fold_norms=False)).run(ids)
    err = {}
    for scheme in ("w8a8_rtn", "w8a8_hadamard_linear"):
        plan = build_plan(scheme, config, NumpyWeights(injected), ranges, fold_norms=False)
        out, _ = GoldenMamba2(config, injected, plan).run(ids)
        err[scheme] = float(np.sqrt(np.mean((out - ref) ** 2)))
    assert err["w8a8_hadamard_linear"] < err["w8a8_rtn"] / 2  # (blocks of 32 and 64 here: 2.4x)


def test_fold_and_rotate_keep_the_fp32_model_within_1e_5(tiny):
    config, store, module, tokens = tiny
    weights = NumpyWeights(store)
    ids = tokens[:LENGTH]
    (before, *states) = run_function(module, weights, "prefill", ids)
    rotated = run_pipeline(module.clone(), "set-target,fold-norm-weights,insert-hadamard")
    text = print_ir(rotated)
    assert text.count("mamba_quant.hadamard") == 2 * config.n_layer
    assert text.count("mamba_quant.fill") == 2 * config.n_layer + 1
    (after, *states_after) = run_function(rotated, weights, "prefill", ids)
    assert np.abs(after - before).max() <= 1e-5 * np.abs(before).max()
    for s, t in zip(states, states_after):
        assert np.abs(s - t).max() <= 1e-5 * max(1.0, np.abs(s).max())


def _quant_attrs(module) -> list:
    """Every quantized op's name and scales (properties and attributes), in program order; shapes left out."""
    return [(o.name, sorted((k, str(v)) for k, v in {**o.properties, **o.attributes}.items()))
            for o in module.walk() if o.name.startswith("mamba_quant.")]


def test_ranges_applied_to_a_one_token_import_give_the_same_scales_and_the_golden_logits(tiny):
    """Calibrate the L=12 import, apply its ranges to the L=1 import: the same scales op for op, and the
    interpreter runs the L=1 program as the golden model does with the plan of those ranges."""
    config, store, module, tokens = tiny
    weights = NumpyWeights(store)
    hf = random_hf_model(make_config("tiny"), seed=3)
    one = import_model(hf, "prefill", 1, all_logits=True).module
    prepare = "set-target,fold-norm-weights,insert-hadamard{block=0 head=true},dce"
    quantize = 'assign-scales{head="int8"},approximate-nonlinear,fuse-elementwise'
    long_ir = run_pipeline(module.clone(), prepare)
    one_ir = run_pipeline(one, prepare)
    ranges = calibrate_module(long_ir, weights, tokens, windows=4)
    assert apply_ranges(one_ir, ranges) == 4 * config.n_layer + 1
    a = [o.attributes.get(RANGE_ATTR) for o in long_ir.walk() if RANGE_ATTR in o.attributes]
    b = [o.attributes.get(RANGE_ATTR) for o in one_ir.walk() if RANGE_ATTR in o.attributes]
    assert a == b and len(a) == 4 * config.n_layer + 1
    run_pipeline(long_ir, quantize)
    run_pipeline(one_ir, quantize)
    long_attrs, one_attrs = _quant_attrs(long_ir), _quant_attrs(one_ir)
    names = [name for name, _ in long_attrs]
    assert names.count("mamba_quant.qlinear") == 2 * config.n_layer + 1
    assert names.count("mamba_quant.qssm_scan") == config.n_layer
    assert "mamba_quant.vec" in names and "mamba_quant.qconv1d" in names
    assert long_attrs == one_attrs

    plan = build_plan("fastmamba", config, None, ranges, head=True)
    golden = GoldenMamba2(config, store, plan)
    for t in tokens[:3]:  # (the prefill program starts from zero states)
        logits, conv0, ssm0, conv1, ssm1 = run_function(one_ir, weights, "prefill", np.array([t]))
        g_logits, g_states = golden.run(np.array([t]))
        assert logits.shape == (1, config.vocab_size) and np.array_equal(logits, g_logits)
        for (conv, ssm), (g_conv, g_ssm), q in zip(((conv0, ssm0), (conv1, ssm1)), g_states, plan.layers):
            assert np.array_equal(conv, np.ldexp(g_conv.T.astype(np.float32), -q.conv.fx))
            assert np.array_equal(ssm, np.ldexp(g_ssm.astype(np.float32), -q.ssm.fh))


def test_apply_ranges_needs_every_site(tiny):
    config, store, module, tokens = tiny
    ir = run_pipeline(module.clone(), "fold-norm-weights")
    ranges = calibrate_module(ir.clone(), NumpyWeights(store), tokens, windows=1)
    del ranges[HEAD_SITE]
    with pytest.raises(InputError, match="no ranges for site.*lm_head"):
        apply_ranges(ir, ranges)
    with pytest.raises(InputError, match="no function @decode"):
        apply_ranges(ir, ranges, function="decode")


def test_accelerator_scheme_is_fastmamba_with_the_int8_head(tiny):
    """`fastmamba eval --schemes accelerator` measures what the compiled binary runs: fastmamba + W8A8 head."""
    from fastmamba.compiler.quant.evaluate import quant_scheme_builders

    config, store, _, tokens = tiny
    builders = quant_scheme_builders(tokens[:4 * LENGTH])
    ids = torch.from_numpy(tokens[None, 4 * LENGTH:5 * LENGTH])
    acc, _ = builders["accelerator"](config, store)(ids)
    fm, _ = builders["fastmamba"](config, store)(ids)
    ranges = calibrate(config, store, tokens[:4 * LENGTH]).ranges()
    plan = build_plan("fastmamba", config, NumpyWeights(store), ranges, head=True)
    want, _ = GoldenMamba2(config, store, plan).prefill(ids)
    assert torch.equal(acc, want) and not torch.equal(acc, fm)
