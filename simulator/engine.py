"""The simulator's engine: issues bundles, keeps time, checks hazards, synchronizes.

Place in the flow: `simulator.runtime` hands it a program's bundles and a
`MachineState` (DDR image + on-chip buffer); the unit semantics
(`simulator.semantics.SEMANTICS`, one `UnitSemantics` per operation, see
`simulator.effects`) say what each operation reads, writes, costs and
computes.  The engine implements docs/ACCELERATOR.md's timing model:

- In-order issue: bundle i+1 issues no earlier than issue(i) + 1 + delay(i).
  A bundle issues as a whole, at the first cycle where all of these hold, in
  this order (a stall is counted against the first cause that holds it):
  its `ctl.wait` is satisfied (semaphore), every compute slot's unit is free
  (structural), the DMA queue has room for its LD/ST (dma_queue).
- A compute unit (LIN, CONV, SSM, VEC) runs one operation at a time: busy for
  the footprint's `occupancy`, results complete at issue + occupancy + latency.
- DMA (LD, ST): an operation holds a queue entry (`dma_queue_depth` of them,
  shared by LD and ST) from issue until it completes.  Transfers use one DDR
  channel in issue order: start at max(issue, channel free), hold it
  ceil(ddr_bytes / dma_bytes_per_cycle) cycles (per row with the target's
  `dma_row_bursts`: `isa.costs.transfer_cycles`), complete `dma_latency` later
  and then increment their semaphore (`sem` field; 0 = none).
- `ctl.wait sem, count` holds its bundle until semaphore `sem` >= count, then
  subtracts count.  If the DMA operations in flight cannot bring it there, no
  later bundle can issue either: a deadlock error.
- `ctl.halt` ends the program when every operation in flight has completed;
  the run's cycle count is max(halt's issue + 1, last completion).
- Functional effects are applied at issue (`execute`), in slot order.  That is
  the hardware's behaviour exactly when no operation touches bytes an
  operation still in flight (completion > now, same bundle included) writes
  (RAW) or reads (WAR), or writes what it writes (WAW); each such overlap is a
  `SimulationError` naming both operations' bundle, slot and text.

Semaphores and time belong to the engine; the semantics only see memory.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections import deque
from typing import Mapping, Sequence

from fastmamba.isa.formatting import format_instruction
from fastmamba.isa import costs
from fastmamba.isa.instructions import Bundle
from fastmamba.simulator.effects import MachineState, SimulationError
from fastmamba.simulator.semantics import SEMANTICS
from fastmamba.simulator.stats import DMA_UNITS, Stats

CTL_SLOT = "CTL"
WAIT_OP = "ctl.wait"
HALT_OP = "ctl.halt"
DMA_SEM_FIELD = "sem"
NO_SEMAPHORE = 0


def instruction_text(instr) -> str:
    """The assembly text of an operation, as error messages and traces quote it."""
    return format_instruction(instr)


def _fmt_range(r) -> str:
    return f"{r.space}[{r.start:#x}, {r.stop:#x})"


class _InFlight:
    """An issued operation whose results are not complete yet (`spans`: its ranges as `_fold` gives them)."""

    __slots__ = ("complete", "bundle", "slot", "instr", "reads", "writes", "spans")

    def __init__(self, complete, bundle, slot, instr, reads, writes, spans=None):
        self.complete = complete
        self.bundle = bundle
        self.slot = slot
        self.instr = instr
        self.reads = reads
        self.writes = writes
        self.spans = spans


def _find_hazard(reads, writes, inflight):
    """The first conflict of an operation's ranges with an in-flight one: (kind, other, mine, theirs) or None."""
    for other in inflight:
        for b in other.writes:
            bs, b0, b1 = b.space, b.start, b.stop
            for a in reads:
                if a.start < b1 and b0 < a.stop and a.space == bs:
                    return "RAW", other, a, b
            for a in writes:
                if a.start < b1 and b0 < a.stop and a.space == bs:
                    return "WAW", other, a, b
        if writes:
            for b in other.reads:
                bs, b0, b1 = b.space, b.start, b.stop
                for a in writes:
                    if a.start < b1 and b0 < a.stop and a.space == bs:
                        return "WAR", other, a, b
    return None


# Plain-int spans: a range of space number s becomes [s * 2^64 + start, s * 2^64 + stop), so that
# ranges of different spaces never overlap and two int comparisons do the work of the
# (space, start, stop) test.  Addresses outside [0, 2^64) cannot be folded; an operation with one
# makes the rest of the run use `_find_hazard` alone.
_SPACE_SHIFT = 64
_SPACE_NUMBER = {"buf": 0, "ddr": 1}


def _fold(ranges):
    """The ranges as (lo, hi) int pairs, or None if an address lies outside [0, 2^64)."""
    out = []
    for rng in ranges:
        start, stop = rng.start, rng.stop
        if not (0 <= start < 1 << _SPACE_SHIFT and 0 <= stop < 1 << _SPACE_SHIFT):
            return None
        number = _SPACE_NUMBER.get(rng.space)
        if number is None:
            number = _SPACE_NUMBER.setdefault(rng.space, len(_SPACE_NUMBER))
        offset = number << _SPACE_SHIFT
        out.append((offset + start, offset + stop))
    return tuple(out)


class _SpanIndex:
    """Int spans (lo, hi) of in-flight operations, sorted by lo, with the longest length ever added.

    `meets(a0, a1)`: some span has lo < a1 and a0 < hi (the engine's overlap test).  Only spans
    with lo in (a0 - longest, a1) can: a span starting at or before a0 - longest ends by a0.
    """

    __slots__ = ("items", "longest")

    def __init__(self):
        self.items: list[tuple[int, int, int]] = []  # (lo, hi, seq of the operation)
        self.longest = 0

    def add(self, lo: int, hi: int, seq: int) -> None:
        bisect.insort(self.items, (lo, hi, seq))
        if hi - lo > self.longest:
            self.longest = hi - lo

    def remove(self, lo: int, hi: int, seq: int) -> None:
        items = self.items
        del items[bisect.bisect_left(items, (lo, hi, seq))]

    def meets(self, a0: int, a1: int) -> bool:
        items = self.items
        i = bisect.bisect_left(items, (a1,)) - 1  # the last span with lo < a1
        floor = a0 - self.longest
        while i >= 0:
            lo, hi, _ = items[i]
            if lo <= floor:
                return False
            if hi > a0:
                return True
            i -= 1
        return False


class _InFlightSet:
    """The operations in flight, in issue order, with cheap expiry and a quick conflict test.

    `prune(now)` drops the operations complete at `now` (a heap of completion cycles).
    `hazard(reads, writes, spans)` returns what `_find_hazard` returns; it first proves the common
    "no conflict" case from sorted int spans of the in-flight reads and writes (`_SpanIndex`), and
    only when some range does meet one runs `_find_hazard` for the first conflict in issue order.
    """

    def __init__(self):
        self.live: dict[int, _InFlight] = {}  # by issue sequence number: insertion order is issue order
        self.expiry: list[tuple[int, int]] = []  # heap of (complete, seq)
        self.seq = 0
        self.reads = _SpanIndex()
        self.writes = _SpanIndex()
        self.exact_only = False  # set once an address could not be folded

    def __bool__(self) -> bool:
        return bool(self.live)

    def prune(self, now) -> None:
        expiry, live = self.expiry, self.live
        while expiry and expiry[0][0] <= now:
            seq = heapq.heappop(expiry)[1]
            entry = live.pop(seq)
            if entry.spans is not None and not self.exact_only:
                r, w = entry.spans
                for lo, hi in r:
                    self.reads.remove(lo, hi, seq)
                for lo, hi in w:
                    self.writes.remove(lo, hi, seq)

    def add(self, complete, bundle, slot, instr, reads, writes, spans) -> None:
        seq = self.seq
        self.seq += 1
        self.live[seq] = _InFlight(complete, bundle, slot, instr, reads, writes, spans)
        heapq.heappush(self.expiry, (complete, seq))
        if spans is not None and not self.exact_only:
            r, w = spans
            for lo, hi in r:
                self.reads.add(lo, hi, seq)
            for lo, hi in w:
                self.writes.add(lo, hi, seq)

    def spans(self, reads, writes):
        """(read spans, write spans) of a new operation, or None (then `hazard` scans exactly)."""
        if self.exact_only:
            return None
        r, w = _fold(reads), _fold(writes)
        if r is None or w is None:
            self.exact_only = True
            return None
        return r, w

    def hazard(self, reads, writes, spans):
        if spans is not None and not self.exact_only:
            r, w = spans
            written, read = self.writes, self.reads
            if not (any(written.meets(a0, a1) for a0, a1 in r)
                    or any(written.meets(a0, a1) or read.meets(a0, a1) for a0, a1 in w)):
                return None
        return _find_hazard(reads, writes, self.live.values())


_HAZARD_WORDS = {"RAW": ("reads", "still writes"), "WAR": ("writes", "still reads"), "WAW": ("writes", "still writes")}


class Engine:
    """Runs programs for one target with one set of unit semantics; optionally records a trace."""

    def __init__(self, target, semantics: Mapping | None = None, trace=None):
        if semantics is None:
            semantics = SEMANTICS
        self.target = target
        self.semantics = semantics
        self.trace = trace

    def run(self, bundles: Sequence[Bundle], state: MachineState) -> Stats:
        """Run `bundles` from bundle 0 to its `ctl.halt` on `state` (modified in place); return the counters."""
        target, semantics, trace = self.target, self.semantics, self.trace
        rate = float(target.dma_bytes_per_cycle)
        row_bursts = bool(getattr(target, "dma_row_bursts", 0))
        dma_latency = int(target.dma_latency)
        depth = int(target.dma_queue_depth)
        n_sems = int(target.semaphores)
        stats = Stats(clock_hz=float(target.clock_hz))
        busy, ops_per_unit, stalls = stats.busy, stats.ops_per_unit, stats.stalls

        sem_value = [0] * (n_sems + 1)
        sem_pending = [deque() for _ in range(n_sems + 1)]  # completion cycles, increasing
        dma_queue: deque[int] = deque()  # completion cycles of queued DMA ops, increasing
        unit_free: dict[str, int] = {}
        channel_free = 0
        last_complete = 0
        inflight = _InFlightSet()
        ready = 0  # earliest issue cycle of the next bundle
        n_ops = 0
        macs = 0

        def settle(sem: int, now: int) -> None:
            pend = sem_pending[sem]
            while pend and pend[0] <= now:
                pend.popleft()
                sem_value[sem] += 1

        def where(index: int, slot: str, instr) -> str:
            return f"bundle {index}, slot {slot}: `{instruction_text(instr)}`"

        for index, bundle in enumerate(bundles):
            now = ready
            ops = bundle.ops
            ctl = ops[-1] if ops and ops[-1].slot == CTL_SLOT else None

            # --- hold the bundle until it can issue as a whole ---
            if ctl is not None and ctl.op == WAIT_OP:
                sem, count = int(ctl["sem"]), int(ctl["count"])
                if not 1 <= sem <= n_sems:
                    raise SimulationError(f"{where(index, CTL_SLOT, ctl)}: semaphore {sem} outside 1..{n_sems}")
                settle(sem, now)
                short = count - sem_value[sem]
                if short > 0:
                    pend = sem_pending[sem]
                    if len(pend) < short:
                        raise SimulationError(
                            f"{where(index, CTL_SLOT, ctl)}: deadlock: semaphore {sem} is {sem_value[sem]} and only "
                            f"{len(pend)} operation(s) in flight will increment it, never reaching {count}")
                    satisfied = pend[short - 1]
                    stalls["semaphore"] += satisfied - now
                    now = satisfied
            n_dma = 0
            free_at = now
            for op in ops:
                slot = op.slot
                if slot in DMA_UNITS:
                    n_dma += 1
                elif slot != CTL_SLOT:
                    f = unit_free.get(slot, 0)
                    if f > free_at:
                        free_at = f
            stalls["structural"] += free_at - now
            now = free_at
            if n_dma:
                if n_dma > depth:
                    raise SimulationError(f"bundle {index}: issues {n_dma} DMA operations but the DMA queue holds {depth}")
                while dma_queue and dma_queue[0] <= now:
                    dma_queue.popleft()
                room = depth - n_dma  # at most this many may still be queued when the bundle issues
                if len(dma_queue) > room:
                    free_at = dma_queue[len(dma_queue) - room - 1]
                    stalls["dma_queue"] += free_at - now
                    now = free_at
                    while dma_queue and dma_queue[0] <= now:
                        dma_queue.popleft()

            # --- issue ---
            inflight.prune(now)
            for op in ops:
                slot = op.slot
                if slot == CTL_SLOT:
                    continue
                unit_sem = semantics.get(op.op)
                if unit_sem is None:
                    raise SimulationError(f"{where(index, slot, op)}: the simulator has no semantics for {op.op}")
                try:
                    fp = unit_sem.footprint(op, state, target)
                except SimulationError as exc:
                    raise SimulationError(f"{where(index, slot, op)}: {exc}") from None
                reads, writes = fp.reads, fp.writes
                spans = inflight.spans(reads, writes)
                hazard = inflight.hazard(reads, writes, spans) if inflight else None
                if hazard is not None:
                    kind, other, mine, theirs = hazard
                    mine_verb, their_verb = _HAZARD_WORDS[kind]
                    raise SimulationError(
                        f"{where(index, slot, op)}: {kind} hazard: {mine_verb} {_fmt_range(mine)} at cycle {now}, "
                        f"which `{instruction_text(other.instr)}` (bundle {other.bundle}, slot {other.slot}) "
                        f"{their_verb} ({_fmt_range(theirs)}) until cycle {other.complete}")
                try:
                    unit_sem.execute(op, state, target)
                except SimulationError as exc:
                    raise SimulationError(f"{where(index, slot, op)}: {exc}") from None

                if slot in DMA_UNITS:
                    signal = int(op.args.get(DMA_SEM_FIELD, NO_SEMAPHORE))
                    if not 0 <= signal <= n_sems:
                        raise SimulationError(f"{where(index, slot, op)}: semaphore {signal} outside 0..{n_sems}")
                    nbytes = fp.ddr_bytes
                    transfer = math.ceil(nbytes / rate) if not row_bursts else costs.transfer_cycles(op, target)
                    start = now if now > channel_free else channel_free
                    channel_free = start + transfer
                    complete = channel_free + dma_latency
                    dma_queue.append(complete)
                    if signal != NO_SEMAPHORE:
                        sem_pending[signal].append(complete)
                    busy[slot] += transfer
                    if slot == "LD":
                        stats.ddr_bytes_read += nbytes
                    else:
                        stats.ddr_bytes_written += nbytes
                    if trace is not None:
                        text = instruction_text(op)
                        args = {"bundle": index, "issue": now, "complete": complete, "bytes": nbytes}
                        trace.complete(slot, text, start, transfer, args)
                        trace.complete("DDR", f"{'read' if slot == 'LD' else 'write'} {nbytes} B", start, transfer,
                                       args)
                else:
                    occupancy = fp.occupancy
                    unit_free[slot] = now + occupancy
                    complete = now + occupancy + fp.latency
                    busy[slot] += occupancy
                    if trace is not None:
                        trace.complete(slot, instruction_text(op), now, occupancy,
                                       {"bundle": index, "issue": now, "complete": complete, "macs": fp.macs})
                ops_per_unit[slot] += 1
                n_ops += 1
                macs += fp.macs
                if complete > last_complete:
                    last_complete = complete
                if complete > now:
                    inflight.add(complete, index, slot, op, reads, writes, spans)

            if ctl is not None:
                n_ops += 1
                if ctl.op == WAIT_OP:
                    settle(sem, now)
                    sem_value[sem] -= count
                elif ctl.op == HALT_OP:
                    stats.cycles = max(now + 1, last_complete)
                    stats.bundles = index + 1
                    stats.ops = n_ops
                    stats.macs = macs
                    return stats
                else:
                    raise SimulationError(f"{where(index, CTL_SLOT, ctl)}: the simulator has no semantics for {ctl.op}")
            ready = now + 1 + bundle.delay

        if not len(bundles):
            raise SimulationError("the program has no bundles (it must end with a ctl.halt)")
        raise SimulationError(f"the program ran off its end after bundle {len(bundles) - 1} without a ctl.halt")


def simulate(bundles: Sequence[Bundle], state: MachineState, target, semantics: Mapping | None = None,
             trace=None) -> Stats:
    """Run one program on `state` (see `Engine.run`)."""
    return Engine(target, semantics, trace).run(bundles, state)
