"""The dependence graph of a straight-line instruction sequence: which operations must keep their order.

Place in the flow: read by the VLIW scheduler (compiler.backend.schedule).
Two operations conflict when the byte spans of their regions
(`Instruction.regions()`, the instruction table's one definition of what an
op touches; spans as the simulator's hazard checks use them) overlap in the
same memory and at least one of them writes: the later one reads what the
earlier writes (RAW), writes what it reads (WAR) or writes what it writes
(WAW).  The graph has a node per operation (its index in program order,
attribute `instr`) and an edge i -> j (i < j) per conflicting pair, attribute
`kinds`: the set of conflicts.  Every conflicting pair gets an edge, not only
the transitive reduction: the scheduler synchronizes each DMA operation with
its first consumer, whichever it is.
"""

from __future__ import annotations

from typing import Sequence

import networkx as nx

from isa.instructions import Instruction

READS = ("r", "rw")
WRITES = ("w", "rw")

Span = tuple[str, int, int]  # (space, start, stop)


def accesses(instr: Instruction) -> tuple[tuple[Span, ...], tuple[Span, ...]]:
    """(reads, writes): the non-empty spans `instr` reads and writes."""
    reads, writes = [], []
    for r in instr.regions():
        start, stop = r.span
        if stop <= start:
            continue
        if r.access in READS:
            reads.append((r.space, start, stop))
        if r.access in WRITES:
            writes.append((r.space, start, stop))
    return tuple(reads), tuple(writes)


def _overlap(a: Sequence[Span], b: Sequence[Span]) -> bool:
    return any(sa == sb and a0 < b1 and b0 < a1 for sa, a0, a1 in a for sb, b0, b1 in b)


def conflicts(earlier: tuple, later: tuple) -> frozenset[str]:
    """The kinds of dependence of `later` on `earlier`, each given as (reads, writes)."""
    (r1, w1), (r2, w2) = earlier, later
    kinds = set()
    if _overlap(w1, r2):
        kinds.add("RAW")
    if _overlap(r1, w2):
        kinds.add("WAR")
    if _overlap(w1, w2):
        kinds.add("WAW")
    return frozenset(kinds)


def dependence_graph(instrs: Sequence[Instruction]) -> nx.DiGraph:
    """Nodes 0..n-1 (program order, attribute `instr`), an edge per conflicting pair (attribute `kinds`)."""
    graph = nx.DiGraph()
    acc = [accesses(i) for i in instrs]
    for index, instr in enumerate(instrs):
        graph.add_node(index, instr=instr)
    for j in range(len(instrs)):
        if not acc[j][0] and not acc[j][1]:
            continue
        for i in range(j):
            kinds = conflicts(acc[i], acc[j])
            if kinds:
                graph.add_edge(i, j, kinds=kinds)
    return graph
