"""The VLIW scheduler at scale: the interval-indexed dependence graph and the event-driven list scheduler.

- The dependence graph (per-space segments of last writer and readers since)
  orders exactly what the all-pairs graph orders: the same reachability, each
  edge a conflicting pair with the same kinds, and every DMA operation's first
  successor in any order the graph allows is the same (what `_synchronize`
  waits before).
- The event-driven list scheduler picks the same bundles as a cycle-by-cycle
  reference over the all-pairs graph.
- Larger programs (a random one, the benchmark's layered model) schedule with
  modelled cycles == simulated cycles, no hazard, and a near-linear graph.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import random
from collections import defaultdict
from pathlib import Path

import networkx as nx
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmamba.compiler.backend import schedule as sched_mod
from fastmamba.compiler.backend.depgraph import accesses, conflicts, dependence_graph
from fastmamba.compiler.backend.schedule import schedule
from fastmamba.isa import costs
from test_schedule_vliw import VC709, check_equivalent, ld, lin, run, st_, vec

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_schedule.py"


def all_pairs_graph(instrs) -> nx.DiGraph:
    """The reference: an edge per conflicting pair."""
    graph = nx.DiGraph()
    graph.add_nodes_from(range(len(instrs)))
    acc = [accesses(i) for i in instrs]
    for j in range(len(instrs)):
        for i in range(j):
            kinds = conflicts(acc[i], acc[j])
            if kinds:
                graph.add_edge(i, j, kinds=kinds)
    return graph


@st.composite
def overlapping_program(draw):
    """Ops over a small address range: unaligned, strided, partly overlapping spans; in-place and rw operands."""
    ops = []
    addr = st.integers(0, 40).map(lambda a: a * 16)
    for _ in range(draw(st.integers(1, 30))):
        kind = draw(st.sampled_from(("ld", "st", "vec", "vec2", "lin")))
        rows = draw(st.sampled_from((1, 2, 3)))
        row_bytes = draw(st.sampled_from((16, 32, 48)))
        stride = row_bytes + draw(st.sampled_from((0, 16, 64)))
        a, b, c, d = draw(addr), draw(addr), draw(addr), draw(addr)
        if kind == "ld":
            ops.append(ld(a, d, rows, row_bytes, buf_stride=stride))
        elif kind == "st":
            ops.append(st_(d, a, rows, row_bytes))
        elif kind == "vec":
            ops.append(vec(draw(st.sampled_from((a, b))), a, rows, row_bytes))  # sometimes in place
        elif kind == "vec2":
            ops.append(vec(c, a, rows, row_bytes, b=b, b_mode="full", op0="add"))
        else:
            ops.append(lin(c, a, b, 2, 16, 4, acc=draw(st.integers(0, 1))))
    return ops


def first_successor_positions(graph: nx.DiGraph, instrs, order) -> dict[int, int]:
    pos = {n: k for k, n in enumerate(order)}
    return {n: min(pos[s] for s in graph.successors(n)) for n in graph.nodes
            if instrs[n].slot in costs.DMA_SLOTS and graph.out_degree(n)}


@settings(max_examples=150, deadline=None)
@given(prog=overlapping_program(), seed=st.integers(0, 2**31))
def test_indexed_graph_orders_what_the_all_pairs_graph_orders(prog, seed):
    fast, ref = dependence_graph(prog), all_pairs_graph(prog)
    assert list(fast.nodes) == list(range(len(prog))) and all(fast.nodes[n]["instr"] is prog[n] for n in fast)
    for i, j in fast.edges:
        assert i < j and ref.has_edge(i, j) and fast.edges[i, j]["kinds"] == ref.edges[i, j]["kinds"]
    assert set(nx.transitive_closure_dag(fast).edges) == set(nx.transitive_closure_dag(ref).edges)
    # in any order the graph allows (a random topological order), each DMA op's first successor is the same
    rng = random.Random(seed)
    indeg = {n: fast.in_degree(n) for n in fast}
    ready, order = [n for n, k in indeg.items() if k == 0], []
    while ready:
        n = ready.pop(rng.randrange(len(ready)))
        order.append(n)
        for s in fast.successors(n):
            indeg[s] -= 1
            if indeg[s] == 0:
                ready.append(s)
    assert first_successor_positions(fast, prog, order) == first_successor_positions(ref, prog, order)


def test_graph_of_a_reused_buffer_stays_linear():
    """Loads into two alternating slots, each read by a lin: the all-pairs graph is quadratic, this one is not."""
    prog = []
    for j in range(400):
        slot = 0x1000 + (j % 2) * 0x400
        prog += [ld(slot, j * 0x400, 16, 64), lin(0x2000 + (j % 4) * 0x100, 0, slot, 4, 64, 16)]
    graph = dependence_graph(prog)
    assert graph.number_of_edges() <= 4 * len(prog)
    assert graph.has_edge(0, 4) and graph.edges[0, 4]["kinds"] == {"WAW"}  # the same slot, two tiles apart
    assert graph.has_edge(1, 4) and graph.edges[1, 4]["kinds"] == {"WAR"}
    assert not graph.has_edge(0, 8)  # ordered through 4


# --- the event-driven list scheduler against a cycle-by-cycle reference ---------------------------------------------


def reference_list_schedule(instrs, target, lookahead=0) -> list[list[int]]:
    """Each bundle: at the first cycle some ready op can issue, the highest-priority ready op per free slot
    (priorities as the scheduler ranks ops; test_priorities_follow_true_dependences checks those)."""
    graph = all_pairs_graph(instrs)
    dur = [costs.duration(i, target) for i in instrs]
    prio = sched_mod._priorities(dependence_graph(instrs), dur)  # the rule under test is the scheduling, not this
    finish, unit_free, queue, channel = {}, defaultdict(int), [], 0
    depth = target.dma_queue_depth

    def room(t, k):  # first cycle >= t with room for k more transfers
        active = [c for c in queue if c > t]
        return t if len(active) + k <= depth else active[len(active) - (depth - k) - 1]

    def earliest(n):
        t = max((finish[p] for p in graph.predecessors(n)), default=0)
        slot = instrs[n].slot
        return room(t, 1) if slot in costs.DMA_SLOTS else max(t, unit_free[slot])

    done, bundles, t_prev = set(), [], -1
    while len(done) < len(instrs):
        oldest = min(set(range(len(instrs))) - done)
        window = [n for n in range(len(instrs)) if n not in done and all(p in done for p in graph.predecessors(n))
                  and (lookahead <= 0 or n < oldest + lookahead)]
        est = {n: earliest(n) for n in window}
        t = max(t_prev + 1, min(est.values()))
        taken, n_dma = {}, 0
        for n in sorted(window, key=lambda n: (-prio[n], n)):
            slot = instrs[n].slot
            if est[n] > t or slot in taken:
                continue
            if slot in costs.DMA_SLOTS:
                if n_dma + 1 > depth or room(t, n_dma + 1) > t:
                    continue
                n_dma += 1
            taken[slot] = n
        members = sorted(taken.values(), key=lambda n: sched_mod.SLOTS.index(instrs[n].slot))
        for n in members:
            if instrs[n].slot in costs.DMA_SLOTS:
                channel = max(t, channel) + costs.occupancy(instrs[n], target)
                finish[n] = channel + costs.latency(instrs[n], target)
                queue.append(finish[n])
            else:
                unit_free[instrs[n].slot] = t + costs.occupancy(instrs[n], target)
                finish[n] = t + dur[n]
        bundles.append(members)
        done.update(members)
        t_prev = t
    return bundles


@settings(max_examples=80, deadline=None)
@given(prog=overlapping_program(), depth=st.sampled_from((1, 2, 3, 8)), lookahead=st.sampled_from((0, 0, 1, 3)))
def test_event_driven_list_scheduling_equals_the_cycle_by_cycle_reference(prog, depth, lookahead):
    target = dataclasses.replace(VC709, name="t", dma_queue_depth=depth)
    got = sched_mod._list_schedule(prog, dependence_graph(prog), target, lookahead,
                                   [costs.duration(i, target) for i in prog])
    assert [s.members for s in got] == reference_list_schedule(prog, target, lookahead)


# --- larger programs: modelled == simulated ---------------------------------------------------------------------------

ACT, WGT, ACC = 0x0000, 0x1000, 0x2000  # BUF: 4 activation slots [4, 64] i8, 2 weight slots [16, 64] i8, 3 [4, 16] i32
STATES = 0x4000  # DDR: 16 weight tiles of [16, 64] i8 below, 8 state slots of 256 bytes here


def layered_random_program(rng: random.Random, n_ops: int) -> list:
    """Weight tiles streamed through two alternating slots into LIN ops, VEC chains over activations,
    state loads and stores, in random order and operands."""
    ops, tile = [], 0
    act = [ACT + 0x100 * i for i in range(4)]
    acc = [ACC + 0x100 * i for i in range(3)]
    while len(ops) < n_ops:
        step = rng.choice(("tile", "tile", "vec", "vec2", "deq", "state_ld", "state_st"))
        if step == "tile":
            wgt = WGT + 0x400 * (tile % 2)
            tile += 1
            ops += [ld(wgt, 0x400 * rng.randrange(16), 16, 64),
                    lin(rng.choice(acc), rng.choice(act), wgt, 4, 64, 16, acc=rng.randrange(2))]
        elif step == "vec":
            ops.append(vec(rng.choice(act), rng.choice(act), 4, 64, op0=rng.choice(("silu", "softplus", "none"))))
        elif step == "vec2":
            a, b = rng.sample(act, 2)
            ops.append(vec(rng.choice(act), a, 4, 64, b=b, b_mode="full", op0="add"))
        elif step == "deq":
            ops.append(vec(rng.choice(act), rng.choice(acc), 4, 16, a_type="i32"))
        elif step == "state_ld":
            ops.append(ld(rng.choice(act), STATES + 0x100 * rng.randrange(8), 4, 64))
        else:
            ops.append(st_(STATES + 0x100 * rng.randrange(8), rng.choice(act + acc), 4, 64))
    return ops


def test_a_larger_random_program_runs_as_modelled():
    target = dataclasses.replace(VC709, name="t", semaphores=4, dma_queue_depth=4)
    prog = layered_random_program(random.Random(3), 600)
    sched, fast, slow = check_equivalent(prog, STATES + 8 * 0x100, target)
    assert sched.cycles == fast.cycles < slow.cycles
    assert fast.stalls["semaphore"] == 0 and fast.stalls["structural"] == 0 and fast.stalls["dma_queue"] == 0


def test_issue_order_is_the_schedules_own():
    """issue_order (what plan-memory reorders by) gives each op's place and issue cycle as the bundles schedule
    builds say them: bundle by bundle, the ops in slot order, each at the delays before it plus one a bundle."""
    target = dataclasses.replace(VC709, name="t", semaphores=2, dma_queue_depth=2)
    for seed, lookahead in ((3, 0), (4, 5)):
        prog = layered_random_program(random.Random(seed), 300)
        sched = schedule(prog, target, lookahead)
        order, starts, t = [], [], 0
        for bundle, sources in zip(sched.bundles, sched.sources):
            for n in sources:
                if n is not None:
                    order.append(n)
                    starts.append(t)
            t += bundle.delay + 1
        assert sched_mod.issue_order(prog, target, lookahead) == (order, starts)
        assert sorted(order) == list(range(len(prog))) and any(a > b for a, b in zip(order, order[1:]))


def _bench():
    spec = importlib.util.spec_from_file_location("bench_schedule", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_benchmark_model_runs_as_modelled_with_weights_streamed():
    bench = _bench()
    prog, ddr_bytes = bench.layered_program(layers=2, tokens=16)
    sched = schedule(prog, VC709)
    state, stats = run(sched.bundles, ddr_bytes)
    assert stats.cycles == sched.cycles
    assert stats.stalls["semaphore"] == 0 and stats.stalls["structural"] == 0
    # at 16 tokens a weight tile loads slower than its LIN runs: loads issue as early as the two weight
    # slots allow, overlapping compute and the conv/SSM chain, so the DDR channel is almost never idle
    assert stats.busy["LD"] + stats.busy["ST"] >= 0.95 * stats.cycles
    graph = dependence_graph(prog)
    assert graph.number_of_edges() <= 6 * len(prog)
    assert bench.main(["--layers", "2", "--tokens", "16", "--simulate"]) == 0


def test_priorities_follow_true_dependences():
    """Two LIN ops ready together: P feeds a VEC op; Q only starts a chain of anti- and output dependences
    (its weight slot reloaded for two more tiles writing the same output).  P has the longer chain of
    results waiting for it and goes first, though Q comes first in program order and its ordering chain
    is longer."""
    ZERO, OUT0, SLOT_Q, SLOT_P, X, Y, V = 0x0, 0x1000, 0x5000, 0x6000, 0x7000, 0xB000, 0xF000
    tile = 64 * 64
    prog = [lin(OUT0, ZERO, ZERO, 64, 64, 64),  # keeps LIN busy while both tiles load
            ld(SLOT_Q, 0, 1, tile), lin(Y, ZERO, SLOT_Q, 64, 64, 64),
            ld(SLOT_Q, tile, 1, tile), lin(Y, ZERO, SLOT_Q, 64, 64, 64),
            ld(SLOT_Q, 2 * tile, 1, tile), lin(Y, ZERO, SLOT_Q, 64, 64, 64),
            ld(SLOT_P, 3 * tile, 1, tile), lin(X, ZERO, SLOT_P, 64, 64, 64),
            vec(V, X, 64, 64, a_type="i32")]
    p_lin, q_lin = 8, 2
    dur = [costs.duration(i, VC709) for i in prog]
    assert dur[q_lin] + 2 * (dur[3] + dur[4]) > dur[p_lin] + dur[9]  # the ordering chain is the longer one
    prio = sched_mod._priorities(dependence_graph(prog), dur)
    assert prio[p_lin] == dur[p_lin] + dur[9] and prio[q_lin] == dur[q_lin]
    lins = [n for bundle in schedule(prog, VC709).sources for n in bundle if n is not None and prog[n].op == "lin"]
    assert lins[:3] == [0, p_lin, q_lin]
