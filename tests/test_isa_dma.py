"""isa.dma.DmaModel, the DMA queue and DDR channel of the engine and the scheduler, against a cycle-by-cycle count.

The reference steps through cycles one at a time, from the rules of
docs/ACCELERATOR.md alone: a transfer starts when it is issued and the channel
is free, holds the channel for its cycles, completes `dma_latency` later, and
holds a queue entry from issue to completion.
"""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from fastmamba.compiler.backend import schedule
from fastmamba.isa.dma import DmaModel
from fastmamba.simulator import engine


def _reference_room(issued: list[tuple[int, int]], t: int, n: int, depth: int) -> int:
    """The first cycle c >= t at which fewer than depth - n + 1 issued transfers are still in the queue."""
    c = t
    while sum(1 for at, done in issued if at <= c < done) + n > depth:
        c += 1
    return c


@pytest.mark.parametrize("seed", range(5))
def test_model_agrees_with_a_cycle_by_cycle_count(seed):
    rng = random.Random(seed)
    depth, latency = rng.choice((1, 2, 4)), rng.choice((0, 3, 17))
    model = DmaModel(SimpleNamespace(dma_queue_depth=depth, dma_latency=latency))
    issued: list[tuple[int, int]] = []  # (issue cycle, completion cycle)
    busy_until = 0
    t = 0
    for _ in range(60):
        n = rng.randint(1, depth)
        t += rng.choice((0, 0, 1, 5, 30))
        want = _reference_room(issued, t, n, depth)
        assert model.room_at(t, n) == want
        t = want
        for _ in range(n):
            cycles = rng.choice((1, 2, 8, 40))
            start = t
            while start < busy_until:  # the channel serves transfers in issue order
                start += 1
            busy_until = start + cycles
            transfer = model.issue(t, cycles)
            assert (transfer.start, transfer.cycles, transfer.complete) == (start, cycles, busy_until + latency)
            issued.append((t, transfer.complete))


def test_more_transfers_than_the_queue_holds_is_refused():
    model = DmaModel(SimpleNamespace(dma_queue_depth=2, dma_latency=1))
    with pytest.raises(ValueError, match="do not fit a DMA queue of 2"):
        model.room_at(0, 3)


def test_the_engine_and_the_scheduler_use_this_model():
    assert engine.DmaModel is DmaModel and schedule.DmaModel is DmaModel
