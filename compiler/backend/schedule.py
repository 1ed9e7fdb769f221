"""VLIW scheduling of a straight-line instruction sequence: bundles, delays, DMA semaphores and waits.

Place in the flow: the algorithm behind passes/schedule_vliw.py (which only
moves `accel` IR in and out).  Input: instructions in program order (no
`ctl` ops; LD/ST semaphores are reassigned).  Output: a `Schedule` of
`isa.instructions.Bundle`s ending with `ctl.halt` whose meaning equals the
sequence's, run with no hazard on the machine of docs/ACCELERATOR.md, fast.

Three phases:
1. **List scheduling** (`_list_schedule`): the dependence graph
   (compiler.backend.depgraph), priorities by critical path (the longest
   occupancy + latency chain to the end), cycle by cycle the highest-priority
   ready operation per free slot, with the target's units, DDR channel (in
   issue order, bytes per cycle, latency) and DMA queue modelled from
   isa.costs.  An operation is ready once every predecessor sits in an
   earlier bundle; its earliest cycle is when they complete.  Loads thus
   issue as early as their buffer allows and overlap compute.  `lookahead`
   (when > 0) keeps an operation from passing more than that many
   unscheduled operations of the program order.
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

`sequential(instrs, target)` is the reference schedule: one operation per
bundle, each DMA followed by a wait for it, each compute op by a delay until
it completes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import networkx as nx

from compiler.backend.depgraph import dependence_graph
from isa import costs
from isa.errors import FastmambaError
from isa.instructions import BUNDLE_DELAY_BITS, SLOTS, Bundle, Instruction

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


class _DmaModel:
    """The DDR channel (in issue order) and the DMA queue, as the simulator times them."""

    def __init__(self, target):
        self.target = target
        self.channel_free = 0
        self.queue: list[int] = []  # completion cycles of issued transfers, in issue order (increasing)

    def room_at(self, t: int, n: int) -> int:
        """The first cycle >= t at which `n` more transfers fit in the queue."""
        depth = self.target.dma_queue_depth
        assert n <= depth, "a bundle never issues more transfers than the queue holds"
        active = [c for c in self.queue if c > t]
        if len(active) + n <= depth:
            return t
        return active[len(active) - (depth - n) - 1]

    def issue(self, instr: Instruction, t: int) -> int:
        start = max(t, self.channel_free)
        self.channel_free = start + costs.occupancy(instr, self.target)
        done = self.channel_free + costs.latency(instr, self.target)
        self.queue.append(done)
        return done


def _issue_order(instrs: Sequence[Instruction], members) -> list[int]:
    """A bundle's ops in slot order: the order the machine issues them (its LD before its ST on the channel)."""
    return sorted(members, key=lambda n: SLOTS.index(instrs[n].slot))


def _priorities(graph: nx.DiGraph, target) -> dict[int, int]:
    prio: dict[int, int] = {}
    for node in sorted(graph.nodes, reverse=True):
        tail = max((prio[s] for s in graph.successors(node)), default=0)
        prio[node] = costs.duration(graph.nodes[node]["instr"], target) + tail
    return prio


def _list_schedule(instrs: Sequence[Instruction], graph: nx.DiGraph, target, lookahead: int) -> list[_Slotted]:
    prio = _priorities(graph, target)
    missing = {n: graph.in_degree(n) for n in graph.nodes}
    ready = {n for n, k in missing.items() if k == 0}
    finish: dict[int, int] = {}
    unit_free: dict[str, int] = defaultdict(int)
    dma = _DmaModel(target)
    unscheduled = set(graph.nodes)
    bundles: list[_Slotted] = []
    t_prev = -1

    def earliest(n: int) -> int:
        t = max((finish[p] for p in graph.predecessors(n)), default=0)
        slot = instrs[n].slot
        return dma.room_at(t, 1) if slot in DMA_SLOTS else max(t, unit_free[slot])

    while unscheduled:
        oldest = min(unscheduled)
        window = [n for n in ready if lookahead <= 0 or n < oldest + lookahead]
        est = {n: earliest(n) for n in window}
        t = max(t_prev + 1, min(est.values()))
        taken: dict[str, int] = {}
        n_dma = 0
        for n in sorted(window, key=lambda n: (-prio[n], n)):
            slot = instrs[n].slot
            if est[n] > t or slot in taken:
                continue
            if slot in DMA_SLOTS:
                if n_dma + 1 > target.dma_queue_depth or dma.room_at(t, n_dma + 1) > t:
                    continue
                n_dma += 1
            taken[slot] = n
        members = _issue_order(instrs, taken.values())
        for n in members:
            instr = instrs[n]
            if instr.slot in DMA_SLOTS:
                finish[n] = dma.issue(instr, t)
            else:
                unit_free[instr.slot] = t + costs.occupancy(instr, target)
                finish[n] = t + costs.duration(instr, target)
        bundles.append(_Slotted(members, time=t))
        t_prev = t
        for n in members:
            ready.discard(n)
            unscheduled.discard(n)
            for s in graph.successors(n):
                missing[s] -= 1
                if missing[s] == 0:
                    ready.add(s)
    return bundles


def _synchronize(instrs: Sequence[Instruction], graph: nx.DiGraph, bundles: list[_Slotted], target) -> tuple[list[_Slotted], dict[int, int]]:
    """Insert waits; return the bundles (with wait-only ones added) and each DMA op's semaphore."""
    where = {n: b for b, slotted in enumerate(bundles) for n in slotted.members}
    first_user = {n: min(where[s] for s in graph.successors(n)) for n in graph.nodes
                  if instrs[n].slot in DMA_SLOTS and graph.out_degree(n)}
    free = list(range(target.semaphores, NO_SEMAPHORE, -1))  # pop() gives the lowest
    group_sem: dict[int, int] = {}  # first-user bundle -> semaphore of the group now filling
    pending: dict[int, list[int]] = defaultdict(list)  # semaphore -> unsynchronized ops signalling it
    sem_of: dict[int, int] = {}
    out: list[_Slotted] = []

    def wait_for(sem: int) -> tuple[int, int]:
        count = len(pending.pop(sem))
        for user, s in list(group_sem.items()):
            if s == sem:
                del group_sem[user]
        free.append(sem)
        free.sort(reverse=True)
        return (sem, count)

    for b, slotted in enumerate(bundles):
        needed = sorted({sem for sem, ops in pending.items() for n in ops if first_user[n] == b})
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
                sem = free.pop() if free else group_sem[min(group_sem)]
                group_sem[user] = sem
            pending[sem].append(n)
            sem_of[n] = sem
        out.append(slotted)
    assert not pending, "every DMA op with a successor is waited for before it"
    return out, sem_of


def _retime(instrs: Sequence[Instruction], graph: nx.DiGraph, bundles: list[_Slotted], sem_of: dict[int, int],
            target) -> tuple[list[int], int]:
    """Each bundle's delay so that none stalls on the model; and the modelled cycle count."""
    unit_free: dict[str, int] = defaultdict(int)
    finish: dict[int, int] = {}
    sem_done: dict[int, list[int]] = defaultdict(list)
    dma = _DmaModel(target)
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
            instr = instrs[n]
            for p in graph.predecessors(n):
                if instrs[p].slot not in DMA_SLOTS:
                    t = max(t, finish[p])
            if instr.slot in DMA_SLOTS:
                n_dma += 1
            else:
                t = max(t, unit_free[instr.slot])
        if n_dma:
            t = dma.room_at(t, n_dma)
        for n in slotted.members:
            instr = instrs[n]
            if instr.slot in DMA_SLOTS:
                finish[n] = dma.issue(instr, t)
                if n in sem_of:
                    sem_done[sem_of[n]].append(finish[n])
            else:
                unit_free[instr.slot] = t + costs.occupancy(instr, target)
                finish[n] = t + costs.duration(instr, target)
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


def schedule(instrs: Sequence[Instruction], target, lookahead: int = 0) -> Schedule:
    """Bundles for `instrs` (program order, no ctl ops) on `target`, ending with ctl.halt."""
    instrs = list(instrs)
    _check_input(instrs, target)
    graph = dependence_graph(instrs)
    slotted = _list_schedule(instrs, graph, target, lookahead)
    slotted, sem_of = _synchronize(instrs, graph, slotted, target)
    delays, cycles = _retime(instrs, graph, slotted, sem_of, target)
    bundles = [_bundle(instrs, s, sem_of, d) for s, d in zip(slotted, delays)]
    halt = Instruction(HALT, {})
    if bundles and bundles[-1].op_in("CTL") is None:
        bundles[-1] = Bundle(bundles[-1].ops + (halt,), 0)
    else:
        bundles.append(Bundle((halt,)))
    return Schedule(tuple(bundles), _sources(instrs, bundles, slotted), cycles)


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
