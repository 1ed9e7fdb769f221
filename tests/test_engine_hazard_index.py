"""The engine's quick hazard test (`_InFlightSet`) answers exactly what the plain scan `_find_hazard` answers.

`_InFlightSet` keeps the in-flight operations' ranges as sorted int spans and
only falls back to the scan when some range meets one; these tests drive it
with random operations (overlapping, nested, empty, in both memories, some
expiring) and compare every answer with `_find_hazard` over the operations
still in flight, in issue order.  The last tests run real programs through
the engine with many operations in flight, so that the engine's use of the
index is checked too: each hazard must be reported, naming the one operation
it conflicts with, and the same program made safe (a wait) must run.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from fastmamba.isa.instructions import Bundle, Instruction
from fastmamba.isa.target import load_target
from fastmamba.simulator.effects import MachineState, Range, SimulationError
from fastmamba.simulator.engine import _find_hazard, _InFlight, _InFlightSet, simulate


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


# --- the engine with real instructions: many loads in flight, one conflicting ---
VC709 = load_target("vc709")
SLOT_BYTES = 64  # each load fills its own 64-byte slot of the buffer: 16 f32
LOADS = 24
HALT = Bundle((Instruction("ctl.halt", {}),))


def _ld(slot: int, sem: int = 1) -> Instruction:
    return Instruction("ld", {"buf": slot * SLOT_BYTES, "ddr": slot * SLOT_BYTES, "rows": 1, "row_bytes": SLOT_BYTES,
                              "ddr_stride": SLOT_BYTES, "buf_stride": SLOT_BYTES, "sem": sem})


def _vec_copy(src_slot: int, dst_slot: int, rows: int = 1) -> Instruction:
    cols = SLOT_BYTES // 4
    return Instruction("vec", {"dst": dst_slot * SLOT_BYTES, "a": src_slot * SLOT_BYTES, "b": 0, "rows": rows,
                               "cols": cols, "a_ld": cols, "b_ld": cols, "dst_ld": cols, "a_type": "f32", "a_exp": 0,
                               "b_type": "f32", "b_exp": 0, "b_mode": "none", "op0": "none", "op1": "none",
                               "op2": "none", "op3": "none", "group": 1, "eps": 0.0, "out_type": "f32",
                               "out_scale": 1.0})


def _run(bundles) -> MachineState:
    ddr = np.arange(LOADS * SLOT_BYTES * 2, dtype=np.uint32).astype(np.float32).view(np.uint8)[:LOADS * SLOT_BYTES * 2]
    state = MachineState(ddr=ddr.copy(), buf=np.zeros(LOADS * SLOT_BYTES * 2, np.uint8))
    simulate(list(bundles) + [HALT], state, VC709)
    return state


def _loads() -> list[Bundle]:
    return [Bundle((_ld(slot),)) for slot in range(LOADS)]


def test_the_engine_reports_a_read_of_a_load_still_in_flight_naming_that_load():
    last = LOADS - 3  # among the loads still in flight when the reader issues
    with pytest.raises(SimulationError) as info:
        _run(_loads() + [Bundle((_vec_copy(last, LOADS),))])
    msg = str(info.value)
    assert msg.startswith(f"bundle {LOADS}, slot VEC: `vec ") and "RAW hazard: reads buf" in msg
    assert f"which `ld buf={last * SLOT_BYTES}, " in msg and f"(bundle {last}, slot LD)" in msg


def test_the_same_read_after_waiting_for_the_loads_runs_and_reads_the_data():
    wait = Instruction("ctl.wait", {"sem": 1, "count": LOADS})
    state = _run(_loads() + [Bundle((wait,)), Bundle((_vec_copy(LOADS - 3, LOADS),))])
    got = state.buf[LOADS * SLOT_BYTES:(LOADS + 1) * SLOT_BYTES]
    assert np.array_equal(got, state.ddr[(LOADS - 3) * SLOT_BYTES:(LOADS - 2) * SLOT_BYTES])


def test_the_engine_reports_a_load_over_what_a_long_op_still_reads():
    reader = _vec_copy(LOADS - 1, LOADS, rows=1)  # reads slot LOADS - 1 for vec_latency + 1 cycles
    wait = Instruction("ctl.wait", {"sem": 1, "count": LOADS})
    with pytest.raises(SimulationError, match=rf"^bundle {LOADS + 2}, slot LD: .*WAR hazard: writes buf.*"
                                              rf"\(bundle {LOADS + 1}, slot VEC\)"):
        _run(_loads() + [Bundle((wait,)), Bundle((reader,)), Bundle((_ld(LOADS - 1, sem=0),))])


def test_the_engine_reports_two_writes_of_one_slot_in_flight():
    last = LOADS - 1  # the load and the vec of one bundle write one slot (slot 0's load is complete by then)
    with pytest.raises(SimulationError, match=rf"^bundle {last}, slot VEC: .*WAW hazard: writes buf.*"
                                              rf"\(bundle {last}, slot LD\)"):
        _run(_loads()[:-1] + [Bundle((_ld(last), _vec_copy(0, last)))])
