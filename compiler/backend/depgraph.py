"""The dependence graph of a straight-line instruction sequence: which operations must keep their order.

Place in the flow: read by the VLIW scheduler (compiler.backend.schedule).
Two operations conflict when the byte spans of their regions
(`Instruction.regions()`, the instruction table's one definition of what an
op touches; spans [first byte, last byte) as the simulator's hazard checks
use them) overlap in the same memory and at least one of them writes: the
later one reads what the earlier writes (RAW), writes what it reads (WAR) or
writes what it writes (WAW).

The graph has a node per operation (its index in program order, attribute
`instr`) and an edge i -> j (i < j) for the conflicting pairs that order
the program, attribute `kinds`: the set of conflicts of the pair.  Per byte,
an operation depends on the last earlier writer of that byte (RAW, WAW) and,
if it writes the byte, on the readers since that writer (WAR).  Every other
conflicting pair is ordered through these edges: writers of a byte form a
chain, and a reader precedes the next writer.  So i -> j is a path exactly
when the all-pairs graph has one (the same reachability); priorities by
longest path, readiness and "the first bundle holding a successor" (what
the scheduler synchronizes a DMA operation with) are the same as with an
edge per conflicting pair, since every descendant follows some direct
successor.

Building it is near-linear: per memory space a sorted list of disjoint
address segments, each with its last writer and its readers since
(`_ShadowMemory`); an operation visits the segments its spans cover.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Sequence

import networkx as nx

from fastmamba.isa.instructions import Instruction

READS = ("r", "rw")
WRITES = ("w", "rw")
NO_WRITER = -1

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


class _ShadowMemory:
    """One memory space as disjoint segments [starts[k], starts[k+1]) (the last one unbounded).

    Each segment holds the last operation that wrote it (`writer`, NO_WRITER if none) and the
    operations that read it since (`readers`, in program order).  Segments split where a span
    begins or ends; a write merges the segments it covers into one.
    """

    def __init__(self) -> None:
        self.starts: list[int] = [-1]  # below every address
        self.writer: list[int] = [NO_WRITER]
        self.readers: list[list[int]] = [[]]

    def _split(self, addr: int) -> int:
        """The index of the segment that starts at `addr`, splitting the one holding it if needed."""
        k = bisect_right(self.starts, addr) - 1
        if self.starts[k] == addr:
            return k
        self.starts.insert(k + 1, addr)
        self.writer.insert(k + 1, self.writer[k])
        self.readers.insert(k + 1, list(self.readers[k]))
        return k + 1

    def _cover(self, start: int, stop: int) -> range:
        """The indices of the segments that together are exactly [start, stop)."""
        lo = self._split(start)
        return range(lo, self._split(stop))  # splitting at stop > start leaves lo in place

    def read(self, op: int, start: int, stop: int, preds: set[int]) -> None:
        """`op` reads [start, stop): add the last writers to `preds` and `op` to the readers."""
        writer, readers = self.writer, self.readers
        for k in self._cover(start, stop):
            if writer[k] != NO_WRITER:
                preds.add(writer[k])
            if not readers[k] or readers[k][-1] != op:
                readers[k].append(op)

    def write(self, op: int, start: int, stop: int, preds: set[int]) -> None:
        """`op` writes [start, stop): add the last writers and their readers to `preds`; `op` is the writer."""
        writer, readers = self.writer, self.readers
        cover = self._cover(start, stop)
        for k in cover:
            if writer[k] != NO_WRITER:
                preds.add(writer[k])
            preds.update(readers[k])
        lo, hi = cover.start, cover.stop
        del self.starts[lo + 1:hi], writer[lo + 1:hi], readers[lo + 1:hi]
        writer[lo] = op
        readers[lo] = []


_KINDS = {(raw, war, waw): frozenset(k for k, on in zip(("RAW", "WAR", "WAW"), (raw, war, waw)) if on)
          for raw in (False, True) for war in (False, True) for waw in (False, True)}


def _meets(a: Sequence[tuple[int, int, int]], b: Sequence[tuple[int, int, int]]) -> bool:
    """_overlap of spans whose spaces are numbered (the hot path of dependence_graph: no generator, int compares)."""
    for sa, a0, a1 in a:
        for sb, b0, b1 in b:
            if a0 < b1 and b0 < a1 and sa == sb:
                return True
    return False


def dependence_graph(instrs: Sequence[Instruction], access: Sequence[tuple] | None = None) -> nx.DiGraph:
    """Nodes 0..n-1 (program order, attribute `instr`), edges ordering every conflicting pair (attribute `kinds`).

    `access`: each op's (reads, writes) spans instead of `accesses(instr)` (plan-memory schedules with one
    space per symbolic block, before addresses exist).  The spaces are numbered first (a symbolic block is an
    attribute, slow to hash and compare); each edge's kinds are then `conflicts` of the pair."""
    graph = nx.DiGraph()
    graph.add_nodes_from((index, {"instr": instr}) for index, instr in enumerate(instrs))
    number: dict = {}

    def numbered(spans: Sequence[Span]) -> tuple[tuple[int, int, int], ...]:
        return tuple((number.setdefault(space, len(number)), start, stop) for space, start, stop in spans)

    acc = [(numbered(r), numbered(w)) for r, w in (access if access is not None else map(accesses, instrs))]
    spaces: list[_ShadowMemory] = []
    edges = []
    for j, (reads, writes) in enumerate(acc):
        preds: set[int] = set()
        for space, start, stop in reads:
            while space >= len(spaces):
                spaces.append(_ShadowMemory())
            spaces[space].read(j, start, stop, preds)
        for space, start, stop in writes:
            while space >= len(spaces):
                spaces.append(_ShadowMemory())
            spaces[space].write(j, start, stop, preds)
        preds.discard(j)
        for i in sorted(preds):
            r1, w1 = acc[i]
            edges.append((i, j, {"kinds": _KINDS[_meets(w1, reads), _meets(r1, writes), _meets(w1, writes)]}))
    graph.add_edges_from(edges)
    return graph
