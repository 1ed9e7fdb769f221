"""compiler.pipeline.PassDriver's costs kept off the compile's hot path: the cyclic garbage collector runs rarely
while passes run, and its thresholds come back afterwards, also when a pass fails; the IR verified after every
pass (opt) or once after the last (compile)."""

from __future__ import annotations

import gc
from dataclasses import dataclass
from pathlib import Path

import pytest
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from fastmamba.compiler.pipeline import (COLLECT_EVERY, DriverOptions, PassDriver, collecting_rarely, parse_ir,
                                         parse_passes, print_ir)
from fastmamba.isa.errors import InternalError

SMALL_IR = """builtin.module {
  func.func @prefill(%x: tensor<2x16xf32>) -> tensor<2x16xf32> {
    %0 = mamba.silu %x : tensor<2x16xf32>
    func.return %0 : tensor<2x16xf32>
  }
}
"""


@dataclass(frozen=True)
class _Record(ModulePass):
    """Records the collector's thresholds while it runs; `fail`: then raises (a bug in a pass)."""

    name = "record"
    seen: list
    fail: bool = False

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        self.seen.append(gc.get_threshold())
        if self.fail:
            raise RuntimeError("boom")


@pytest.mark.parametrize("fail", [False, True])
def test_passes_run_with_rare_collections_and_the_thresholds_come_back(fail):
    before = gc.get_threshold()
    seen: list = []
    driver = PassDriver([_Record(seen, fail)])
    if fail:
        with pytest.raises(InternalError, match="pass record failed"):
            driver.run(parse_ir(SMALL_IR))
    else:
        driver.run(parse_ir(SMALL_IR))
    assert seen == [(max(before[0], COLLECT_EVERY), *before[1:])]
    assert gc.get_threshold() == before


def test_collecting_rarely_nests_and_keeps_a_higher_threshold():
    before = gc.get_threshold()
    try:
        gc.set_threshold(2 * COLLECT_EVERY, 7, 9)
        with collecting_rarely():
            assert gc.get_threshold() == (2 * COLLECT_EVERY, 7, 9)
        gc.set_threshold(700, 7, 9)
        with collecting_rarely():
            with collecting_rarely():
                assert gc.get_threshold() == (COLLECT_EVERY, 7, 9)
            assert gc.get_threshold() == (COLLECT_EVERY, 7, 9)
        assert gc.get_threshold() == (700, 7, 9)
    finally:
        gc.set_threshold(*before)


@dataclass(frozen=True)
class _Break(ModulePass):
    """A pass with a bug: the function loses its terminator."""

    name = "break"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        next(iter(op.body.block.ops)).body.block.last_op.detach()


@dataclass(frozen=True)
class _Crash(ModulePass):
    """A pass with a bug: it raises."""

    name = "crash"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        raise KeyError("no such site")


@pytest.mark.parametrize("verify_each", [True, False])
def test_verify_each_or_once_after_the_last_pass(verify_each, monkeypatch):
    """verify_each (opt's default): the IR is verified after every pass and a pass that breaks it is named;
    without (compile's default): once, after the last pass, and the failure says how to find the pass."""
    module, broken = parse_ir(SMALL_IR), parse_ir(SMALL_IR)
    calls = []
    verify = ModuleOp.verify
    monkeypatch.setattr(ModuleOp, "verify", lambda self: calls.append(1) or verify(self))
    seen: list = []
    options = DriverOptions(verify_each=verify_each)
    PassDriver([_Record(seen), _Record(seen), _Record(seen)], options).run(module)
    assert len(calls) == (3 if verify_each else 1)
    with pytest.raises(InternalError) as info:
        PassDriver([_Break(), _Record(seen)], options).run(broken)
    assert str(info.value).startswith("IR does not verify after pass break: " if verify_each else
                                      "IR does not verify after the last pass, record (--verify-each names the "
                                      "pass that broke it): ")


def test_the_reproducer_replays_the_passes_before_the_failing_one(tmp_path, monkeypatch):
    """Without a dump folder the driver keeps only its input: on a failure it runs the passes before the failing
    one again on that copy, and the reproducer is the IR they leave, the failing pass's input."""
    from fastmamba.compiler import diagnostics

    monkeypatch.setattr(diagnostics.tempfile, "tempdir", str(tmp_path))
    expected = parse_ir(SMALL_IR)
    PassDriver(parse_passes("set-target,insert-hadamard")).run(expected)
    for failing in (_Crash(), _Break()):  # (a pass that raises; one that leaves IR that does not verify)
        module = parse_ir(SMALL_IR)
        driver = PassDriver([*parse_passes("set-target,insert-hadamard"), failing],
                            DriverOptions(reproducer=True, verify_each=False))
        with pytest.raises(InternalError) as info:
            driver.run(module)
        repro = Path(info.value.reproducer)
        assert repro.read_text() == print_ir(expected) != SMALL_IR
        repro.unlink()


def test_a_run_copies_its_input_once(monkeypatch):
    copies = []
    clone = ModuleOp.clone
    monkeypatch.setattr(ModuleOp, "clone", lambda self, *a, **k: copies.append(1) or clone(self, *a, **k))
    PassDriver(parse_passes("set-target,insert-hadamard,dce"), DriverOptions(reproducer=True)).run(parse_ir(SMALL_IR))
    assert len(copies) == 1


@dataclass(frozen=True)
class _Frozen(ModulePass):
    """Records how many objects the collector leaves out (gc.freeze) while it runs."""

    name = "frozen"
    seen: list

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        self.seen.append(gc.get_freeze_count())


def test_each_pass_runs_with_what_exists_frozen_and_the_run_unfreezes_it(monkeypatch):
    module = parse_ir(SMALL_IR)
    seen: list = []
    assert gc.get_freeze_count() == 0
    PassDriver([_Frozen(seen), _Frozen(seen)]).run(module)
    assert len(seen) == 2 and 0 < seen[0] <= seen[1] and gc.get_freeze_count() == 0
    with pytest.raises(InternalError):  # unfrozen after a failure too
        PassDriver([_Frozen(seen), _Crash()]).run(module)
    assert gc.get_freeze_count() == 0
    gc.freeze()  # a caller's freeze: the driver neither freezes more nor unfreezes it
    try:
        # the driver's own calls, recorded (the freeze count itself can move by a few objects meanwhile)
        calls: list = []
        monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
        monkeypatch.setattr(gc, "unfreeze", lambda: calls.append("unfreeze"))
        seen[:] = []
        PassDriver([_Frozen(seen)]).run(module)
        monkeypatch.undo()
        assert calls == [] and len(seen) == 1 and seen[0] > 0 and gc.get_freeze_count() > 0
    finally:
        monkeypatch.undo()
        gc.unfreeze()
