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
  and then increment their semaphore (`sem` field; 0 = none).  The queue and
  the channel are `isa.dma.DmaModel`, the one the compiler's scheduler plans with.
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
`Engine.run` takes each bundle through the steps of `_Run`: `hold` (the
first cycle it can issue), `issue` (hazard checks, effects, timing of its
compute and DMA operations), `control` (its wait or halt).
"""

from __future__ import annotations

import bisect
import heapq
from collections import deque
from typing import Mapping, Sequence

from fastmamba.isa import costs
from fastmamba.isa.dma import DmaModel
from fastmamba.isa.formatting import format_instruction
from fastmamba.isa.instructions import Bundle
from fastmamba.simulator.effects import Footprint, MachineState, SimulationError
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


def _where(index: int, slot: str, instr) -> str:
    return f"bundle {index}, slot {slot}: `{instruction_text(instr)}`"


class _Semaphores:
    """The semaphores' values and, per semaphore, the completion cycles of the transfers that will signal it."""

    def __init__(self, count: int):
        self.count = count
        self.value = [0] * (count + 1)
        self.pending = [deque() for _ in range(count + 1)]  # completion cycles, increasing

    def settle(self, sem: int, now: int) -> None:
        """Count the signals of the transfers complete by `now`."""
        pend = self.pending[sem]
        while pend and pend[0] <= now:
            pend.popleft()
            self.value[sem] += 1

    def satisfied_at(self, where: str, sem: int, count: int, now: int) -> int:
        """The first cycle >= now at which semaphore `sem` is at least `count` (a deadlock if never)."""
        if not 1 <= sem <= self.count:
            raise SimulationError(f"{where}: semaphore {sem} outside 1..{self.count}")
        self.settle(sem, now)
        short = count - self.value[sem]
        if short <= 0:
            return now
        pend = self.pending[sem]
        if len(pend) < short:
            raise SimulationError(
                f"{where}: deadlock: semaphore {sem} is {self.value[sem]} and only {len(pend)} operation(s) "
                f"in flight will increment it, never reaching {count}")
        return pend[short - 1]

    def take(self, sem: int, count: int, now: int) -> None:
        """A satisfied wait at `now` subtracts its count."""
        self.settle(sem, now)
        self.value[sem] -= count


class _Run:
    """One run of a program: the clock's view of units, DMA, semaphores and operations in flight, and the counters.

    Per bundle: `hold` (the first cycle it can issue as a whole), `issue` (its compute and DMA operations),
    `control` (its ctl op; True at the halt).
    """

    def __init__(self, target, semantics: Mapping, trace, state: MachineState):
        self.target, self.semantics, self.trace, self.state = target, semantics, trace, state
        self.stats = Stats(clock_hz=float(target.clock_hz))
        self.sems = _Semaphores(int(target.semaphores))
        self.dma = DmaModel(target)
        self.row_bursts = bool(getattr(target, "dma_row_bursts", 0))
        self.unit_free: dict[str, int] = {}
        self.inflight = _InFlightSet()
        self.last_complete = 0
        self.n_ops = 0
        self.macs = 0

    # --- hold the bundle until it can issue as a whole (a stall counts against the first cause) ---
    def hold(self, index: int, bundle: Bundle, ready: int) -> int:
        ctl = _control_op(bundle)
        now = ready
        if ctl is not None and ctl.op == WAIT_OP:
            now = self._stall("semaphore", index, now, self.sems.satisfied_at(
                _where(index, CTL_SLOT, ctl), int(ctl["sem"]), int(ctl["count"]), now))
        now = self._stall("structural", index, now, self._units_free(bundle.ops, now))
        n_dma = sum(1 for op in bundle.ops if op.slot in DMA_UNITS)
        if n_dma:
            if n_dma > self.dma.depth:
                raise SimulationError(f"bundle {index}: issues {n_dma} DMA operations but the DMA queue holds "
                                      f"{self.dma.depth}")
            now = self._stall("dma_queue", index, now, self.dma.room_at(now, n_dma))
        return now

    def _stall(self, cause: str, index: int, now: int, until: int) -> int:
        self.stats.stalls[cause] += until - now
        if self.trace is not None:
            self.trace.stall(cause, index, now, until)
        return until

    def _units_free(self, ops, now: int) -> int:
        """The first cycle >= now at which every compute unit the bundle uses is free."""
        free_at = now
        for op in ops:
            if op.slot not in DMA_UNITS and op.slot != CTL_SLOT:
                free_at = max(free_at, self.unit_free.get(op.slot, 0))
        return free_at

    # --- issue the compute and DMA operations, in slot order ---
    def issue(self, index: int, bundle: Bundle, now: int) -> None:
        self.inflight.prune(now)
        for k, op in enumerate(bundle.ops):
            if op.slot != CTL_SLOT:
                self._issue_op(index, op, now, bundle.ops, k)

    def _issue_op(self, index: int, op, now: int, ops=(), k: int = 0) -> None:
        """Issue `op`, operation `k` of bundle `index` (`ops`: the bundle's operations, for the trace)."""
        slot = op.slot
        unit_sem = self.semantics.get(op.op)
        if unit_sem is None:
            raise SimulationError(f"{_where(index, slot, op)}: the simulator has no semantics for {op.op}")
        try:
            fp = unit_sem.footprint(op, self.state, self.target)
        except SimulationError as exc:
            raise SimulationError(f"{_where(index, slot, op)}: {exc}") from None
        spans = self.inflight.spans(fp.reads, fp.writes)
        self._check_hazards(index, op, fp, spans, now)
        try:
            unit_sem.execute(op, self.state, self.target)
        except SimulationError as exc:
            raise SimulationError(f"{_where(index, slot, op)}: {exc}") from None
        if slot in DMA_UNITS:
            complete = self._time_dma(index, op, fp, now, ops, k)
        else:
            complete = self._time_compute(index, op, fp, now, ops, k)
        self.stats.ops_per_unit[slot] += 1
        self.n_ops += 1
        self.macs += fp.macs
        self.last_complete = max(self.last_complete, complete)
        if complete > now:
            self.inflight.add(complete, index, slot, op, fp.reads, fp.writes, spans)

    def _check_hazards(self, index: int, op, fp: Footprint, spans, now: int) -> None:
        hazard = self.inflight.hazard(fp.reads, fp.writes, spans) if self.inflight else None
        if hazard is None:
            return
        kind, other, mine, theirs = hazard
        mine_verb, their_verb = _HAZARD_WORDS[kind]
        raise SimulationError(
            f"{_where(index, op.slot, op)}: {kind} hazard: {mine_verb} {_fmt_range(mine)} at cycle {now}, "
            f"which `{instruction_text(other.instr)}` (bundle {other.bundle}, slot {other.slot}) "
            f"{their_verb} ({_fmt_range(theirs)}) until cycle {other.complete}")

    def _time_dma(self, index: int, op, fp: Footprint, now: int, ops=(), k: int = 0) -> int:
        """Queue the transfer on the DDR channel and schedule its semaphore signal; its completion cycle."""
        slot, n_sems = op.slot, self.sems.count
        signal = int(op.args.get(DMA_SEM_FIELD, NO_SEMAPHORE))
        if not 0 <= signal <= n_sems:
            raise SimulationError(f"{_where(index, slot, op)}: semaphore {signal} outside 0..{n_sems}")
        nbytes = fp.ddr_bytes
        cycles = costs.transfer_cycles(op, self.target) if self.row_bursts else costs.dma_cycles(nbytes, self.target)
        transfer = self.dma.issue(now, cycles)
        if signal != NO_SEMAPHORE:
            self.sems.pending[signal].append(transfer.complete)
        self.stats.busy[slot] += transfer.cycles
        if slot == "LD":
            self.stats.ddr_bytes_read += nbytes
        else:
            self.stats.ddr_bytes_written += nbytes
        if self.trace is not None:
            self.trace.operation(index, ops or (op,), k, instruction_text(op), transfer.start, transfer.cycles, now,
                                 transfer.complete, bytes=nbytes)
        return transfer.complete

    def _time_compute(self, index: int, op, fp: Footprint, now: int, ops=(), k: int = 0) -> int:
        """Occupy the op's unit; its completion cycle."""
        slot = op.slot
        self.unit_free[slot] = now + fp.occupancy
        complete = now + fp.occupancy + fp.latency
        self.stats.busy[slot] += fp.occupancy
        if self.trace is not None:
            self.trace.operation(index, ops or (op,), k, instruction_text(op), now, fp.occupancy, now, complete,
                                 macs=fp.macs)
        return complete

    # --- the bundle's ctl op ---
    def control(self, index: int, bundle: Bundle, now: int) -> bool:
        """Apply the bundle's ctl op at `now`; True when it is the halt (the run is over)."""
        ctl = _control_op(bundle)
        if ctl is None:
            return False
        self.n_ops += 1
        if ctl.op == WAIT_OP:
            self.sems.take(int(ctl["sem"]), int(ctl["count"]), now)
            return False
        if ctl.op == HALT_OP:
            stats = self.stats
            stats.cycles = max(now + 1, self.last_complete)
            stats.bundles = index + 1
            stats.ops = self.n_ops
            stats.macs = self.macs
            return True
        raise SimulationError(f"{_where(index, CTL_SLOT, ctl)}: the simulator has no semantics for {ctl.op}")


def _control_op(bundle: Bundle):
    """The bundle's ctl op (the last in slot order), or None."""
    ops = bundle.ops
    return ops[-1] if ops and ops[-1].slot == CTL_SLOT else None


class Engine:
    """Runs programs for one target with one set of unit semantics; optionally records a trace."""

    def __init__(self, target, semantics: Mapping | None = None, trace=None):
        self.target = target
        self.semantics = SEMANTICS if semantics is None else semantics
        self.trace = trace

    def run(self, bundles: Sequence[Bundle], state: MachineState) -> Stats:
        """Run `bundles` from bundle 0 to its `ctl.halt` on `state` (modified in place); return the counters."""
        trace = self.trace
        run = _Run(self.target, self.semantics, trace, state)
        try:
            return self._run(run, bundles, trace)
        except SimulationError as exc:
            if trace is not None:  # the trace keeps what ran up to the failing bundle
                trace.error = str(exc)
            raise

    @staticmethod
    def _run(run: "_Run", bundles: Sequence[Bundle], trace) -> Stats:
        ready = 0  # earliest issue cycle of the next bundle
        for index, bundle in enumerate(bundles):
            now = run.hold(index, bundle, ready)
            if trace is not None:
                trace.issue(index, ready, now)
            run.issue(index, bundle, now)
            if run.control(index, bundle, now):
                if trace is not None:
                    trace.finish(run.stats.cycles)
                return run.stats
            ready = now + 1 + bundle.delay
        if not len(bundles):
            raise SimulationError("the program has no bundles (it must end with a ctl.halt)")
        raise SimulationError(f"the program ran off its end after bundle {len(bundles) - 1} without a ctl.halt")


def simulate(bundles: Sequence[Bundle], state: MachineState, target, semantics: Mapping | None = None,
             trace=None) -> Stats:
    """Run one program on `state` (see `Engine.run`)."""
    return Engine(target, semantics, trace).run(bundles, state)
