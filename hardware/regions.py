"""The byte ranges an operation touches, as RTL, derived from the instruction table's region functions.

Place in the flow: the control (`hardware.machine`) checks every issued
operation's ranges against the operations in flight (RAW, WAR, WAW hazards)
and against the memories' sizes, as docs/ACCELERATOR.md says.  What each op
touches is defined once, by `OpSpec.region_fn` in isa/instructions.py; this
module does not restate it.  `region_forms(op)` recovers, by evaluating the
region function on probe instructions, each region's shape as products of
fields: for every combination of the op's flag fields (enums and 1-bit
fields, which pick regions and element sizes), each region's space, base
field, access, alignment and `rows`, `row_bytes`, `stride` as
constant x field [x field] + offset (or, where no such form fits, an `Expr`
of `EXPRS`, checked against the region function on every probe).  `op_ranges` turns those forms into Amaranth
expressions over the decoded op (`hardware.decode.op_layout`):
span = [base, base + (rows - 1) * stride + row_bytes), as `Region.span`.
tests/test_hw_regions.py checks the forms against `Instruction.regions()`.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from functools import lru_cache

from typing import Callable

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value

from fastmamba.isa.instructions import OPS, Instruction

PROBES = 6
FLAG_PROBES = 24  # random instructions on which each flag field's values are tried
SPACES = ("buf", "ddr")


@dataclass(frozen=True)
class Form:
    """const * product of the named fields + offset."""

    const: int
    fields: tuple[str, ...]
    offset: int = 0

    def value(self, args) -> int:
        v = self.const
        for f in self.fields:
            v *= int(args[f])
        return v + self.offset


def wire(m: Module, value, name: str) -> Signal:
    """`value` as a named combinational Signal.  Amaranth's netlist emits an expression again at every place it
    is used (a shared subexpression is not shared), a Signal once: a value used more than once goes through here."""
    sig = Signal(Value.cast(value).shape(), name=name)
    m.d.comb += sig.eq(value)
    return sig


def _same(value, name: str):
    return value


def _max(a, b):
    return Mux(a > b, a, b) if isinstance(a, Value) or isinstance(b, Value) else max(a, b)


def _ssm_xbc_row_bytes(f: Callable, share: Callable = _same):
    """isa/instructions.py's ssm xbc row: 2 * max(h*p, b_off + G*n, c_off + G*n), G = ceil(h / max(1, hpg)).
    `share(value, name)` names a value used twice (`wire` in RTL)."""
    h, hpg, n = f("h"), f("hpg"), f("n")
    hpg = Mux(hpg == 0, 1, hpg) if isinstance(hpg, Value) else max(1, hpg)
    gn = share(((h + hpg - 1) // hpg) * n, "xbc_gn")
    return 2 * _max(share(_max(share(h * f("p"), "xbc_hp"), share(f("b_off") + gn, "xbc_b")), "xbc_max"),
                    share(f("c_off") + gn, "xbc_c"))


@dataclass(frozen=True)
class Expr:
    """A region quantity that is no product of fields, as a function of a field getter (ints or Amaranth
    values); `region_forms` checks it against the table's region function on every probe."""

    fn: Callable  # fn(field getter[, share(value, name)])

    def value(self, args) -> int:
        return int(self.fn(lambda name: int(args[name])))


# (op, region field, quantity) -> the quantity where no const * field [* field] + offset fits
EXPRS = {("ssm", "xbc", "row_bytes"): Expr(_ssm_xbc_row_bytes)}


@dataclass(frozen=True)
class RegionForm:
    space: str
    field: str
    access: str
    align: int
    rows: Form | Expr
    row_bytes: Form | Expr
    stride: Form | Expr


@lru_cache(maxsize=None)
def flag_fields(op: str) -> tuple[str, ...]:
    """Fields that change which regions an op has or their element sizes: the enums and 1-bit fields whose
    value changes the regions of a probe instruction (`vec`'s micro-op fields, which do not, are left out)."""
    spec = OPS[op]
    flags = [f.name for f in spec.fields if f.kind == "enum" or f.bits == 1]
    rng = random.Random(op)
    relevant = set()
    for _ in range(FLAG_PROBES):
        args: dict[str, int | float] = {}
        for f in spec.fields:
            if f.name in flags:
                args[f.name] = rng.choice(_flag_values(op, f.name))
            else:
                args[f.name] = 1.0 if f.kind == "f32" else rng.randrange(2, min(f.max, 1000))
        base = Instruction(op, args).regions()
        for name in flags:
            for value in _flag_values(op, name):
                if Instruction(op, {**args, name: value}).regions() != base:
                    relevant.add(name)
    return tuple(name for name in flags if name in relevant)


def _flag_values(op: str, name: str) -> range:
    f = OPS[op].field_map[name]
    return range(len(f.values)) if f.kind == "enum" else range(2)


def _fit(op: str, probes: list[dict], values: list[int], key: tuple[str, str] | None = None) -> Form | Expr:
    expr = EXPRS.get((op, *key)) if key else None
    if expr is not None:
        assert [expr.value(p) for p in probes] == values, f"{op}: EXPRS{key} disagrees with the table"
        return expr
    numeric = [f.name for f in OPS[op].fields if f.name not in flag_fields(op) and f.kind != "f32"]
    candidates = [()] + [(a,) for a in numeric] + list(itertools.combinations(numeric, 2))
    if len(set(values)) == 1:
        return Form(0, (), values[0])
    for fields in candidates[1:]:
        prods = [Form(1, fields).value(p) for p in probes]
        j = next((j for j in range(1, len(prods)) if prods[j] != prods[0]), None)
        if j is None or (values[j] - values[0]) % (prods[j] - prods[0]):
            continue
        const = (values[j] - values[0]) // (prods[j] - prods[0])
        form = Form(const, fields, values[0] - const * prods[0])
        if all(form.value(p) == v for p, v in zip(probes, values)):
            return form
    raise ValueError(f"{op}: region quantity {values} is not const * field [* field] + offset of the probes")


@lru_cache(maxsize=None)
def region_forms(op: str) -> tuple[tuple[tuple[int, ...], tuple[RegionForm, ...]], ...]:
    """For each combination of the flag fields' values (in `flag_fields` order), the op's region forms."""
    spec = OPS[op]
    flags = flag_fields(op)
    rng = random.Random(op)
    out = []
    for combo in itertools.product(*(_flag_values(op, f) for f in flags)):
        probes, regions = [], []
        for _ in range(PROBES):
            args: dict[str, int | float] = {}
            for f in spec.fields:
                if f.name in flags:
                    args[f.name] = combo[flags.index(f.name)]
                elif f.kind == "f32":
                    args[f.name] = 1.0
                else:
                    args[f.name] = rng.randrange(2, min(f.max, 1000))
            probes.append(args)
            regions.append(Instruction(op, args).regions())
        forms = []
        for i, first in enumerate(regions[0]):
            same = [r[i] for r in regions]
            assert all((r.space, r.field, r.access, r.align) == (first.space, first.field, first.access, first.align)
                       for r in same), op
            assert all(r.base == p[r.field] for r, p in zip(same, probes)), op
            forms.append(RegionForm(first.space, first.field, first.access, first.align,
                                    _fit(op, probes, [r.rows for r in same], (first.field, "rows")),
                                    _fit(op, probes, [r.row_bytes for r in same], (first.field, "row_bytes")),
                                    _fit(op, probes, [r.stride for r in same], (first.field, "stride"))))
        out.append((combo, tuple(forms)))
    return tuple(out)


def max_regions(ops) -> int:
    return max(len(forms) for op in ops for _, forms in region_forms(op))


def _expr(form: Form | Expr, view, share: Callable):
    if isinstance(form, Expr):
        return form.fn(lambda name: getattr(view, name), share)
    v = Const(form.const)
    for f in form.fields:
        v = v * getattr(view, f)
    return v + form.offset if form.offset >= 0 else v - (-form.offset)


def op_ranges(m: Module, op: str, view, count: int, prefix: str | None = None):
    """`count` range descriptors for the decoded op `view`: dicts of valid, space (0 buf, 1 ddr), lo, hi,
    read, write, align_ok (Signals driven in `m`, named `prefix`_r<i>_...); regions the op's flags leave out
    are invalid.

    The flag combinations select each region's base field, access and the factors of rows, row_bytes and
    stride (cheap multiplexers); the span's multiply-add is built once per region."""
    prefix = prefix or op.replace(".", "_")
    flags = flag_fields(op)
    combos = region_forms(op)
    widths = [len(getattr(view, name)) for name in flags]
    selector = Cat(*(getattr(view, name) for name in flags))

    def code(combo) -> int:  # the combination's value of `selector`
        return sum(v << sum(widths[:j]) for j, v in enumerate(combo))

    out = []
    for i in range(count):
        def share(value, name, i=i):
            return wire(m, value, f"{prefix}_r{i}_{name}")

        q = dict(valid=Const(0), space=Const(0), base=Const(0), read=Const(0), write=Const(0), align=Const(0),
                 rows=Const(0), row_bytes=Const(0), stride=Const(0))
        by_form: dict[RegionForm, list[int]] = {}  # the combinations giving each distinct form (vec: 192, few forms)
        for combo, forms in combos:
            if i < len(forms):
                by_form.setdefault(forms[i], []).append(code(combo))
        for j, (rf, codes) in enumerate(by_form.items()):
            cond = share(selector.matches(*codes), f"form{j}") if flags else Const(1)
            new = dict(valid=Const(1), space=Const(SPACES.index(rf.space)), base=getattr(view, rf.field),
                       read=Const(int(rf.access in ("r", "rw"))), write=Const(int(rf.access in ("w", "rw"))),
                       align=Const(rf.align - 1), rows=_expr(rf.rows, view, share),
                       row_bytes=_expr(rf.row_bytes, view, share), stride=_expr(rf.stride, view, share))
            q = {k: Mux(cond, new[k], q[k]) for k in q}
        q = {k: share(v, k) for k, v in q.items()}
        empty = (q["rows"] == 0) | (q["row_bytes"] == 0)
        hi = share(Mux(empty, q["base"], q["base"] + (q["rows"] - 1) * q["stride"] + q["row_bytes"]), "hi")
        out.append(dict(valid=q["valid"], space=q["space"], lo=q["base"], hi=hi, read=q["read"], write=q["write"],
                        align_ok=share((q["base"] & q["align"]) == 0, "align_ok")))
    return out
