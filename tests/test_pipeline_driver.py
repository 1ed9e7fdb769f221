"""compiler.pipeline.PassDriver's costs kept off the compile's hot path: the cyclic garbage collector runs rarely
while passes run, and its thresholds come back afterwards, also when a pass fails."""

from __future__ import annotations

import gc
from dataclasses import dataclass

import pytest
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from fastmamba.compiler.pipeline import COLLECT_EVERY, PassDriver, collecting_rarely, parse_ir
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
