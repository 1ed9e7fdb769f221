"""The execution-backend interface (simulator.runtime), exercised through `ExecutionBackend` only.

The program is built from fake operations with their own specs and fake unit
semantics (a DMA copy and a byte-wise increment), so these tests check the
runtime's contract (DDR image, input validation, outputs, states, counters)
independently of the real instruction table.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pytest

from fastmamba.isa.container import Binary, Program, TensorDesc
from fastmamba.isa.errors import InputError
from fastmamba.isa.instructions import Bundle, FieldSpec, Instruction, OpSpec
from fastmamba.simulator.effects import Footprint, Range
from fastmamba.simulator.runtime import ExecutionBackend, RunResult, SimulatorBackend


@dataclass(frozen=True)
class FakeTarget:
    name: str = "fake"
    clock_hz: float = 100e6
    buffer_bytes: int = 1024
    dma_bytes_per_cycle: float = 16.0
    dma_latency: int = 4
    dma_queue_depth: int = 4
    semaphores: int = 2

    def digest(self) -> bytes:
        return hashlib.sha256(repr(self).encode()).digest()


TARGET = FakeTarget()
SPECS = {name: OpSpec(name, 0x10, slot, tuple(FieldSpec(f, 32) for f in fields), "test op") for name, slot, fields in (
    ("f.ld", "LD", ("buf", "ddr", "n", "sem")),
    ("f.st", "ST", ("buf", "ddr", "n", "sem")),
    ("f.inc", "VEC", ("addr", "n")),
)}


@dataclass(frozen=True, eq=False)
class Op:
    op: str
    args: dict

    spec = property(lambda self: SPECS[self.op])
    slot = property(lambda self: SPECS[self.op].slot)

    def __getitem__(self, name):
        return self.args[name]


class Copy:
    def __init__(self, load: bool):
        self.load = load

    def footprint(self, i, state, target):
        buf, ddr = Range("buf", i["buf"], i["buf"] + i["n"]), Range("ddr", i["ddr"], i["ddr"] + i["n"])
        return Footprint(reads=(ddr,) if self.load else (buf,), writes=(buf,) if self.load else (ddr,),
                         ddr_bytes=i["n"])

    def execute(self, i, state, target):
        b, d, n = i["buf"], i["ddr"], i["n"]
        if self.load:
            state.buf[b:b + n] = state.ddr[d:d + n]
        else:
            state.ddr[d:d + n] = state.buf[b:b + n]


class Increment:
    def footprint(self, i, state, target):
        r = Range("buf", i["addr"], i["addr"] + i["n"])
        return Footprint(reads=(r,), writes=(r,), occupancy=2, latency=1, macs=i["n"])

    def execute(self, i, state, target):
        state.buf[i["addr"]:i["addr"] + i["n"]] += 1


SEMANTICS = {"f.ld": Copy(True), "f.st": Copy(False), "f.inc": Increment()}


def _wait(n):
    return Instruction("ctl.wait", {"sem": 1, "count": n})


def _program(name, src, dst, n, tensors):
    """Load n bytes from src, add 1 to each byte, store them at dst."""
    return Program(name, ddr_size=256, tensors=tensors, bundles=(
        Bundle((Op("f.ld", {"buf": 0, "ddr": src, "n": n, "sem": 1}),)),
        Bundle((Op("f.inc", {"addr": 0, "n": n}), _wait(1)), delay=2),
        Bundle((Op("f.st", {"buf": 0, "ddr": dst, "n": n, "sem": 1}),)),
        Bundle((_wait(1),)),
        Bundle((Instruction("ctl.halt"),)),
    ))


# "step": x (i16[2, 2] at 64) + 1 per byte -> y (at 128); the state h (i32[2] at 96) is incremented in place.
# "ship": the input w ships data in the constant image (bytes 0..7 = 10..17) and is copied to out at 200.
BINARY = Binary(
    const_image=bytes(range(10, 18)),
    target_digest=TARGET.digest(),
    programs=(
        Program("step", ddr_size=256, tensors=(
            TensorDesc("x", "input", 64, (2, 2), "i16"),
            TensorDesc("h", "state", 96, (2,), "i32"),
            TensorDesc("y", "output", 128, (2, 2), "i16"),
        ), bundles=(
            Bundle((Op("f.ld", {"buf": 0, "ddr": 64, "n": 8, "sem": 1}),)),
            Bundle((Op("f.ld", {"buf": 8, "ddr": 96, "n": 8, "sem": 1}),)),
            Bundle((Op("f.inc", {"addr": 0, "n": 16}), _wait(2)), delay=2),
            Bundle((Op("f.st", {"buf": 0, "ddr": 128, "n": 8, "sem": 1}),)),
            Bundle((Op("f.st", {"buf": 8, "ddr": 96, "n": 8, "sem": 1}),)),
            Bundle((_wait(2),)),
            Bundle((Instruction("ctl.halt"),)),
        )),
        _program("ship", 0, 200, 8, (TensorDesc("w", "input", 0, (8,), "u8"), TensorDesc("out", "output", 200, (8,),
                                                                                         "u8"))),
    ),
)


@pytest.fixture
def backend() -> ExecutionBackend:
    b = SimulatorBackend(TARGET, SEMANTICS)
    b.load(BINARY)
    return b


def test_run_writes_inputs_and_reads_outputs_and_states(backend):
    x = np.array([[1, 2], [3, 0x00FF]], np.int16)
    h = np.array([5, -1], np.int32)
    result = backend.run("step", {"x": x, "h": h})
    assert isinstance(result, RunResult) and result.program == "step"
    # +1 per byte: 1 -> 0x0101, 0x00ff -> 0x0100 (the low byte wraps, the high byte still gets +1).
    assert np.array_equal(result.outputs["y"], np.array([[0x0102, 0x0103], [0x0104, 0x0100]], np.int16))
    assert result.outputs["y"].dtype == np.int16 and set(result.outputs) == {"y"}
    assert np.array_equal(result.states["h"], np.array([0x01010106, 0], np.int32))
    assert result.stats.cycles > 0 and result.stats.ddr_bytes_read == 16 and result.stats.ddr_bytes_written == 16
    assert result.trace is None


def test_states_carry_from_one_run_to_the_next(backend):
    x = np.zeros((2, 2), np.int16)
    first = backend.run("step", {"x": x, "h": np.zeros(2, np.int32)})
    second = backend.run("step", {"x": x, "h": first.states["h"]})
    assert np.array_equal(second.states["h"], np.full(2, 0x02020202, np.int32))


def test_inputs_not_given_keep_the_image_bytes(backend):
    # Not given: x and h read as zero (the image does not reach them).
    result = backend.run("step")
    assert np.array_equal(result.outputs["y"], np.full((2, 2), 0x0101, np.int16))
    # The ship program's w lies in the constant image: its data is the shipped bytes unless overwritten.
    assert list(backend.run("ship").outputs["out"]) == list(range(11, 19))
    assert list(backend.run("ship", {"w": np.arange(8, dtype=np.uint8)}).outputs["out"]) == list(range(1, 9))
    # Each run starts from a fresh image.
    assert list(backend.run("ship").outputs["out"]) == list(range(11, 19))


def test_trace_on_request(backend):
    result = backend.run("step", trace=True)
    assert result.trace is not None and result.trace.program == "step"
    events = result.trace.to_dict()["traceEvents"]
    tracks = {e["tid"]: e["args"]["name"] for e in events if e["name"] == "thread_name"}
    on = [tracks[e["tid"]] for e in events if e["ph"] == "X"]
    assert len([t for t in on if t not in ("issue", "stall")]) == 5 + 4  # ops, plus DDR track
    assert on.count("issue") == len(backend.binary.program("step").bundles)  # one issue range per bundle


@pytest.mark.parametrize("inputs, message", [
    ({"z": np.zeros(2)}, r"program step has no input or state 'z' \(has: x, h\)"),
    ({"y": np.zeros((2, 2), np.int16)}, r"'y' is an output, not an input or state"),
    ({"x": np.zeros((2, 2), np.int32)}, r"input 'x' must have dtype i16 \(int16\), got int32"),
    ({"x": np.zeros((4,), np.int16)}, r"input 'x' must have shape \(2, 2\), got \(4,\)"),
    ({"h": [1, 2]}, r"state 'h' must have dtype i32 \(int32\), got int64"),
])
def test_bad_inputs_are_rejected_by_name(backend, inputs, message):
    with pytest.raises(InputError, match=message):
        backend.run("step", inputs)


def test_unknown_program(backend):
    with pytest.raises(InputError, match=r"no program 'decode' \(has: step, ship\)"):
        backend.run("decode")


def test_binary_for_another_target_is_rejected():
    other = SimulatorBackend(FakeTarget(clock_hz=200e6), SEMANTICS)
    with pytest.raises(InputError, match=r"built for another target \(digest [0-9a-f]{16}…\); the chosen target fake "
                                         r"has digest [0-9a-f]{16}…"):
        other.load(BINARY)


def test_run_before_load():
    with pytest.raises(InputError, match="no binary loaded"):
        SimulatorBackend(TARGET, SEMANTICS).run("step")


def test_big_endian_input_is_stored_little_endian(backend):
    x = np.array([[1, 2], [3, 4]], dtype=">i2")
    assert np.array_equal(backend.run("step", {"x": x}).outputs["y"], np.array([[1, 2], [3, 4]]) + 0x0101)
