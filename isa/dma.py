"""The DMA queue and the DDR channel, written once: when a transfer may issue, starts and completes.

Place in the flow: `isa/`, beside `isa.costs` (whose `transfer_cycles` gives
a transfer's channel time).  The simulator's engine times every LD/ST with a
`DmaModel` and the compiler's VLIW scheduler (compiler/backend/schedule.py)
plans with one, so the two agree by construction (docs/ACCELERATOR.md,
"Issue and timing"):

- a DMA operation holds one of the target's `dma_queue_depth` queue entries
  (shared by LD and ST) from issue until it completes; a bundle whose
  transfers do not fit waits (`room_at`);
- transfers use one DDR channel in issue order: a transfer issued at t starts
  at max(t, channel free), holds the channel for its transfer cycles and
  completes `dma_latency` cycles after that (`issue`).

Transfers complete in issue order (the channel serves them in turn, all with
the same latency), so the completion cycles form a sorted list and the
queue's fill at any cycle is a bisection.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass


@dataclass(frozen=True)
class Transfer:
    """One transfer's timing: it holds the channel [start, start + cycles) and completes at `complete`."""

    start: int
    cycles: int
    complete: int


class DmaModel:
    """The DMA queue and the DDR channel of one target, from cycle 0 with nothing issued.

    Transfers must be issued in issue order (nondecreasing `t`); `room_at` may be asked about any cycle.
    """

    def __init__(self, target):
        self.depth = int(target.dma_queue_depth)
        self.latency = int(target.dma_latency)
        self.channel_free = 0  # the first cycle the channel is free
        self.completions: list[int] = []  # of the issued transfers, in issue order (so increasing)

    def queued_at(self, t: int) -> int:
        """Transfers holding a queue entry at cycle t (issued, complete after t)."""
        return len(self.completions) - bisect_right(self.completions, t)

    def room_at(self, t: int, n: int) -> int:
        """The first cycle >= t at which `n` more transfers fit in the queue (1 <= n <= the depth)."""
        if not 1 <= n <= self.depth:
            raise ValueError(f"{n} transfers at once do not fit a DMA queue of {self.depth}")
        if self.queued_at(t) + n <= self.depth:
            return t
        # the queue holds at most depth - n older transfers once the one before them has completed
        return self.completions[len(self.completions) - (self.depth - n) - 1]

    def issue(self, t: int, cycles: int) -> Transfer:
        """Issue at cycle t (with room in the queue) a transfer that holds the channel `cycles` cycles
        (`isa.costs.transfer_cycles`): when it starts and completes."""
        start = max(t, self.channel_free)
        self.channel_free = start + cycles
        complete = self.channel_free + self.latency
        self.completions.append(complete)
        return Transfer(start, cycles, complete)
