"""The design space of `fastmamba explore`: a SPACE.toml file read and checked, its points enumerated or sampled.

Place in the flow: the first step of an exploration, before Ray starts: every mistake in the file (bad TOML, an
unknown parameter, an empty range, a constraint naming nothing known, a budget no point meets) is an InputError
here, one line.  A space names Target parameters (isa/target.py) and the values each may take; a point is one
value per parameter, applied over the base preset.  Whether a point is a valid Target is the trial's business
(a bad value is a failed trial with its reason); constraints on the resource model's estimate
(hardware/resource_model.py) or on the target's parameters drop points before any trial runs.

    base = "vc709"                      # the preset the points override (default vc709)
    [parameters]
    lin_mac_trees = [32, 48, 64]        # a list of values
    buffer_bytes = { min = 1048576, max = 4194304, step = 1048576 }   # a range, both ends included
    hadamard_max_block = { min = 64, max = 256, scale = "pow2" }      # the powers of two in [min, max]
    [search]
    constraints = ["lut <= 433200", "dsp <= 3600"]   # NAME OP NUMBER: a resource or a target parameter
    objective = "prefill_tokens_per_s"               # what the bayes searcher maximizes (a result column)
"""

from __future__ import annotations

import itertools
import math
import operator
import random
import re
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from fastmamba.isa.errors import InputError
from fastmamba.isa.target import PRESETS, Target, target_from_dict

__all__ = ["RESOURCES", "OBJECTIVES", "Constraint", "Space", "load_space", "parse_space", "resources"]

# Result column -> the resource model's name (hardware/resource_model.py's MODELED).
RESOURCES = {"lut": "LUT", "ff": "FF", "carry4": "CARRY4", "dsp": "DSP48E1", "ramb36": "RAMB36", "ramb18": "RAMB18"}
OBJECTIVES = ("prefill_tokens_per_s", "decode_tokens_per_s", "prefill_tokens_per_s_per_dsp",
              "decode_tokens_per_s_per_lut")
_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq}
_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|==|<|>)\s*([-+0-9.eE_]+)\s*$")
TUNABLE = tuple(f.name for f in fields(Target) if f.name != "name")
MAX_POINTS = 20_000  # a grid larger than this is refused (use --searcher random); the feasibility scan samples
_KEYS = {"base", "parameters", "search"}
_SEARCH_KEYS = {"constraints", "objective"}


def resources(target: Target, data: dict | None = None) -> dict[str, dict[str, float]]:
    """The resource model's estimate for `target`, per unit and "total", with the result columns' names."""
    from fastmamba.hardware.resource_model import predict

    return {unit: {col: round(counts[name], 1) for col, name in RESOURCES.items()}
            for unit, counts in predict(target, data).items()}


@dataclass(frozen=True)
class Constraint:
    """`name op bound`: `name` a resource column (the model's total) or a Target parameter or property."""

    name: str
    op: str
    bound: float

    def __str__(self) -> str:
        return f"{self.name} {self.op} {self.bound:g}"

    def value(self, target: Target, total: dict[str, float]) -> float:
        return total[self.name] if self.name in RESOURCES else float(getattr(target, self.name))

    def holds(self, target: Target, total: dict[str, float]) -> bool:
        return bool(_OPS[self.op](self.value(target, total), self.bound))


def _constraint(text, where: str) -> Constraint:
    m = _CONSTRAINT.match(text) if isinstance(text, str) else None
    if m is None:
        raise InputError(f"{where}: constraint {text!r} is not NAME OP NUMBER (OP one of {', '.join(_OPS)})")
    name, op, number = m.groups()
    known = name in RESOURCES or name in TUNABLE or isinstance(getattr(Target, name, None), property)
    if not known:
        raise InputError(f"{where}: constraint {text!r} names {name!r}, neither a resource "
                         f"({', '.join(RESOURCES)}) nor a target parameter")
    try:
        bound = float(number)
    except ValueError:
        raise InputError(f"{where}: constraint {text!r}: {number!r} is not a number") from None
    return Constraint(name, op, bound)


def _values(name: str, spec, where: str) -> tuple:
    """The values of parameter `name` a space entry gives (a list, or a table min/max/step or scale = "pow2")."""
    what = f"{where}: parameter {name}"
    if isinstance(spec, list):
        values = spec
    elif isinstance(spec, dict):
        unknown = sorted(set(spec) - {"min", "max", "step", "scale", "values"})
        if unknown:
            raise InputError(f"{what}: unknown key(s) {', '.join(unknown)} (min, max, step, scale, values)")
        if "values" in spec:
            return _values(name, spec["values"], where)
        if "min" not in spec or "max" not in spec:
            raise InputError(f"{what}: a range needs min and max (or give a list of values)")
        low, high = spec["min"], spec["max"]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
            raise InputError(f"{what}: min and max must be numbers")
        scale = spec.get("scale", "linear")
        if scale == "pow2":
            if "step" in spec:
                raise InputError(f"{what}: scale = \"pow2\" takes no step")
            values = [1 << k for k in range(0, 64) if low <= 1 << k <= high]
        elif scale == "linear":
            step = spec.get("step", 1)
            if isinstance(step, bool) or not isinstance(step, (int, float)) or not step > 0:
                raise InputError(f"{what}: step must be a positive number, got {step!r}")
            count = math.floor((high - low) / step + 1e-9) + 1 if high >= low else 0
            if count > MAX_POINTS:
                raise InputError(f"{what}: the range holds {count} values, more than {MAX_POINTS}")
            values = [low + i * step for i in range(count)]
            if all(isinstance(v, int) for v in (low, step)):
                values = [int(v) for v in values]
        else:
            raise InputError(f"{what}: scale must be \"linear\" or \"pow2\", got {scale!r}")
    else:
        raise InputError(f"{what}: give a list of values or a table {{ min, max, step }}")
    if not values:
        raise InputError(f"{what}: empty range (no value to try)")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise InputError(f"{what}: values must be numbers, got {v!r}")
    return tuple(dict.fromkeys(values))  # (duplicates once, order kept)


@dataclass(frozen=True)
class Space:
    """A checked space: the base preset, each parameter's values, the constraints and the bayes objective."""

    base: str
    parameters: dict[str, tuple]
    constraints: tuple[Constraint, ...] = ()
    objective: str = "prefill_tokens_per_s"
    source: str = "space"

    @property
    def size(self) -> int:
        return math.prod(len(v) for v in self.parameters.values())

    def target(self, point: dict) -> Target:
        """The Target of `point` (InputError naming a bad value)."""
        name = "explore-" + "-".join(f"{v:g}" for v in point.values()) if point else self.base
        return target_from_dict({**point, "name": re.sub(r"[^A-Za-z0-9_-]", "_", name)[:120]}, PRESETS[self.base])

    def excluded(self, point: dict, data: dict | None = None) -> str | None:
        """Why `point` is left out (a constraint it breaks, on the resource model's estimate), or None: it is a
        trial (also when its target is invalid: the trial records that reason)."""
        if not self.constraints:
            return None
        try:
            target = self.target(point)
        except InputError:
            return None
        total = resources(target, data)["total"]
        broken = [f"{c.name} {c.value(target, total):g} breaks {c}" for c in self.constraints
                  if not c.holds(target, total)]
        return "; ".join(broken) or None

    def grid(self) -> list[dict]:
        """Every point, in order (the last parameter varies fastest)."""
        if self.size > MAX_POINTS:
            raise InputError(f"{self.source}: the grid has {self.size} points, more than {MAX_POINTS}; use "
                             f"--searcher random with --samples N")
        names = list(self.parameters)
        return [dict(zip(names, values)) for values in itertools.product(*self.parameters.values())]

    def sample(self, count: int, seed: int) -> list[dict]:
        """Up to `count` distinct points drawn at random (seeded), in the order drawn."""
        rng = random.Random(seed)
        if self.size <= max(4 * count, 1000):
            grid = self.grid()
            return rng.sample(grid, min(count, len(grid)))
        seen: dict[tuple, dict] = {}
        for _ in range(100 * count):
            point = {k: rng.choice(v) for k, v in self.parameters.items()}
            seen.setdefault(tuple(point.values()), point)
            if len(seen) == count:
                break
        return list(seen.values())

    def feasible(self, points: list[dict], data: dict | None = None) -> tuple[list[dict], dict[str, str]]:
        """`points` split into those that run and those the constraints drop (point key -> why); InputError when
        every point is dropped (the budget no point meets)."""
        keep, dropped = [], {}
        if self.constraints and data is None:
            from fastmamba.hardware.resource_model import load

            data = load()  # (once, not per point)
        for point in points:
            why = self.excluded(point, data)
            if why is None:
                keep.append(point)
            else:
                dropped[repr(point)] = why
        if points and not keep:
            example = next(iter(dropped.values()))
            raise InputError(f"{self.source}: no point of the space meets the constraints "
                             f"({', '.join(map(str, self.constraints))}); e.g. {example}")
        return keep, dropped

    def check_satisfiable(self, data: dict | None = None, seed: int = 0) -> None:
        """InputError unless some point meets the constraints (every point of a space up to MAX_POINTS points,
        else MAX_POINTS sampled ones)."""
        if self.constraints:
            self.feasible(self.grid() if self.size <= MAX_POINTS else self.sample(MAX_POINTS, seed), data)


def parse_space(text: str, source: str = "space") -> Space:
    """The Space a SPACE.toml's text describes (`source`: its name in errors)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{source} is not valid TOML: {str(exc).splitlines()[0]}") from None
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise InputError(f"{source}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_KEYS))})")
    base = raw.get("base", "vc709")
    if base not in PRESETS:
        raise InputError(f"{source}: unknown base preset {base!r} (known: {', '.join(PRESETS)})")
    params = raw.get("parameters")
    if not isinstance(params, dict) or not params:
        raise InputError(f"{source}: no [parameters] table naming the target parameters to vary")
    bad = sorted(set(params) - set(TUNABLE))
    if bad:
        raise InputError(f"{source}: unknown target parameter(s) {', '.join(bad)} (known: {', '.join(TUNABLE)})")
    values = {name: _values(name, spec, source) for name, spec in params.items()}
    search = raw.get("search", {})
    if not isinstance(search, dict):
        raise InputError(f"{source}: [search] must be a table")
    unknown = sorted(set(search) - _SEARCH_KEYS)
    if unknown:
        raise InputError(f"{source}: unknown key(s) in [search]: {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(_SEARCH_KEYS))})")
    constraints = search.get("constraints", [])
    if not isinstance(constraints, list):
        raise InputError(f"{source}: [search] constraints must be a list of strings such as \"lut <= 433200\"")
    objective = search.get("objective", OBJECTIVES[0])
    if objective not in OBJECTIVES:
        raise InputError(f"{source}: objective {objective!r} is not one of {', '.join(OBJECTIVES)}")
    return Space(base, values, tuple(_constraint(c, source) for c in constraints), objective, source)


def load_space(path: str | Path) -> Space:
    """The Space in the file at `path`; a missing or unreadable file is an InputError."""
    try:
        text = Path(path).read_bytes().decode()
    except FileNotFoundError:
        raise InputError(f"space file not found: {path}") from None
    except UnicodeDecodeError:
        raise InputError(f"space file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise InputError(f"cannot read space file {path}: {exc.strerror}") from None
    return parse_space(text, f"space file {path}")
