"""`RtlBackend`: the Verilated RTL machine as an execution backend (the simulator's interface,
docs/ARCHITECTURE.md §6).

Place in the flow: beside `fastmamba.simulator.runtime.SimulatorBackend`, with
the same methods (`load`, `binary`, `run(program, inputs)`), so that tools and
tests run a `.fmb` on either; `fastmamba sim --backend rtl` uses it.  It does
not import the simulator: the run's DDR image is built the same way (the
binary's constant image at 0, zeros up to `ddr_size`, inputs at their
descriptors), the library from `hardware.build` runs the program to HALT in
one ctypes call, and outputs and states are read back from the DDR image.

`RtlRunResult.stats` is an `RtlStats`: the counters the RTL keeps, with the
simulator's JSON keys (`to_dict`) plus `rtl_cycles` (every clock from start to
done).  An error the RTL latches is an `RtlError` naming the bundle, the slot
and the instruction.  Operations of units the RTL does not have yet (VEC)
are refused before the run.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from fastmamba.isa.encoding import encode_bundles
from fastmamba.isa.errors import FastmambaError, InputError
from fastmamba.isa.formatting import format_instruction
from fastmamba.isa.host import HostBackend, initial_ddr, read_results
from fastmamba.isa.instructions import SLOTS

from fastmamba.hardware import build
from fastmamba.hardware.machine import COUNTERS, DMA_STAGES, ERRORS, check_target, machine_ops
from fastmamba.hardware.regions import region_forms, flag_fields

UNITS = tuple(s for s in SLOTS if s != "CTL")
STALL_CAUSES = ("semaphore", "structural", "dma_queue")
# The smallest instruction memory built (64-bit words); a longer program gets the next power of two.  The
# bundled model's programs on `small` take about 20.7 k words: one build serves them and the unit tests.
IMEM_WORDS = 32768
IMEM_WORDS_MAX = 1 << 20  # the longest program (in 64-bit words) the RTL is built for
DEFAULT_MAX_CYCLES = 200_000_000


class RtlError(FastmambaError):
    """The RTL stopped with an error (hazard, bad address, deadlock, bad index): one line naming the bundle."""


@dataclass
class RtlStats:
    clock_hz: float
    cycles: int = 0
    rtl_cycles: int = 0
    bundles: int = 0
    ops: int = 0
    macs: int = 0
    ddr_bytes_read: int = 0
    ddr_bytes_written: int = 0
    busy: dict = field(default_factory=lambda: dict.fromkeys(UNITS, 0))
    ops_per_unit: dict = field(default_factory=lambda: dict.fromkeys(UNITS, 0))
    stalls: dict = field(default_factory=lambda: dict.fromkeys(STALL_CAUSES, 0))

    @property
    def seconds(self) -> float:
        return self.cycles / self.clock_hz

    def to_dict(self) -> dict:
        """The simulator's `Stats.to_dict` keys, plus `rtl_cycles`."""
        cyc = self.cycles
        return {
            "cycles": cyc, "time_s": self.seconds, "clock_hz": self.clock_hz, "bundles": self.bundles,
            "ops": self.ops, "macs": self.macs,
            "units": {u: {"ops": self.ops_per_unit[u], "busy_cycles": self.busy[u],
                          "utilization": self.busy[u] / cyc if cyc else 0.0} for u in UNITS},
            "stalls": dict(self.stalls), "ddr_bytes_read": self.ddr_bytes_read,
            "ddr_bytes_written": self.ddr_bytes_written,
            "ddr_channel_utilization": (self.busy["LD"] + self.busy["ST"]) / cyc if cyc else 0.0,
            "rtl_cycles": self.rtl_cycles,
        }

    def format_table(self) -> str:
        lines = [f"cycles            {self.cycles:>14,}   ({self.seconds * 1e3:.6g} ms at {self.clock_hz / 1e6:g} MHz)",
                 f"RTL clock cycles  {self.rtl_cycles:>14,}   (start to done, the drain included)",
                 f"bundles issued    {self.bundles:>14,}", f"ops issued        {self.ops:>14,}",
                 f"int MACs          {self.macs:>14,}", f"DDR bytes read    {self.ddr_bytes_read:>14,}",
                 f"DDR bytes written {self.ddr_bytes_written:>14,}", "",
                 f"{'unit':<6}{'ops':>12}{'busy cycles':>16}{'utilization':>13}"]
        for u in UNITS:
            util = self.busy[u] / self.cycles if self.cycles else 0.0
            lines.append(f"{u:<6}{self.ops_per_unit[u]:>12,}{self.busy[u]:>16,}{util:>12.1%}")
        lines += ["", f"{'stall cause':<14}{'cycles':>14}"]
        lines += [f"{c:<14}{self.stalls[c]:>14,}" for c in STALL_CAUSES]
        return "\n".join(lines)


@dataclass
class RtlRunResult:
    program: str
    outputs: dict
    states: dict
    stats: RtlStats
    trace: None = None


class _Library:
    def __init__(self, path):
        self.lib = ctypes.CDLL(str(path))
        u64, p64 = ctypes.c_uint64, ctypes.POINTER(ctypes.c_uint64)
        self.lib.fm_run.argtypes = [p64, u64, ctypes.POINTER(ctypes.c_uint8), u64, u64, u64, u64, p64]
        self.lib.fm_run.restype = ctypes.c_int


_LIBRARIES: dict = {}


def imem_words(words: int) -> int:
    """The instruction memory (64-bit words) of the machine built for a program of `words` words: IMEM_WORDS, or
    the next power of two above it (a build parameter: each size is its own cached Verilog and library)."""
    if words > IMEM_WORDS_MAX:
        raise InputError(f"the program has {words} instruction words; the RTL is built for at most {IMEM_WORDS_MAX}")
    return max(IMEM_WORDS, 1 << max(0, words - 1).bit_length())


def _library(target, words: int = IMEM_WORDS) -> _Library:
    key = (target.digest(), imem_words(words))
    lib = _LIBRARIES.get(key)
    if lib is None:
        lib = _LIBRARIES[key] = _Library(build.library(target, key[1]))
    return lib


def prepare(target, words: int = IMEM_WORDS) -> None:
    """Build (or find in the cache) and load the machine for `target` and programs of `words` instruction words,
    so that later runs in this process pay no build; it stays loaded even if hardware/ changes meanwhile."""
    check_rtl_target(target)
    _library(target, words)


def rtl_ops() -> set:
    """The operations the RTL machine runs: DMA, control and the ops of the compute units it has."""
    return set(machine_ops())


def check_rtl_target(target) -> None:
    """InputError (one line, the reason) unless the RTL can be built for `target`."""
    try:
        check_target(target)
    except ValueError as exc:
        raise InputError(f"target {target.name}: {exc}") from None


def check_bundles(bundles) -> np.ndarray:
    """The program's instruction words, once every operation is one the RTL runs and it fits the largest
    instruction memory; else InputError naming the first operation it lacks."""
    supported = rtl_ops()
    for index, bundle in enumerate(bundles):
        for op in bundle.ops:
            if op.op not in supported:
                raise InputError(f"bundle {index}, slot {op.slot}: not implemented in the RTL yet: {op.op}")
    words = np.frombuffer(encode_bundles(bundles), dtype="<u8").copy()
    imem_words(words.size)
    return words


def run_bundles(target, bundles, ddr: np.ndarray, max_cycles: int = DEFAULT_MAX_CYCLES) -> RtlStats:
    """Run `bundles` on the RTL machine with `ddr` (a uint8 image, modified in place); return its counters.
    The machine's instruction memory is sized for the program (`imem_words`)."""
    check_rtl_target(target)
    words = check_bundles(bundles)
    lib = _library(target, words.size)
    out = (ctypes.c_uint64 * (len(COUNTERS) + 6))()
    ddr = np.ascontiguousarray(ddr)
    lat = int(target.dma_latency) - DMA_STAGES
    status = lib.lib.fm_run(words.ctypes.data_as(ctypes.POINTER(ctypes.c_uint64)), words.size,
                            ddr.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)), ddr.size, lat, lat,
                            max_cycles, out)
    values = list(out)
    counters = dict(zip(COUNTERS, values[:len(COUNTERS)]))
    err, err_bundle, err_slot, info0, info1, _ = values[len(COUNTERS):]
    if status == 2:
        raise RtlError(f"RTL harness: DDR access at {info0:#x} outside the image of {ddr.size:#x} bytes")
    if err:
        raise RtlError(describe_error(bundles, ERRORS[err], err_bundle, err_slot, info0, info1))
    if status == 1:
        raise RtlError(f"RTL: no halt within {max_cycles:,} cycles (bundle {counters['bundles']} was next)")
    stats = RtlStats(clock_hz=float(target.clock_hz))
    for name in ("cycles", "rtl_cycles", "bundles", "ops", "macs", "ddr_bytes_read", "ddr_bytes_written"):
        setattr(stats, name, int(counters[name]))
    for u in UNITS:
        stats.busy[u] = int(counters.get(f"busy_{u}", 0))
        stats.ops_per_unit[u] = int(counters.get(f"ops_{u}", 0))
    for c in STALL_CAUSES:
        stats.stalls[c] = int(counters[f"stall_{c}"])
    return stats


def _region_name(op, index: int) -> str:
    """The operand field of an op's `index`-th region (its flags fixed by the instruction)."""
    flags = tuple(int(op[f]) for f in flag_fields(op.op))
    forms = dict(region_forms(op.op))[flags]
    return forms[index].field if index < len(forms) else f"region {index}"


def describe_error(bundles, kind: str, b: int, slot: int, info0: int, info1: int) -> str:
    """One line: the bundle, the slot, the instruction and what the RTL found."""
    bundle = bundles[b] if b < len(bundles) else None
    slot_name = SLOTS[slot] if slot < len(SLOTS) else "?"
    op = bundle.op_in(slot_name) if bundle is not None else None
    where = f"RTL: bundle {b}, slot {slot_name}" + (f": `{format_instruction(op)}`" if op is not None else "")
    if kind in ("RAW", "WAR", "WAW"):
        other = bundles[info0].op_in(SLOTS[info1]) if info0 < len(bundles) and info1 < len(SLOTS) else None
        text = f"`{format_instruction(other)}` " if other is not None else ""
        verb = {"RAW": "reads bytes that", "WAR": "writes bytes that", "WAW": "writes bytes that"}[kind]
        their = {"RAW": "still writes", "WAR": "still reads", "WAW": "still writes"}[kind]
        return (f"{where}: {kind} hazard: {verb} {text}(bundle {info0}, slot {SLOTS[info1]}) {their} "
                f"(the unit has not completed it)")
    if kind == "out_of_range":
        return f"{where}: field {_region_name(op, info0)}: bytes up to {info1:#x} lie outside the memory"
    if kind == "misaligned":
        return f"{where}: field {_region_name(op, info0)} is not aligned to its element size"
    if kind == "ldg_index":
        signed = info1 - (1 << 64) if info1 >> 63 else info1
        limit = op["limit"] if op is not None else "?"
        return f"{where}: index idx[{info0}] = {signed} outside [0, limit = {limit})"
    if kind == "deadlock":
        return f"{where}: deadlock: no operation in flight can bring semaphore {info0} to the count"
    if kind == "semaphore":
        return f"{where}: semaphore {info0} outside the target's semaphores"
    if kind == "lin_block":
        return f"{where}: field hlog2: the Hadamard block 2^{info0} exceeds the target's or does not divide k"
    if kind == "conv_kw":
        return f"{where}: field kw = {info0} outside the target's kernel widths"
    if kind == "vec_fields":
        return (f"{where}: vec fields: a pitch below cols, add/mul/gate without b, or rmsnorm's group not dividing "
                f"cols; or two rmsnorms in one chain (the RTL's VEC unit runs one)")
    if kind == "ssm_dt_frac":
        return f"{where}: field dt_frac = {info0} outside [log2 nla_segments, nla_bits - 1]"
    if kind == "zero_count":
        return f"{where}: a count field is 0"
    if kind == "run_off_end":
        return f"RTL: the program ran off its end after bundle {b - 1} without a ctl.halt"
    return f"{where}: {kind.replace('_', ' ')}"


class RtlBackend(HostBackend):
    """The RTL machine (Verilator) as an execution backend; the interface of `SimulatorBackend`."""

    def check(self, program: str) -> None:
        """InputError (one line) unless the RTL can run `program` of the loaded binary: the target is one the RTL
        builds for and every operation is one it has; checked before any run (`run` checks it again)."""
        check_rtl_target(self.target)
        try:
            check_bundles(self.binary.program(program).bundles)
        except InputError as exc:
            raise InputError(f"program {program}: {exc}") from None

    def run(self, program: str, inputs: Mapping[str, np.ndarray] | None = None, *, trace: bool = False,
            max_cycles: int = DEFAULT_MAX_CYCLES) -> RtlRunResult:
        if trace:
            raise InputError("the RTL backend writes no trace (use the simulator's --trace)")
        binary = self.binary
        prog = binary.program(program)
        ddr = initial_ddr(binary, prog, inputs)
        stats = run_bundles(self.target, prog.bundles, ddr, max_cycles)
        outputs, states = read_results(prog, ddr)
        return RtlRunResult(prog.name, outputs, states, stats)
