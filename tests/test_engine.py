"""The engine's timing model, synchronization and hazard checks, on fake unit semantics.

The fake operations below (f.ld, f.st, f.lin, f.vec) are defined here with
their own specs so these tests depend only on the engine contract
(simulator.effects), not on the real instruction table or unit semantics.
Cycle counts in each test are worked out by hand from docs/ACCELERATOR.md's
rules with the small target TARGET (60 B/cycle, DMA latency 10, queue depth 2).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import numpy as np
import pytest

from fastmamba.isa.instructions import Bundle, FieldSpec, Instruction, OpSpec
from fastmamba.isa.target import load_target
from fastmamba.simulator.effects import Footprint, MachineState, Range, SimulationError
from fastmamba.simulator.engine import simulate
from fastmamba.simulator.trace import TRACKS, Trace


# vc709 with a short DMA latency and a shallow queue, so the hand-worked cycle counts stay small.
TARGET = dataclasses.replace(load_target("vc709"), clock_mhz=250.0, ddr_gbytes_per_s=15.0, dma_latency=10,
                             dma_queue_depth=2, semaphores=4)
assert TARGET.dma_bytes_per_cycle == 60.0


def _spec(name, slot, *fields):
    return OpSpec(name, 0x10, slot, tuple(FieldSpec(f, 32) for f in fields), "test op")


SPECS = {
    "f.ld": _spec("f.ld", "LD", "buf", "ddr", "n", "sem"),
    "f.st": _spec("f.st", "ST", "buf", "ddr", "n", "sem"),
    "f.lin": _spec("f.lin", "LIN", "src", "dst", "n", "occ", "lat"),
    "f.vec": _spec("f.vec", "VEC", "src", "dst", "n", "occ", "lat"),
}


@dataclass(frozen=True, eq=False)
class FakeInstr:
    op: str
    args: dict

    @property
    def spec(self):
        return SPECS[self.op]

    @property
    def slot(self):
        return SPECS[self.op].slot

    def __getitem__(self, name):
        return self.args[name]


def ld(buf, ddr, n, sem=0):
    return FakeInstr("f.ld", {"buf": buf, "ddr": ddr, "n": n, "sem": sem})


def st(buf, ddr, n, sem=0):
    return FakeInstr("f.st", {"buf": buf, "ddr": ddr, "n": n, "sem": sem})


def lin(src, dst, n, occ, lat):
    return FakeInstr("f.lin", {"src": src, "dst": dst, "n": n, "occ": occ, "lat": lat})


def vec(src, dst, n, occ, lat):
    return FakeInstr("f.vec", {"src": src, "dst": dst, "n": n, "occ": occ, "lat": lat})


def wait(sem, count):
    return Instruction("ctl.wait", {"sem": sem, "count": count})


HALT = Instruction("ctl.halt")


class FakeDma:
    def __init__(self, to_buf: bool):
        self.to_buf = to_buf

    def footprint(self, i, state, target):
        buf, ddr = Range("buf", i["buf"], i["buf"] + i["n"]), Range("ddr", i["ddr"], i["ddr"] + i["n"])
        if buf.stop > len(state.buf):
            raise SimulationError(f"buffer range {buf.stop:#x} past the end")
        reads, writes = ((ddr,), (buf,)) if self.to_buf else ((buf,), (ddr,))
        return Footprint(reads=reads, writes=writes, ddr_bytes=i["n"])

    def execute(self, i, state, target):
        if self.to_buf:
            state.buf[i["buf"]:i["buf"] + i["n"]] = state.ddr[i["ddr"]:i["ddr"] + i["n"]]
        else:
            state.ddr[i["ddr"]:i["ddr"] + i["n"]] = state.buf[i["buf"]:i["buf"] + i["n"]]


class FakeIncrement:
    """dst[k] = src[k] + 1 (mod 256); n MACs."""

    def footprint(self, i, state, target):
        return Footprint(reads=(Range("buf", i["src"], i["src"] + i["n"]),),
                         writes=(Range("buf", i["dst"], i["dst"] + i["n"]),),
                         occupancy=i["occ"], latency=i["lat"], macs=i["n"])

    def execute(self, i, state, target):
        state.buf[i["dst"]:i["dst"] + i["n"]] = state.buf[i["src"]:i["src"] + i["n"]] + 1


SEMANTICS = {"f.ld": FakeDma(True), "f.st": FakeDma(False), "f.lin": FakeIncrement(), "f.vec": FakeIncrement()}


def new_state(ddr_bytes=4096, buf_bytes=4096):
    return MachineState(ddr=np.arange(ddr_bytes, dtype=np.uint32).astype(np.uint8), buf=np.zeros(buf_bytes, np.uint8))


def run(*bundles, state=None, trace=None, target=TARGET):
    bundles = [b if isinstance(b, Bundle) else Bundle(tuple(b) if isinstance(b, (list, tuple)) else (b,))
               for b in bundles]
    return simulate(bundles, state or new_state(), target, SEMANTICS, trace)


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------
def test_one_dma_and_wait():
    # b0 ld 120 B at 0: channel 0..2 (120/60), completes 2 + 10 = 12, sem1 := 1.
    # b1 ctl.wait earliest 1, satisfied at 12: 11 semaphore-stall cycles.  b2 halt at 13: cycles max(14, 12) = 14.
    s = run(ld(0, 0, 120, sem=1), wait(1, 1), HALT)
    assert s.cycles == 14
    assert s.stalls == {"semaphore": 11, "structural": 0, "dma_queue": 0}
    assert s.busy["LD"] == 2 and s.ddr_bytes_read == 120 and s.ddr_bytes_written == 0
    assert (s.bundles, s.ops) == (3, 3)
    assert s.seconds == pytest.approx(14 / 250e6)


def test_transfer_cycles_round_up():
    # 61 B at 60 B/cycle holds the channel 2 cycles: completes 12; halt at 1 -> cycles 12.
    s = run(ld(0, 0, 61), HALT)
    assert s.cycles == 12 and s.busy["LD"] == 2


def test_two_dmas_share_the_channel_in_issue_order():
    # b0 ld 600 B: channel 0..10, completes 20.  b1 ld 61 B issued at 1: waits for the channel, 10..12, completes 22.
    # b2 wait sem1 >= 2: earliest 2, satisfied at 22 (20 stall).  b3 halt at 23: cycles 24.
    s = run(ld(0, 0, 600, sem=1), ld(1024, 0, 61, sem=1), wait(1, 2), HALT)
    assert s.cycles == 24
    assert s.stalls["semaphore"] == 20
    assert s.busy["LD"] == 12 and s.ddr_bytes_read == 661


def test_store_and_load_share_the_channel():
    # b0 st 300 B: channel 0..5, completes 15.  b0's ld (same bundle, LD slot first) issues first: 0..2, completes 12;
    # so the st takes 2..7, completes 17.  halt at 1: cycles 17.
    s = run([ld(0, 0, 120), st(1024, 2048, 300)], HALT)
    assert s.cycles == 17
    assert (s.busy["LD"], s.busy["ST"]) == (2, 5)
    assert (s.ddr_bytes_read, s.ddr_bytes_written) == (120, 300)


def test_dma_queue_full_stalls_issue():
    # Depth 2.  b0 ld 60 B: channel 0..1, completes 11.  b1 ld: 1..2, completes 12.  b2 ld, earliest 2: the queue
    # holds two until 11 -> issues at 11 (9 dma_queue stall), channel 11..12, completes 22.  halt at 12: cycles 22.
    s = run(ld(0, 0, 60), ld(64, 0, 60), ld(128, 0, 60), HALT)
    assert s.cycles == 22
    assert s.stalls == {"semaphore": 0, "structural": 0, "dma_queue": 9}


def test_bundle_with_more_dma_ops_than_the_queue_holds():
    with pytest.raises(SimulationError, match=r"bundle 0: issues 2 DMA operations but the DMA queue holds 1"):
        run([ld(0, 0, 60), st(64, 128, 60)], HALT, target=dataclasses.replace(TARGET, dma_queue_depth=1))


def test_back_to_back_ops_on_one_unit_stall_structurally():
    # b0 lin occ 5 lat 3 at 0: unit busy to 5, complete 8.  b1 lin (other bytes) earliest 1, unit free at 5:
    # 4 structural stall cycles, completes 5 + 4 + 3 = 12.  halt at 6: cycles 12.  LIN busy 5 + 4.
    s = run(lin(0, 64, 8, 5, 3), lin(128, 192, 8, 4, 3), HALT)
    assert s.cycles == 12
    assert s.stalls == {"semaphore": 0, "structural": 4, "dma_queue": 0}
    assert s.busy["LIN"] == 9 and s.utilization("LIN") == pytest.approx(9 / 12)
    assert s.macs == 16


def test_different_units_do_not_stall_each_other():
    # lin occ 5 at 0 and vec occ 5 at 1 overlap; vec completes 1 + 5 + 0 = 6; halt at 2: cycles max(3, 6, 5) = 6.
    s = run(lin(0, 64, 8, 5, 0), vec(128, 192, 8, 5, 0), HALT)
    assert s.cycles == 6 and s.stalls["structural"] == 0


def test_delay_fields_space_out_issue():
    # b0 vec occ 1 at 0 with delay 7: b1 earliest 0 + 1 + 7 = 8; vec occ 2 lat 1 completes 11; halt at 9: cycles 11.
    s = run(Bundle((vec(0, 64, 4, 1, 0),), delay=7), vec(128, 192, 4, 2, 1), HALT)
    assert s.cycles == 11
    assert sum(s.stalls.values()) == 0


def test_halt_with_nothing_in_flight_counts_its_own_cycle():
    # nop with delay 3 at 0; halt at 4; cycles 5.
    assert run(Bundle((), delay=3), HALT).cycles == 5


def test_wait_in_the_same_bundle_as_a_reader_makes_it_safe():
    # b0 ld 64 B (ddr bytes 0..63) to buf 0 on sem 2: completes 2 + 10 = 12.  b1 waits for it and, in the same bundle,
    # lin reads buf[0, 64): the bundle issues at 12, when the load is complete.  lin: occ 1 lat 2 -> 15.
    state = new_state()
    s = run(ld(0, 0, 64, sem=2), [lin(0, 256, 64, 1, 2), wait(2, 1)], HALT, state=state)
    assert s.cycles == 15
    assert np.array_equal(state.buf[256:320], (np.arange(64) + 1).astype(np.uint8))


def test_wait_subtracts_its_count():
    # b0 ld 60 B: complete 11; b1 ld 60 B: 1..2, complete 12; both on sem 1.  b2 wait 1 at 11; b3 wait 1 earliest 12:
    # the second completion (12) satisfies it at once.  halt at 13: cycles 14.
    s = run(ld(0, 0, 60, sem=1), ld(64, 0, 60, sem=1), wait(1, 1), wait(1, 1), HALT)
    assert s.cycles == 14 and s.stalls["semaphore"] == 9
    # A third wait on the spent semaphore can never be satisfied.
    with pytest.raises(SimulationError, match=r"bundle 4, slot CTL: `ctl.wait sem=1, count=1`: deadlock"):
        run(ld(0, 0, 60, sem=1), ld(64, 0, 60, sem=1), wait(1, 1), wait(1, 1), wait(1, 1), HALT)


def test_wait_and_load_in_one_bundle():
    # b0 ld on sem 1: complete 11.  b1 waits on sem 1 and issues a load on sem 2 (at 11: channel 11..12, complete 22);
    # the load cannot satisfy its own bundle's wait.  b2 waits on sem 2 (the wait of b1 subtracted from sem 1 only).
    s = run(ld(0, 0, 60, sem=1), [ld(64, 0, 60, sem=2), wait(1, 1)], wait(2, 1), HALT)
    assert s.cycles == 24 and s.stalls["semaphore"] == (11 - 1) + (22 - 12)
    with pytest.raises(SimulationError, match=r"^bundle 0, slot CTL: .*deadlock"):
        run([ld(64, 0, 60, sem=1), wait(1, 1)], HALT)


def test_wait_for_zero_passes():
    assert run(wait(3, 0), HALT).cycles == 2


def test_functional_effects_land_in_memory():
    # load 16 B, increment them, store them back elsewhere.
    state = new_state()
    run(ld(0, 100, 16, sem=1), [lin(0, 32, 16, 1, 0), wait(1, 1)], Bundle((), delay=2), [st(32, 1000, 16, sem=1)],
        wait(1, 1), HALT, state=state)
    assert np.array_equal(state.ddr[1000:1016], (np.arange(100, 116) + 1).astype(np.uint8))


# ---------------------------------------------------------------------------
# Hazards and errors
# ---------------------------------------------------------------------------
def test_read_of_a_load_destination_without_a_wait_is_a_raw_hazard():
    with pytest.raises(SimulationError) as err:
        run(ld(0, 0, 64, sem=1), Bundle(()), lin(32, 256, 8, 1, 0), wait(1, 1), HALT)
    msg = str(err.value)
    assert msg.startswith("bundle 2, slot LIN: `f.lin src=32, dst=256, n=8, occ=1, lat=0`: RAW hazard")
    assert "(bundle 0, slot LD)" in msg and "f.ld buf=0, ddr=0, n=64, sem=1" in msg
    assert "\n" not in msg


def test_raw_within_one_bundle():
    with pytest.raises(SimulationError, match=r"^bundle 0, slot LIN: .*RAW hazard.*\(bundle 0, slot LD\)"):
        run([ld(0, 0, 64), lin(0, 256, 8, 1, 0)], HALT)


def test_overwriting_a_buffer_an_inflight_store_reads_is_a_war_hazard():
    with pytest.raises(SimulationError, match=r"^bundle 1, slot VEC: .*WAR hazard: writes buf\[0x10, 0x20\).*"
                                              r"\(bundle 0, slot ST\) still reads"):
        run(st(0, 512, 64, sem=1), vec(512, 16, 16, 1, 0), wait(1, 1), HALT)


def test_store_after_its_wait_may_be_overwritten():
    # st completes at 2 + 10 = 12; the wait holds b1 until then, so the vec in b1 may overwrite the bytes.
    s = run(st(0, 512, 64, sem=1), [vec(512, 16, 16, 1, 0), wait(1, 1)], HALT)
    assert s.cycles == 14


def test_write_after_write_in_flight():
    # lin writes buf[64, 72) until 0 + 1 + 5 = 6; vec writes buf[68, 76) at 1.
    with pytest.raises(SimulationError, match=r"^bundle 1, slot VEC: .*WAW hazard: writes buf\[0x44, 0x4c\).*"
                                              r"\(bundle 0, slot LIN\) still writes \(buf\[0x40, 0x48\)\) until cycle "
                                              r"6"):
        run(lin(0, 64, 8, 1, 5), vec(128, 68, 8, 1, 0), HALT)


def test_completed_ops_are_no_longer_hazards():
    # Same program with a delay that lets the lin complete (cycle 6) before the vec issues (0 + 1 + 5 = 6).
    s = run(Bundle((lin(0, 64, 8, 1, 5),), delay=5), vec(64, 68, 8, 1, 0), HALT)
    assert s.cycles == 8


def test_ddr_ranges_are_checked_too():
    # st writes ddr[512, 576) until 12; a load of ddr[540, 600) at 1 reads it: RAW.
    with pytest.raises(SimulationError, match=r"^bundle 1, slot LD: .*RAW hazard: reads ddr\[0x21c, 0x258\)"):
        run(st(0, 512, 64), ld(1024, 540, 60), HALT)


def test_wait_nothing_can_satisfy_is_a_deadlock():
    with pytest.raises(SimulationError, match=r"^bundle 0, slot CTL: `ctl.wait sem=1, count=1`: deadlock: semaphore 1 "
                                              r"is 0 and only 0 operation\(s\) in flight"):
        run(wait(1, 1), HALT)
    with pytest.raises(SimulationError, match=r"^bundle 1, slot CTL: .*deadlock.*only 1 operation"):
        run(ld(0, 0, 8, sem=2), wait(2, 2), HALT)
    # A load on another semaphore does not help.
    with pytest.raises(SimulationError, match=r"^bundle 1, slot CTL: .*deadlock"):
        run(ld(0, 0, 8, sem=3), wait(2, 1), HALT)


def test_semaphore_out_of_range():
    with pytest.raises(SimulationError, match=r"^bundle 0, slot CTL: .*semaphore 5 outside 1\.\.4"):
        run(wait(5, 1), HALT)
    with pytest.raises(SimulationError, match=r"^bundle 0, slot LD: .*semaphore 9 outside 0\.\.4"):
        run(ld(0, 0, 8, sem=9), HALT)


def test_program_without_halt():
    with pytest.raises(SimulationError, match=r"ran off its end after bundle 1 without a ctl.halt"):
        run(vec(0, 64, 4, 1, 0), Bundle(()))
    with pytest.raises(SimulationError, match=r"no bundles"):
        simulate([], new_state(), TARGET, SEMANTICS)


def test_bundles_after_halt_are_not_run():
    s = run(HALT, vec(0, 64, 4, 1, 0))
    assert (s.bundles, s.cycles) == (1, 1)


def test_semantics_errors_name_the_bundle():
    with pytest.raises(SimulationError,
                       match=r"^bundle 1, slot LD: `f.ld buf=8192.*`: buffer range 0x2008 past the end$"):
        run(Bundle(()), ld(8192, 0, 8), HALT)


def test_operation_without_semantics():
    with pytest.raises(SimulationError, match=r"^bundle 0, slot VEC: .*no semantics for f.vec"):
        simulate([Bundle((vec(0, 64, 4, 1, 0),)), Bundle((HALT,))], new_state(), TARGET, {"f.ld": FakeDma(True)})


# ---------------------------------------------------------------------------
# Statistics and trace
# ---------------------------------------------------------------------------
def test_stats_to_dict_is_json():
    s = run(ld(0, 0, 120, sem=1), [lin(0, 256, 8, 3, 1), wait(1, 1)], HALT)
    d = json.loads(json.dumps(s.to_dict()))
    assert d["cycles"] == s.cycles and d["time_s"] == pytest.approx(s.cycles / 250e6)
    assert set(d["units"]) == {"LD", "ST", "LIN", "CONV", "SSM", "VEC"}
    assert d["units"]["LIN"] == {"ops": 1, "busy_cycles": 3, "utilization": pytest.approx(3 / s.cycles)}
    assert d["stalls"]["semaphore"] == 11
    assert d["ddr_bytes_read"] == 120 and d["macs"] == 8
    assert "LIN" in s.format_table()


def test_trace_events():
    trace = Trace(clock_hz=TARGET.clock_hz, program="t")
    # lin issues at 12 and completes 16; the delay of 3 lets the st read its result at 16.
    run(ld(0, 0, 120, sem=1), Bundle((lin(0, 256, 8, 3, 1), wait(1, 1)), delay=3), st(256, 2048, 8), HALT,
        trace=trace)
    doc = json.loads(trace.to_json())
    assert "cycle" in doc["otherData"]["time_unit"] and doc["otherData"]["clock_hz"] == 250e6
    names = {e["tid"]: e["args"]["name"] for e in doc["traceEvents"] if e["ph"] == "M" and e["name"] == "thread_name"}
    assert sorted(names.values()) == sorted(TRACKS)
    ops = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    by_track = {}
    for e in ops:
        by_track.setdefault(names[e["tid"]], []).append(e)
    assert [(e["name"], e["args"]["text"], e["ts"], e["dur"], e["args"]["bundle"]) for e in by_track["LD"]] == [
        ("f.ld", "f.ld buf=0, ddr=0, n=120, sem=1", 0, 2, 0)]
    assert [(e["ts"], e["dur"], e["args"]["bundle"]) for e in by_track["LIN"]] == [(12, 3, 1)]
    # st at 16: channel 16..17.
    assert [(e["ts"], e["dur"]) for e in by_track["ST"]] == [(16, 1)]
    assert [(e["name"], e["args"]["bytes"], e["ts"]) for e in by_track["DDR"]] == [("read", 120, 0), ("write", 8, 16)]
    for e in ops:
        assert isinstance(e["ts"], int) and isinstance(e["dur"], int) and e["pid"] == 1
