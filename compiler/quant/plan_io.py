"""A QuantPlan as plain data (JSON) and back, exactly.

Place in the flow: lets a plan chosen once (from calibration ranges, compiler/quant/evaluate.py
build_plan) be stored next to a compiled program and read back by another process.  The dict
holds only str, int, float, bool, None, lists and dicts with str keys; every float is a Python
float, which json writes with enough digits to read back the same number, so
plan_from_dict(json.loads(json.dumps(plan_to_dict(plan)))) == plan, ranges included.

    {"format": 1, "nonlinear": "table", "fold_norms": true,
     "layers": [{"in_proj": {LinearQuant fields} | null, "out_proj": ..., "conv": {ConvQuant fields} | null,
                 "ssm": {SSMQuant fields} | null}, ...],
     "head": {LinearQuant fields} | null,
     "ranges": {site: {quantity: float}}}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from fastmamba.compiler.quant.golden import LayerPlan, QuantPlan
from fastmamba.compiler.quant.plan import ConvQuant, LinearQuant, SSMQuant

__all__ = ["FORMAT", "plan_to_dict", "plan_from_dict"]

FORMAT = 1
_UNITS = {"in_proj": LinearQuant, "out_proj": LinearQuant, "conv": ConvQuant, "ssm": SSMQuant}
_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def _unit_to_dict(unit: Any) -> dict[str, Any] | None:
    if unit is None:
        return None
    return {f.name: _TYPES[str(f.type)](getattr(unit, f.name)) for f in dataclasses.fields(unit)}  # numpy scalars too


def _unit_from_dict(cls: type, d: Any, where: str) -> Any:
    if d is None:
        return None
    if not isinstance(d, Mapping):
        raise ValueError(f"plan: {where} must be an object or null")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(names))
    missing = sorted(n for n, f in names.items() if n not in d and f.default is dataclasses.MISSING)
    if unknown or missing:
        raise ValueError(f"plan: {where}: unknown fields {unknown}, missing fields {missing}")
    kwargs = {}
    for name, value in d.items():
        want = _TYPES[str(names[name].type)]  # (the annotations are strings: `from __future__ import annotations`)
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise ValueError(f"plan: {where}.{name} must be {want.__name__}, got {value!r}")
        kwargs[name] = value
    return cls(**kwargs)


def plan_to_dict(plan: QuantPlan) -> dict[str, Any]:
    """The plan as JSON-able plain data (see the module docstring)."""
    return {
        "format": FORMAT,
        "nonlinear": str(plan.nonlinear),
        "fold_norms": bool(plan.fold_norms),
        "layers": [{name: _unit_to_dict(getattr(lp, name)) for name in _UNITS} for lp in plan.layers],
        "head": _unit_to_dict(plan.head),
        "ranges": {str(site): {str(q): float(v) for q, v in qs.items()} for site, qs in plan.ranges.items()},
    }


def plan_from_dict(d: Mapping[str, Any]) -> QuantPlan:
    """The plan plan_to_dict wrote; ValueError naming the field on a malformed dict."""
    if not isinstance(d, Mapping) or d.get("format") != FORMAT:
        raise ValueError(f"plan: not a plan of format {FORMAT}")
    layers = d.get("layers")
    if not isinstance(layers, list):
        raise ValueError("plan: layers must be a list")
    plans = []
    for i, layer in enumerate(layers):
        if not isinstance(layer, Mapping) or set(layer) != set(_UNITS):
            raise ValueError(f"plan: layers[{i}] must have exactly {', '.join(_UNITS)}")
        plans.append(LayerPlan(**{name: _unit_from_dict(cls, layer[name], f"layers[{i}].{name}") for name,
                                  cls in _UNITS.items()}))
    ranges = d.get("ranges", {})
    if not isinstance(ranges, Mapping) or not all(isinstance(qs, Mapping) for qs in ranges.values()):
        raise ValueError("plan: ranges must map sites to {quantity: number}")
    return QuantPlan(tuple(plans), nonlinear=str(d.get("nonlinear", "table")), fold_norms=bool(d.get("fold_norms",
                                                                                                     True)),
                     ranges={site: {q: float(v) for q, v in qs.items()} for site, qs in ranges.items()},
                     head=_unit_from_dict(LinearQuant, d.get("head"), "head"))
