"""The engine's quick hazard test (`_InFlightSet`) answers exactly what the plain scan `_find_hazard` answers.

`_InFlightSet` keeps the in-flight operations' ranges as sorted int spans and
only falls back to the scan when some range meets one; these tests drive it
with random operations (overlapping, nested, empty, in both memories, some
expiring) and compare every answer with `_find_hazard` over the operations
still in flight, in issue order.
"""

from __future__ import annotations

import random

import pytest

from fastmamba.simulator.effects import Range
from fastmamba.simulator.engine import _find_hazard, _InFlight, _InFlightSet


def _random_ranges(rng: random.Random, count: int, spaces=("buf", "ddr")) -> tuple[Range, ...]:
    out = []
    for _ in range(count):
        start = rng.randrange(0, 4096)
        length = rng.choice((0, 1, 4, 16, 64, rng.randrange(0, 2048)))
        out.append(Range(rng.choice(spaces), start, start + length))
    return tuple(out)


def _same(got, want) -> bool:
    if want is None:
        return got is None
    return got is not None and got[0] == want[0] and got[1] is want[1] and got[2] is want[2] and got[3] is want[3]


@pytest.mark.parametrize("seed", range(6))
def test_quick_test_agrees_with_the_scan(seed):
    rng = random.Random(seed)
    inflight = _InFlightSet()
    reference: list[_InFlight] = []
    conflicts = 0
    for now in range(600):
        inflight.prune(now)
        reference = [e for e in reference if e.complete > now]
        assert list(inflight.live.values()) == reference
        for _ in range(rng.randrange(1, 3)):
            reads = _random_ranges(rng, rng.randrange(0, 4))
            writes = _random_ranges(rng, rng.randrange(0, 3))
            spans = inflight.spans(reads, writes)
            got = inflight.hazard(reads, writes, spans) if inflight else None
            want = _find_hazard(reads, writes, reference)
            assert _same(got, want), (now, reads, writes)
            conflicts += want is not None
            complete = now + rng.randrange(1, 40)
            inflight.add(complete, now, "LIN", None, reads, writes, spans)
            reference.append(inflight.live[inflight.seq - 1])
    assert 0 < conflicts < 1200  # both answers occur


def test_ranges_of_another_memory_never_meet():
    inflight = _InFlightSet()
    writes = (Range("ddr", 0, 100),)
    inflight.add(10, 0, "ST", None, (), writes, inflight.spans((), writes))
    mine = (Range("buf", 0, 100),)
    assert inflight.hazard(mine, mine, inflight.spans(mine, mine)) is None
    mine = (Range("ddr", 99, 100),)
    kind, other, a, b = inflight.hazard(mine, (), inflight.spans(mine, ()))
    assert (kind, a, b) == ("RAW", mine[0], writes[0])


def test_an_empty_range_inside_an_inflight_write_meets_it_as_the_scan_says():
    inflight = _InFlightSet()
    writes = (Range("buf", 0, 100),)
    inflight.add(10, 0, "LIN", None, (), writes, inflight.spans((), writes))
    for empty, hit in ((Range("buf", 50, 50), True), (Range("buf", 0, 0), False), (Range("buf", 100, 100), False)):
        assert (_find_hazard((empty,), (), inflight.live.values()) is not None) is hit
        assert (inflight.hazard((empty,), (), inflight.spans((empty,), ())) is not None) is hit


def test_addresses_that_do_not_fold_switch_to_the_scan():
    inflight = _InFlightSet()
    huge = (Range("ddr", 1 << 64, (1 << 64) + 8),)
    assert inflight.spans(huge, ()) is None and inflight.exact_only
    inflight.add(10, 0, "ST", None, (), huge, None)
    mine = (Range("ddr", (1 << 64) + 4, (1 << 64) + 5),)
    assert inflight.hazard(mine, (), inflight.spans(mine, ()))[0] == "RAW"
    inflight.prune(10)
    assert not inflight
