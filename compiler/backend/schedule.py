"""VLIW scheduling of a straight-line instruction sequence: bundles, delays, DMA semaphores and waits.

Place in the flow: the algorithm behind passes/schedule_vliw.py (which only
moves `accel` IR in and out).  Input: instructions in program order (no
`ctl` ops; LD/ST semaphores are reassigned).  Output: a `Schedule` of
`isa.instructions.Bundle`s ending with `ctl.halt` whose meaning equals the
sequence's, run with no hazard on the machine of docs/ACCELERATOR.md, fast.

Three phases:
1. **List scheduling** (`_ListScheduler`): the dependence graph
   (compiler.backend.depgraph), priorities by critical path (the longest
   occupancy + latency chain to the end along true dependences), bundle by
   bundle the highest-priority ready operation per free slot, with the
   target's units timed by isa.costs and the DDR channel and DMA queue by
   isa.dma.DmaModel (the simulator's engine times transfers with the same
   model).  An operation is ready once every predecessor sits in an earlier
   bundle; its earliest cycle is when they complete.
   Event-driven: each bundle issues at the first cycle where some ready
   operation can (operands complete, unit free, room in the DMA queue), and
   the ready operations wait per slot in heaps (by operand completion, then
   by priority), so a bundle costs a few heap operations per slot however
   long the program.  Loads thus issue as early as their buffer allows and
   overlap compute.  `lookahead` (when > 0) keeps an operation from passing
   more than that many unscheduled operations of the program order.
2. **Synchronization** (`_synchronize`): compute completion is static, DMA
   completion is not.  Each LD/ST with a successor is synchronized before its
   first successor's bundle (a RAW reader, a WAR overwriter of what a store
   reads, a WAW writer): the DMA operations first needed by the same bundle
   share a semaphore and that bundle carries `ctl.wait sem, count` for all of
   them.  Semaphores are reused once waited for; if all `target.semaphores`
   are taken, a new group shares the semaphore of the group needed soonest
   and the first bundle needing either waits for both.  Several semaphores
   first needed by one bundle take extra wait-only bundles before it (a
   bundle has one CTL slot).  Correctness rests only on these waits.
3. **Timing** (`_retime`): the final bundle order is timed on the model and
   each bundle's `delay` set so that the next one issues exactly when its
   compute operands are complete and its units free.  Every modelled stall
   is thus written as a delay; on the hardware a wait or a full DMA queue can
   only stall longer, which delays every later bundle alike, so static
   compute distances never shrink.

Every phase is near-linear in the operations and edges (heaps, bisection,
no scan of all pending operations per bundle): a whole-model program of
20,000 operations schedules in seconds (benchmarks/bench_schedule.py).

`sequential(instrs, target)` is the reference schedule: one operation per
bundle, each DMA followed by a wait for it, each compute op by a delay until
it completes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from heapq import heappop, heappush
from typing import Sequence

import networkx as nx

from fastmamba.compiler.backend.depgraph import dependence_graph
from fastmamba.isa import costs
from fastmamba.isa.dma import DmaModel
from fastmamba.isa.errors import FastmambaError
from fastmamba.isa.instructions import BUNDLE_DELAY_BITS, SLOTS, Bundle, Instruction

DMA_SLOTS = costs.DMA_SLOTS
SEM_FIELD = "sem"
NO_SEMAPHORE = 0
WAIT, HALT = "ctl.wait", "ctl.halt"


class ScheduleError(FastmambaError):
    """A sequence the scheduler cannot schedule (control ops in it, a target too small)."""


@dataclass(frozen=True)
class Schedule:
    """Bundles ending with ctl.halt; `sources[b][k]`: the input index of bundle b's op k (None for ctl ops)."""

    bundles: tuple[Bundle, ...]
    sources: tuple[tuple[int | None, ...], ...]
    cycles: int  # modelled cycle count (DMA as fast as the target says)


@dataclass
class _Slotted:
    """A bundle under construction: input ops by index, an optional wait, its modelled issue cycle."""

    members: list[int]
    wait: tuple[int, int] | None = None
    time: int = 0


def _with_sem(instr: Instruction, sem: int) -> Instruction:
    if instr.slot not in DMA_SLOTS or instr[SEM_FIELD] == sem:
        return instr
    return Instruction(instr.op, {**instr.args, SEM_FIELD: sem})


def _check_input(instrs: Sequence[Instruction], target) -> None:
    for index, instr in enumerate(instrs):
        if instr.slot == "CTL":
            raise ScheduleError(f"op {index} ({instr.op}): the scheduler places ctl ops itself; give it none")
    if target.dma_queue_depth < 1 or target.semaphores < 1:
        raise ScheduleError("the target needs a DMA queue and at least one semaphore")


def _issue_dma(dma: DmaModel, instr: Instruction, t: int, target) -> int:
    """Issue a DMA operation on the model at t; the cycle it completes."""
    return dma.issue(t, costs.occupancy(instr, target)).complete


def _issue_order(instrs: Sequence[Instruction], members) -> list[int]:
    """A bundle's ops in slot order: the order the machine issues them (its LD before its ST on the channel)."""
    return sorted(members, key=lambda n: SLOTS.index(instrs[n].slot))


def _priorities(graph: nx.DiGraph, durations: Sequence[int]) -> list[int]:
    """Each node's critical path: its duration plus the longest chain of durations after it along the flow
    of data, true dependences only (O(V + E)).  Anti- and output dependences order ops but pass no data:
    through a ring of reused buffers, or the disjoint column blocks of one pitched buffer (whose spans
    overlap), they would chain every tile to all later ones and rank tiles by that chain, not by what
    waits for their results."""
    prio = [0] * len(durations)
    succ = graph.succ
    for node in range(len(durations) - 1, -1, -1):  # edges go forward in program order
        prio[node] = durations[node] + max((prio[s] for s, e in succ[node].items() if "RAW" in e["kinds"]),
                                           default=0)
    return prio


class _SlotQueue:
    """The ready operations of one slot: those whose operands are still being computed (a heap by the cycle
    they complete) and those available now (a heap by priority, highest first, then program order)."""

    __slots__ = ("waiting", "available")

    def __init__(self) -> None:
        self.waiting: list[tuple[int, int]] = []  # (operands complete, node)
        self.available: list[tuple[int, int]] = []  # (-priority, node)

    def first_data(self, lower: int) -> int | None:
        """The first cycle >= lower at which some operation has its operands; None if none is ready."""
        if self.available:
            return lower
        if self.waiting:
            return max(lower, self.waiting[0][0])
        return None

    def advance(self, t: int, prio: Sequence[int]) -> None:
        """Make the operations whose operands are complete by `t` available."""
        waiting, available = self.waiting, self.available
        while waiting and waiting[0][0] <= t:
            n = heappop(waiting)[1]
            heappush(available, (-prio[n], n))


def _better_soon(queue: _SlotQueue, t: int, hold: int, prio: Sequence[int]) -> int | None:
    """When an operation of higher priority than the best available one gets its operands within `hold`
    cycles of t: the cycle it does (the unit waits for it rather than start a long op of lower priority)."""
    if hold <= 0 or not queue.available:
        return None
    best, limit, waiting = -queue.available[0][0], t + hold, queue.waiting
    found, stack = None, [0] if waiting else []
    while stack:  # the heap's entries with data <= limit: prune each subtree whose root is later
        i = stack.pop()
        d, n = waiting[i]
        if d > limit:
            continue
        if prio[n] > best and (found is None or d < found):
            found = d
        stack.extend(c for c in (2 * i + 1, 2 * i + 2) if c < len(waiting))
    return found


class _ListScheduler:
    """Event-driven list scheduling: each bundle issues at the first cycle where some ready operation can.

    Per bundle the work is a few heap operations per slot: the next issue cycle is the least over the
    slots of (first operands complete, unit free / DMA queue room) (`next_cycle`), each slot offers its
    highest-priority available operation and LD and ST, in priority order, share the DMA queue's room
    (`take`); the taken operations are timed (`place`) and their successors made ready (`release`).
    """

    def __init__(self, instrs: Sequence[Instruction], graph: nx.DiGraph, target, lookahead: int,
                 durations: Sequence[int], hold: int):
        self.instrs, self.target, self.lookahead, self.durations, self.hold = instrs, target, lookahead, durations, hold
        self.prio = _priorities(graph, durations)
        n_nodes = len(instrs)
        self.succ, self.pred = graph.succ, graph.pred
        self.missing = [len(self.pred[n]) for n in range(n_nodes)]
        self.queues = {s: _SlotQueue() for s in dict.fromkeys(i.slot for i in instrs)}
        self.finish = [0] * n_nodes
        self.scheduled = [False] * n_nodes
        self.unit_free: dict[str, int] = defaultdict(int)
        self.dma = DmaModel(target)
        self.deferred: list[int] = []  # ready ops beyond the lookahead window (a heap by program order)
        self.oldest = 0  # the first unscheduled op of the program order
        self.bundles: list[_Slotted] = []

    def run(self) -> list[_Slotted]:
        for n in range(len(self.instrs)):
            if self.missing[n] == 0:
                self._make_ready(n)
        remaining, t_prev = len(self.instrs), -1
        while remaining:
            t = self._next_cycle(t_prev + 1)
            taken = self._take(t)
            t_prev = t
            if not taken:  # every free unit holds for a better operation a few cycles away
                continue
            members = _issue_order(self.instrs, taken)
            self._place(members, t)
            self._release(members)
            remaining -= len(members)
        return self.bundles

    def _make_ready(self, n: int) -> None:
        """All of `n`'s predecessors are placed: queue it by when its operands are complete (or defer it)."""
        if self.lookahead > 0 and n >= self.oldest + self.lookahead:
            heappush(self.deferred, n)
            return
        data = max((self.finish[p] for p in self.pred[n]), default=0)
        heappush(self.queues[self.instrs[n].slot].waiting, (data, n))

    def _next_cycle(self, lower: int) -> int:
        """The first cycle >= lower at which some slot has a ready operation with its operands and its unit."""
        t = None
        for slot, queue in self.queues.items():
            first = queue.first_data(lower)
            if first is None:
                continue
            at = self.dma.room_at(first, 1) if slot in DMA_SLOTS else max(first, self.unit_free[slot])
            if t is None or at < t:
                t = at
        assert t is not None, "some operation is always ready"
        return t

    def _take(self, t: int) -> list[int]:
        """The operations that issue at t: each free slot's best, the DMA ones while the queue has room."""
        candidates = []
        for slot, queue in self.queues.items():
            queue.advance(t, self.prio)
            if queue.available and (slot in DMA_SLOTS or (self.unit_free[slot] <= t
                                                          and _better_soon(queue, t, self.hold, self.prio) is None)):
                candidates.append(queue.available[0])  # (-priority, node): its best
        taken = []
        n_dma = 0
        for _, n in sorted(candidates):
            if self.instrs[n].slot in DMA_SLOTS:
                if n_dma + 1 > self.target.dma_queue_depth or self.dma.room_at(t, n_dma + 1) > t:
                    continue
                n_dma += 1
            heappop(self.queues[self.instrs[n].slot].available)
            taken.append(n)
        return taken

    def _place(self, members: list[int], t: int) -> None:
        """A bundle of `members` (slot order) at t: when each completes, and its units' and the channel's time."""
        for n in members:
            instr = self.instrs[n]
            if instr.slot in DMA_SLOTS:
                self.finish[n] = _issue_dma(self.dma, instr, t, self.target)
            else:
                self.unit_free[instr.slot] = t + costs.occupancy(instr, self.target)
                self.finish[n] = t + self.durations[n]
        self.bundles.append(_Slotted(members, time=t))

    def _release(self, members: list[int]) -> None:
        """Mark `members` placed; make ready the successors they were the last predecessors of."""
        for n in members:
            self.scheduled[n] = True
        for n in members:
            for s in self.succ[n]:
                self.missing[s] -= 1
                if self.missing[s] == 0:
                    self._make_ready(s)
        if self.lookahead > 0:
            while self.oldest < len(self.instrs) and self.scheduled[self.oldest]:
                self.oldest += 1
            while self.deferred and self.deferred[0] < self.oldest + self.lookahead:
                self._make_ready(heappop(self.deferred))


def _list_schedule(instrs: Sequence[Instruction], graph: nx.DiGraph, target, lookahead: int,
                   durations: Sequence[int], hold: int = 0) -> list[_Slotted]:
    """The bundles of list scheduling (`_ListScheduler`), each with its members and modelled issue cycle."""
    return _ListScheduler(instrs, graph, target, lookahead, durations, hold).run()


def _synchronize(instrs: Sequence[Instruction], graph: nx.DiGraph, bundles: list[_Slotted],
                 target) -> tuple[list[_Slotted], dict[int, int]]:
    """Insert waits; return the bundles (with wait-only ones added) and each DMA op's semaphore."""
    where = {n: b for b, slotted in enumerate(bundles) for n in slotted.members}
    succ = graph.succ
    first_user = {n: min(where[s] for s in succ[n]) for n in graph.nodes if instrs[n].slot in DMA_SLOTS and succ[n]}
    users_at: dict[int, list[int]] = defaultdict(list)  # bundle -> the DMA ops it is the first user of
    for n, b in first_user.items():
        users_at[b].append(n)
    free = list(range(NO_SEMAPHORE + 1, target.semaphores + 1))  # a heap: heappop gives the lowest
    group_sem: dict[int, int] = {}  # first-user bundle -> semaphore of the group now filling
    group_order: list[int] = []  # the first-user bundles of group_sem, a heap (stale entries skipped)
    sem_groups: dict[int, list[int]] = defaultdict(list)  # semaphore -> its first-user bundles in group_sem
    pending: dict[int, list[int]] = {}  # semaphore -> unsynchronized ops signalling it
    sem_of: dict[int, int] = {}
    waited: set[int] = set()  # DMA ops some wait has covered
    out: list[_Slotted] = []

    def wait_for(sem: int) -> tuple[int, int]:
        ops = pending.pop(sem)
        waited.update(ops)
        for user in sem_groups.pop(sem, ()):
            del group_sem[user]
        heappush(free, sem)
        return (sem, len(ops))

    def soonest_group() -> int:
        while group_order[0] not in group_sem:
            heappop(group_order)
        return group_order[0]

    for b, slotted in enumerate(bundles):
        needed = sorted({sem_of[n] for n in users_at.get(b, ()) if n not in waited})
        for sem in needed[:-1]:
            out.append(_Slotted([], wait_for(sem), slotted.time))
        if needed:
            slotted.wait = wait_for(needed[-1])
        for n in slotted.members:
            if n not in first_user:
                continue
            user = first_user[n]
            sem = group_sem.get(user)
            if sem is None:
                # all taken: share the semaphore of the group needed soonest; the first bundle needing
                # any op of a semaphore waits for all of them (all issued in earlier bundles)
                sem = heappop(free) if free else group_sem[soonest_group()]
                group_sem[user] = sem
                heappush(group_order, user)
                sem_groups[sem].append(user)
            pending.setdefault(sem, []).append(n)
            sem_of[n] = sem
        out.append(slotted)
    assert not pending, "every DMA op with a successor is waited for before it"
    return out, sem_of


def _retime(instrs: Sequence[Instruction], graph: nx.DiGraph, bundles: list[_Slotted], sem_of: dict[int, int],
            target, durations: Sequence[int]) -> tuple[list[int], int]:
    """Each bundle's delay so that none stalls on the model; and the modelled cycle count."""
    unit_free: dict[str, int] = defaultdict(int)
    finish: dict[int, int] = {}
    sem_done: dict[int, list[int]] = defaultdict(list)
    dma = DmaModel(target)
    pred = graph.pred
    is_dma = [i.slot in DMA_SLOTS for i in instrs]
    times: list[int] = []
    t_prev = -1
    for slotted in bundles:
        t = t_prev + 1
        if slotted.wait is not None:
            sem, count = slotted.wait
            done = sorted(sem_done[sem])
            t = max(t, done[count - 1])
            sem_done[sem] = done[count:]
        n_dma = 0
        for n in slotted.members:
            for p in pred[n]:
                if not is_dma[p]:
                    t = max(t, finish[p])
            if is_dma[n]:
                n_dma += 1
            else:
                t = max(t, unit_free[instrs[n].slot])
        if n_dma:
            t = dma.room_at(t, n_dma)
        for n in slotted.members:
            instr = instrs[n]
            if is_dma[n]:
                finish[n] = _issue_dma(dma, instr, t, target)
                if n in sem_of:
                    sem_done[sem_of[n]].append(finish[n])
            else:
                unit_free[instr.slot] = t + costs.occupancy(instr, target)
                finish[n] = t + durations[n]
        times.append(t)
        t_prev = t
    # the halt issues right after the last bundle
    halt_time = t_prev + 1
    times.append(halt_time)
    cycles = max([halt_time + 1, *finish.values()])
    delays = [times[b + 1] - times[b] - 1 for b in range(len(bundles))]
    return delays, cycles


def _bundle(instrs: Sequence[Instruction], slotted: _Slotted, sem_of: dict[int, int], delay: int) -> Bundle:
    if delay >= 1 << BUNDLE_DELAY_BITS:
        raise ScheduleError(f"a delay of {delay} cycles does not fit the bundle's {BUNDLE_DELAY_BITS}-bit field")
    ops = [_with_sem(instrs[n], sem_of.get(n, NO_SEMAPHORE)) for n in slotted.members]
    if slotted.wait is not None:
        ops.append(Instruction(WAIT, {"sem": slotted.wait[0], "count": slotted.wait[1]}))
    return Bundle(tuple(ops), delay)


def _phases(instrs: list[Instruction], target, lookahead: int, access: Sequence[tuple] | None,
            hold: int | None) -> tuple[list[_Slotted], dict[int, int], list[int], int]:
    """The three phases: the bundles (wait-only ones included), each DMA op's semaphore, each bundle's delay
    and the modelled cycle count."""
    if hold is None:
        hold = max(target.lin_latency, target.conv_latency, target.ssm_latency, target.vec_latency)
    _check_input(instrs, target)
    graph = dependence_graph(instrs, access)
    durations = [costs.duration(i, target) for i in instrs]
    slotted = _list_schedule(instrs, graph, target, lookahead, durations, hold)
    slotted, sem_of = _synchronize(instrs, graph, slotted, target)
    delays, cycles = _retime(instrs, graph, slotted, sem_of, target, durations)
    return slotted, sem_of, delays, cycles


def schedule(instrs: Sequence[Instruction], target, lookahead: int = 0, access: Sequence[tuple] | None = None,
             hold: int | None = None) -> Schedule:
    """Bundles for `instrs` (program order, no ctl ops) on `target`, ending with ctl.halt.

    `access`: the ops' (reads, writes) spans when not their instructions' own (see dependence_graph).
    `hold`: a compute unit stays idle up to this many cycles for an operation of higher priority than
    the best available one (default: the largest compute latency of the target; 0: never)."""
    instrs = list(instrs)
    slotted, sem_of, delays, cycles = _phases(instrs, target, lookahead, access, hold)
    bundles = [_bundle(instrs, s, sem_of, d) for s, d in zip(slotted, delays)]
    halt = Instruction(HALT, {})
    if bundles and bundles[-1].op_in("CTL") is None:
        bundles[-1] = Bundle(bundles[-1].ops + (halt,), 0)
    else:
        bundles.append(Bundle((halt,)))
    return Schedule(tuple(bundles), _sources(instrs, bundles, slotted), cycles)


def issue_order(instrs: Sequence[Instruction], target, lookahead: int = 0, access: Sequence[tuple] | None = None,
                hold: int | None = None) -> tuple[list[int], list[int]]:
    """The operations (input indices) in the order `schedule` issues them, bundle by bundle in slot order, and
    the cycle each issues at, counted from the first bundle (the delays and the bundles before it): what the
    schedule says of its operations without building its bundles (plan-memory orders a program by it)."""
    slotted, _, delays, _ = _phases(list(instrs), target, lookahead, access, hold)
    order: list[int] = []
    starts: list[int] = []
    t = 0
    for s, delay in zip(slotted, delays):
        order += s.members
        starts += [t] * len(s.members)
        t += delay + 1
    return order, starts


def _sources(instrs: Sequence[Instruction], bundles: Sequence[Bundle], slotted: Sequence[_Slotted]):
    out = []
    for b, bundle in enumerate(bundles):
        by_slot = {instrs[n].slot: n for n in slotted[b].members} if b < len(slotted) else {}
        out.append(tuple(by_slot.get(op.slot) for op in bundle.ops))
    return tuple(out)


def sequential(instrs: Sequence[Instruction], target, sem: int = 1) -> Schedule:
    """The reference schedule: one op per bundle, each completing before the next issues."""
    instrs = list(instrs)
    _check_input(instrs, target)
    bundles: list[Bundle] = []
    sources: list[tuple[int | None, ...]] = []
    for index, instr in enumerate(instrs):
        if instr.slot in DMA_SLOTS:
            bundles += [Bundle((_with_sem(instr, sem),)), Bundle((Instruction(WAIT, {"sem": sem, "count": 1}),))]
            sources += [(index,), (None,)]
        else:
            bundles.append(Bundle((instr,), costs.duration(instr, target) - 1))
            sources.append((index,))
    bundles.append(Bundle((Instruction(HALT, {}),)))
    sources.append((None,))
    return Schedule(tuple(bundles), tuple(sources), cycles=-1)
