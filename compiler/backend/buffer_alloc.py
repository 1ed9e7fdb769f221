"""On-chip buffer allocation: an aligned offset for every tensor, reusing space once a tensor is dead.

Place in the flow: the buffer half of plan-memory, before schedule-vliw: the
lowering names tensors with their lifetimes [first use, last use] (positions
in program order, inclusive); this module places them in the target's
`buffer_bytes` so that no two tensors live at the same time overlap.

- `BufferRequest(name, nbytes, first, last, align=1, slots=1)`: `slots=2`
  double-buffers a streamed tensor (two aligned slots back to back, e.g. the
  weight tile being multiplied and the one being loaded).
- `allocate(requests, target, align=...)` -> `BufferPlan`: `offsets[name]` is a
  tuple of one offset per slot.  Placement is first fit at offsets aligned to
  the larger of the request's and the global alignment, in two orders: by
  first use (larger tensors first on ties) and greedy by size (largest first,
  which leaves fewer holes when sizes vary); the plan with the lower peak wins.
- A tensor that does not fit raises `BufferAllocationError` naming it, its
  size, the buffer size and the bytes live at that point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from fastmamba.isa.errors import FastmambaError

DEFAULT_ALIGN = 64  # a cache line of the on-chip buffer's AXI port; any power of two works


class BufferAllocationError(FastmambaError):
    """The tensors live at some point need more on-chip buffer than the target has."""


@dataclass(frozen=True)
class BufferRequest:
    name: str
    nbytes: int
    first: int
    last: int
    align: int = 1
    slots: int = 1

    def __post_init__(self) -> None:
        if self.nbytes < 0 or self.first > self.last or self.slots < 1 or self.align < 1:
            raise ValueError(f"tensor {self.name}: bad request (bytes {self.nbytes}, lifetime [{self.first}, "
                             f"{self.last}], slots {self.slots}, align {self.align})")


@dataclass(frozen=True)
class BufferPlan:
    offsets: Mapping[str, tuple[int, ...]]  # name -> one offset per slot
    slot_bytes: Mapping[str, int]  # name -> bytes between its slots (its size rounded up to the alignment)
    peak_bytes: int  # the highest byte used


def _round_up(value: int, align: int) -> int:
    return -(-value // align) * align


ORDERS = {
    "first-use": lambda r: (r.first, -r.nbytes * r.slots, r.name),
    "size": lambda r: (-r.nbytes * r.slots, r.first, r.name),
}


def allocate(requests: Sequence[BufferRequest], target, align: int = DEFAULT_ALIGN) -> BufferPlan:
    """Offsets for `requests` inside `target.buffer_bytes`; tensors live at once never overlap."""
    names = [r.name for r in requests]
    if len(set(names)) != len(names):
        raise ValueError("tensor names must be unique")
    best, error = None, None
    for key in ORDERS.values():
        try:
            plan = _first_fit(sorted(requests, key=key), target, align)
        except BufferAllocationError as exc:
            error = error or exc
            continue
        if best is None or plan.peak_bytes < best.peak_bytes:
            best = plan
    if best is None:
        raise error
    return best


def _first_fit(requests: Sequence[BufferRequest], target, align: int) -> BufferPlan:
    capacity = int(target.buffer_bytes)
    placed: list[tuple[BufferRequest, int, int]] = []  # (request, start, stop)
    offsets: dict[str, tuple[int, ...]] = {}
    slot_bytes: dict[str, int] = {}
    for req in requests:
        a = max(align, req.align)
        slot = _round_up(req.nbytes, a)
        size = slot * req.slots
        live = sorted((s, e) for other, s, e in placed if other.first <= req.last and req.first <= other.last)
        offset = 0
        for s, e in live:
            if offset + size <= s:
                break
            offset = max(offset, _round_up(e, a))
        if offset + size > capacity:
            in_use = sum(e - s for s, e in live)
            raise BufferAllocationError(
                f"tensor {req.name} ({req.nbytes} bytes x {req.slots} slot(s), live [{req.first}, {req.last}]) does "
                f"not fit the on-chip buffer of {capacity} bytes: {in_use} bytes of {len(live)} other tensor(s) "
                f"are live then")
        placed.append((req, offset, offset + size))
        offsets[req.name] = tuple(offset + k * slot for k in range(req.slots))
        slot_bytes[req.name] = slot
    peak = max((e for _, _, e in placed), default=0)
    return BufferPlan(offsets, slot_bytes, peak)
