"""Chrome / Perfetto trace-event output of simulated runs (`fastmamba sim --trace`, `fastmamba profile`).

Place in the flow: an optional observer of `simulator.engine` (the engine
calls `operation`, `stall` and `issue`); open the JSON in
https://ui.perfetto.dev or chrome://tracing to see where the cycles go.
`compiler.profile` reads the same records back for its tables and plots.

Format: the JSON object form of the Trace Event Format (docs/PROFILE.md has
the whole list).  One process per run (`Timeline` puts several runs, e.g.
prefill and decode, one after another on one timeline), one thread (track)
per unit (LD, ST, LIN, CONV, SSM, VEC), one for the DDR channel, one for
stalls and one for the bundles' issue ranges:

- each operation is a complete event (`"ph": "X"`) named by its opcode
  (`lin`, `ld`, `vec.argmax`), `args` holding the instruction text, the
  bundle index, the slot, its issue/complete cycles and, from the binary's
  debug info, the IR op (`loc`), its kind and its layer (for an operation whose
  text names no layer, that of the first operation reading what it wrote, if
  that one's text names one: `layer_from` "consumer").  Compute units show
  an operation's occupancy (from issue); LD and ST show the cycles their
  transfer holds the DDR channel, and the DDR track shows every transfer
  with its direction and size;
- a stall is a complete event on the `stall` track named by its cause
  (`semaphore`, `structural`, `dma_queue`: `simulator.stats`), from the
  cycle the bundle could first issue to the cycle the cause let go;
- counters (`"ph": "C"`): `DDR bandwidth` (args `read`, `written`: bytes per
  cycle averaged over windows of `window` cycles, the last one shorter; each
  value holds until the next event, so value x duration sums to the bytes
  moved) and `buffer bytes live` (bytes of the on-chip buffer holding a value
  some later operation reads: from the issue of the operation writing it to
  the completion of its last reader).

**Time unit: cycles.**  The format's `ts`/`dur` are nominally microseconds;
here they are cycles, so 1 µs in the viewer is 1 cycle.  The metadata
(`otherData`) says so and records the clock to convert.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fastmamba.isa.fileio import write_atomic
from fastmamba.simulator.stats import UNITS

DDR_TRACK = "DDR"
STALL_TRACK = "stall"
ISSUE_TRACK = "issue"
TRACKS: tuple[str, ...] = UNITS + (DDR_TRACK, STALL_TRACK, ISSUE_TRACK)
PROCESS_ID = 1
DDR_COUNTER = "DDR bandwidth"
BUFFER_COUNTER = "buffer bytes live"
DEFAULT_WINDOW = 256
"""Cycles per DDR-bandwidth window (a power of two, so bytes / window is exact in binary)."""
DEBUG_SEPARATOR = "; "
"""How the emitter joins the debug texts of a bundle's operations (compiler/backend/emit.py)."""
CONTROL_SLOT = "CTL"

_IR_OP = re.compile(r"^([a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*)")
_LAYER = re.compile(r"\blayers?[ .](\d+)\b")


@dataclass(frozen=True)
class Location:
    """What the binary's debug info says an operation came from."""

    loc: str  # the debug text of the operation ("" when the binary has none)
    kind: str  # the IR op's name, or for a transfer without one its text with indices removed
    layer: int | None  # the model layer, when the text names one


def op_kind(text: str) -> str:
    """The IR op kind of a debug text: `mamba_quant.qlinear`, `mamba_quant.qlinear weights` (its weight loads), or
    for transfers the compiler names without an IR op, the text without layer numbers and slices."""
    m = _IR_OP.match(text)
    if m:
        return m.group(1) + (" weights" if text.endswith(" weights") else "")
    kind = re.sub(r"\blayer \d+ |\[\d+:\d+\]| heads \d+\+\d+", "", text).strip()
    return kind or "(no debug info)"


def locate(text: str) -> Location:
    m = _LAYER.search(text)
    return Location(text, op_kind(text) if text else "(no debug info)", int(m.group(1)) if m else None)


def op_locations(bundle_text: str, slots: Sequence[str]) -> list[Location]:
    """The locations of a bundle's operations (`slots`: their slots in order) from the bundle's debug text.

    The emitter joins the texts of the operations that have one (every operation but `ctl.*`) with "; "; when the
    parts do not match those operations one to one, every operation gets the whole text."""
    work = [s for s in slots if s != CONTROL_SLOT]
    parts = bundle_text.split(DEBUG_SEPARATOR) if bundle_text else []
    out, k = [], 0
    for slot in slots:
        if slot == CONTROL_SLOT:
            out.append(locate(""))
        elif len(parts) == len(work):
            out.append(locate(parts[k]))
            k += 1
        else:
            out.append(locate(bundle_text))
    return out


class _BufferLiveness:
    """Bytes of the buffer live over time: a byte holds a live value from the issue of the operation writing it
    to the completion of the last operation reading that value (never-read values are not live)."""

    def __init__(self, size: int):
        self.written = np.full(size, -1, np.int64)  # issue cycle of the value's writer, -1: never written
        self.read = np.full(size, -1, np.int64)  # completion of its last reader so far
        self.deltas: dict[int, int] = {}

    def _close(self, lo: int, hi: int, now: int | None) -> None:
        """End the live intervals of bytes [lo, hi) (at `now` when a write replaces them, else at their last read)."""
        w, r = self.written[lo:hi], self.read[lo:hi]
        if now is not None:
            r = np.minimum(r, now)  # the engine forbids overwriting what another operation still reads
        key = np.where((w >= 0) & (r > w), 1, 0)
        if not key.any():
            return
        change = np.flatnonzero((np.diff(w) != 0) | (np.diff(r) != 0) | (np.diff(key) != 0)) + 1
        starts = np.concatenate(([0], change))
        stops = np.concatenate((change, [w.size]))
        for a, b in zip(starts.tolist(), stops.tolist()):
            if key[a]:
                t0, t1, n = int(w[a]), int(r[a]), b - a
                self.deltas[t0] = self.deltas.get(t0, 0) + n
                self.deltas[t1] = self.deltas.get(t1, 0) - n

    def access(self, regions, issue: int, complete: int) -> None:
        for reg in regions:
            if reg.space != "buf" or reg.access == "w":
                continue
            for row in range(reg.rows):
                lo = reg.base + row * reg.stride
                np.maximum(self.read[lo:lo + reg.row_bytes], complete, out=self.read[lo:lo + reg.row_bytes])
        for reg in regions:
            if reg.space != "buf" or reg.access == "r":
                continue
            for row in range(reg.rows):
                lo = reg.base + row * reg.stride
                hi = lo + reg.row_bytes
                self._close(lo, hi, issue)
                self.written[lo:hi] = issue
                self.read[lo:hi] = -1

    def steps(self) -> list[tuple[int, int]]:
        """(cycle, live bytes from then on), one per change."""
        self._close(0, self.written.size, None)
        self.written[:] = -1
        out, live = [], 0
        for t in sorted(self.deltas):
            if self.deltas[t]:
                live += self.deltas[t]
                out.append((t, live))
        self.deltas = {}
        return out


class _LayerByConsumer:
    """Layers for operations whose debug text names none (a layer's input norm, its activations): the layer of
    the first later operation reading buffer bytes the operation wrote, when that one's text names a layer (the
    embedding, first read by the layer-less norm, keeps none)."""

    def __init__(self, size: int):
        self.writer = np.zeros(size, np.int32)  # the mark (1, 2, ...) of the layer-less operation whose value a byte
        self.open: dict[int, dict] = {}  # holds (0: none); mark -> that operation's args, until a consumer names one
        self.count = 0

    def access(self, regions, args: dict) -> None:
        layer = args["layer"]
        if self.open:
            for reg in regions:
                if reg.space != "buf" or reg.access == "w":
                    continue
                for row in range(reg.rows):
                    lo = reg.base + row * reg.stride
                    seg = self.writer[lo:lo + reg.row_bytes]
                    if seg.any():
                        for mark in np.unique(seg[seg > 0]).tolist():
                            found = self.open.pop(mark, None)
                            if found is not None and layer is not None:
                                found["layer"], found["layer_from"] = layer, "consumer"
        mark = 0  # what the bytes this operation writes now hold: a value of a layer-less operation, or not
        if layer is None:
            self.count += 1
            mark = self.count
            self.open[mark] = args
        for reg in regions:
            if reg.space != "buf" or reg.access == "r":
                continue
            for row in range(reg.rows):
                lo = reg.base + row * reg.stride
                self.writer[lo:lo + reg.row_bytes] = mark


class Trace:
    """One run's trace: the engine's observer; `to_dict()` renders it (one process), `Timeline` several."""

    def __init__(self, clock_hz: float, program: str = "", debug: Mapping[int, str] | None = None,
                 buffer_bytes: int | None = None, window: int = DEFAULT_WINDOW):
        self.clock_hz = clock_hz
        self.program = program
        self.debug = dict(debug or {})
        self.window = window
        self.events: list[dict] = []  # complete events on tracks; "tid" the track name until rendered
        self.bundle_issue: dict[int, tuple[int, int]] = {}  # bundle -> (earliest issue cycle, issue cycle)
        self.transfers: list[tuple[str, int, int, int]] = []  # (LD|ST, start, cycles, bytes)
        self.end = 0  # the run's last cycle seen (its cycle count once `finish` ran)
        self.error = ""  # the message of the error that stopped the run, if one did
        self._liveness = _BufferLiveness(int(buffer_bytes)) if buffer_bytes else None
        self._layers = _LayerByConsumer(int(buffer_bytes)) if buffer_bytes else None
        self._live_steps: list[tuple[int, int]] | None = None
        self._locations: dict[int, list[Location]] = {}

    # --- what the engine calls ---
    def complete(self, track: str, name: str, start: int, duration: int, args: dict) -> None:
        """Record one slice on `track` from cycle `start` for `duration` cycles."""
        self.events.append({"name": name, "ph": "X", "track": track, "ts": start, "dur": duration, "args": args})
        self.end = max(self.end, start + duration)

    def location(self, bundle: int, ops: Sequence, index: int) -> Location:
        """The debug-info location of operation `index` of a bundle (`ops`: the bundle's operations)."""
        locs = self._locations.get(bundle)
        if locs is None:
            locs = self._locations[bundle] = op_locations(self.debug.get(bundle, ""), [o.slot for o in ops])
        return locs[index]

    def operation(self, bundle: int, ops: Sequence, index: int, text: str, start: int, duration: int, issue: int,
                  complete: int, **extra) -> None:
        """Operation `index` of `bundle` (`ops` its operations): it holds its unit (or the DDR channel) from
        `start` for `duration` cycles, issued at `issue`, complete at `complete`; `extra`: bytes or macs."""
        op = ops[index]
        loc = self.location(bundle, ops, index)
        args = {"text": text, "bundle": bundle, "slot": op.slot, "issue": issue, "complete": complete,
                "loc": loc.loc, "kind": loc.kind, "layer": loc.layer, **extra}
        self.complete(op.slot, op.op, start, duration, args)
        if op.slot in ("LD", "ST"):
            nbytes = int(extra.get("bytes", 0))
            self.transfers.append((op.slot, start, duration, nbytes))
            self.complete(DDR_TRACK, "read" if op.slot == "LD" else "write", start, duration,
                          {"bundle": bundle, "bytes": nbytes, "text": text})
        regions = getattr(op, "regions", None)  # an instruction of the ISA's table knows the bytes it touches
        if self._liveness is not None and regions is not None:
            self._liveness.access(regions(), issue, complete)
        if self._layers is not None and regions is not None:
            self._layers.access(regions(), args)
        self.end = max(self.end, complete)

    def stall(self, cause: str, bundle: int, start: int, until: int) -> None:
        if until > start:
            self.complete(STALL_TRACK, cause, start, until - start, {"bundle": bundle})

    def issue(self, bundle: int, ready: int, now: int) -> None:
        """Bundle `bundle` could issue from `ready` and issued at `now`."""
        self.bundle_issue[bundle] = (ready, now)
        self.end = max(self.end, now + 1)

    def finish(self, cycles: int | None = None) -> None:
        """The run ended after `cycles` cycles (default: the last cycle seen, for a run an error stopped); the
        buffer's liveness is settled and its per-byte arrays released."""
        if cycles is not None:
            self.end = cycles
        self.buffer_live()
        self._liveness = self._layers = None

    # --- derived series ---
    def ddr_windows(self) -> list[tuple[int, int, int, int]]:
        """(start, cycles, bytes read, bytes written) per window of the run (bytes of a transfer spread evenly over
        the cycles it holds the channel, in integers: its first c cycles carry floor(bytes * c / cycles))."""
        w = self.window
        n = max(1, -(-self.end // w))
        read, written = [0] * n, [0] * n
        for slot, start, cycles, nbytes in self.transfers:
            into = read if slot == "LD" else written
            if cycles <= 0:
                into[min(start // w, n - 1)] += nbytes
                continue
            t = start
            while t < start + cycles:
                k = t // w
                t1 = min(start + cycles, (k + 1) * w)
                into[min(k, n - 1)] += (nbytes * (t1 - start)) // cycles - (nbytes * (t - start)) // cycles
                t = t1
        return [(k * w, min(w, max(1, self.end - k * w)), read[k], written[k]) for k in range(n)]

    def buffer_live(self) -> list[tuple[int, int]]:
        """(cycle, live buffer bytes from then on), at each change (empty without buffer tracking)."""
        if self._live_steps is None and self._liveness is not None:
            self._live_steps = self._liveness.steps()
        return self._live_steps or []

    # --- rendering ---
    def render(self, pid: int, offset: int, name: str) -> list[dict]:
        """The run's events as one process `pid` named `name`, its cycles shifted by `offset`."""
        tids = {t: i for i, t in enumerate(TRACKS, start=1)}
        out = [{"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": name}},
               {"name": "process_sort_index", "ph": "M", "pid": pid, "tid": 0, "args": {"sort_index": pid}}]
        for track, tid in tids.items():
            out.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": track}})
            out.append({"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": tid, "args": {"sort_index": tid}})
        for e in self.events:
            out.append({"name": e["name"], "ph": "X", "pid": pid, "tid": tids[e["track"]], "ts": e["ts"] + offset,
                        "dur": e["dur"], "args": e["args"]})
        issues = sorted(self.bundle_issue.items(), key=lambda kv: kv[1][1])
        for k, (bundle, (ready, now)) in enumerate(issues):
            stop = issues[k + 1][1][1] if k + 1 < len(issues) else max(self.end, now + 1)
            out.append({"name": "bundle", "ph": "X", "pid": pid, "tid": tids[ISSUE_TRACK], "ts": now + offset,
                        "dur": stop - now, "args": {"bundle": bundle, "ready": ready, "issue": now,
                                                     "loc": self.debug.get(bundle, "")}})
        for start, cycles, r, wr in self.ddr_windows():
            out.append({"name": DDR_COUNTER, "ph": "C", "pid": pid, "tid": 0, "ts": start + offset,
                        "args": {"read": r / cycles, "written": wr / cycles}})
        out.append({"name": DDR_COUNTER, "ph": "C", "pid": pid, "tid": 0, "ts": self.end + offset,
                    "args": {"read": 0, "written": 0}})
        live = self.buffer_live()
        if self._live_steps is not None:
            out.append({"name": BUFFER_COUNTER, "ph": "C", "pid": pid, "tid": 0, "ts": offset, "args": {"bytes": 0}})
            for t, n in live:
                out.append({"name": BUFFER_COUNTER, "ph": "C", "pid": pid, "tid": 0, "ts": t + offset,
                            "args": {"bytes": n}})
        return out

    def other_data(self) -> dict:
        return {"time_unit": "cycles (1 us in the viewer = 1 cycle)", "clock_hz": self.clock_hz,
                "program": self.program, "ddr_window_cycles": self.window}

    def to_dict(self) -> dict:
        name = f"accelerator{': ' + self.program if self.program else ''}"
        other = self.other_data()
        if self.error:
            other["error"] = self.error
        return {"traceEvents": self.render(PROCESS_ID, 0, name), "otherData": other}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    def write(self, path) -> None:
        write_atomic(path, self.to_json())


class Timeline:
    """Several runs one after another on one timeline: each run a process, named by its label."""

    def __init__(self, clock_hz: float):
        self.clock_hz = clock_hz
        self.runs: list[tuple[str, Trace, int]] = []  # (label, trace, offset)
        self.end = 0

    def add(self, label: str, trace: Trace) -> int:
        """Append a run; returns the cycle its first cycle lands on."""
        offset = self.end
        self.runs.append((label, trace, offset))
        self.end = offset + trace.end
        return offset

    def to_dict(self) -> dict:
        events: list[dict] = []
        for pid, (label, trace, offset) in enumerate(self.runs, start=1):
            events += trace.render(pid, offset, label)
        window = self.runs[0][1].window if self.runs else DEFAULT_WINDOW
        return {"traceEvents": events,
                "otherData": {"time_unit": "cycles (1 us in the viewer = 1 cycle)", "clock_hz": self.clock_hz,
                              "runs": [{"label": label, "program": t.program, "start": off, "cycles": t.end}
                                       for label, t, off in self.runs],
                              "ddr_window_cycles": window}}

    def write(self, path) -> None:
        write_atomic(path, json.dumps(self.to_dict(), separators=(",", ":")))
