"""compiler/quant/plan_io.py: a QuantPlan through JSON and back, exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fastmamba.compiler.checkpoint import load_model
from fastmamba.compiler.quant.evaluate import build_plan, calibrate
from fastmamba.compiler.quant.golden import GoldenMamba2, LayerPlan, QuantPlan
from fastmamba.compiler.quant.plan_io import plan_from_dict, plan_to_dict
from fastmamba.compiler.weights import NumpyWeights
from model_factory import make_config, random_hf_model


@pytest.fixture(scope="module")
def model():
    config, store = load_model(random_hf_model(make_config("tiny"), seed=5))
    tokens = np.random.default_rng(3).integers(0, config.vocab_size, 48)
    return config, NumpyWeights(store), tokens


def _json_round_trip(plan: QuantPlan) -> QuantPlan:
    return plan_from_dict(json.loads(json.dumps(plan_to_dict(plan))))


def test_a_real_plan_with_a_quantized_head_round_trips_exactly(model):
    config, store, tokens = model
    ranges = calibrate(config, store, tokens).ranges()
    for plan in (build_plan("fastmamba", config, store, ranges, head=True),
                 build_plan("w8a8_rtn", config, None, ranges, granularity="tensor", dynamic=True, nonlinear="exact")):
        back = _json_round_trip(plan)
        assert back == plan and back.ranges == plan.ranges  # (ranges are not part of ==)
        assert back.head == plan.head and back.layers[0].in_proj.out_scale == plan.layers[0].in_proj.out_scale
    plan = build_plan("fastmamba", config, store, ranges, head=True)
    assert plan.head is not None and plan.layers[0].ssm is not None
    a, _ = GoldenMamba2(config, store, plan).run(tokens[:8])
    b, _ = GoldenMamba2(config, store, _json_round_trip(plan)).run(tokens[:8])
    assert np.array_equal(a, b)


def test_a_float_plan_round_trips(model):
    config, _, _ = model
    plan = QuantPlan(tuple(LayerPlan() for _ in range(config.n_layer)), fold_norms=False)
    d = plan_to_dict(plan)
    assert d["head"] is None and d["layers"][0] == {"in_proj": None, "out_proj": None, "conv": None, "ssm": None}
    back = _json_round_trip(plan)
    assert back == plan and back.fold_norms is False and back.ranges == {}


def test_malformed_plans_are_value_errors(model):
    config, store, tokens = model
    d = plan_to_dict(build_plan("fastmamba", config, store, calibrate(config, store, tokens).ranges(), head=True))
    for change, message in ((lambda d: d.pop("format"), "format"),
                            (lambda d: d["layers"][0].pop("conv"), r"layers\[0\] must have"),
                            (lambda d: d["head"].pop("qmul"), "missing fields"),
                            (lambda d: d["head"].update(qmul="3"), r"head.qmul must be int"),
                            (lambda d: d["layers"][1]["ssm"].update(extra=1), "unknown fields")):
        bad = json.loads(json.dumps(d))
        change(bad)
        with pytest.raises(ValueError, match=message):
            plan_from_dict(bad)
