"""Chrome / Perfetto trace-event output of a simulated run (`fastmamba sim --trace`).

Place in the flow: an optional observer of `simulator.engine`; open the JSON
in https://ui.perfetto.dev or chrome://tracing to see where the cycles go.

Format: the JSON object form of the Trace Event Format.  One process
("accelerator"), one thread (track) per unit (LD, ST, LIN, CONV, SSM, VEC)
and one for the DDR channel.  Each operation is a complete event
(`"ph": "X"`) named by its instruction text, with `args` holding the bundle
index and its issue/complete cycles.  Compute units show an operation's
occupancy (from issue); LD and ST show the cycles their transfer holds the DDR
channel, and the DDR track shows every transfer with its direction and size.

**Time unit: cycles.**  The format's `ts`/`dur` are nominally microseconds;
here they are cycles, so 1 µs in the viewer is 1 cycle.  The metadata
(`otherData`) says so and records the clock to convert.
"""

from __future__ import annotations

import json

from fastmamba.isa.fileio import write_atomic
from fastmamba.simulator.stats import UNITS

DDR_TRACK = "DDR"
TRACKS: tuple[str, ...] = UNITS + (DDR_TRACK,)
PROCESS_ID = 1


class Trace:
    """Collects complete events per track; `to_json()` renders them."""

    def __init__(self, clock_hz: float, program: str = ""):
        self.clock_hz = clock_hz
        self.program = program
        self.events: list[dict] = []

    def complete(self, track: str, name: str, start: int, duration: int, args: dict) -> None:
        """Record one operation on `track` from cycle `start` for `duration` cycles."""
        self.events.append({"name": name, "ph": "X", "pid": PROCESS_ID, "tid": TRACKS.index(track) + 1,
                            "ts": start, "dur": duration, "args": args})

    def to_dict(self) -> dict:
        meta = [{"name": "process_name", "ph": "M", "pid": PROCESS_ID, "tid": 0,
                 "args": {"name": f"accelerator{': ' + self.program if self.program else ''}"}}]
        for i, track in enumerate(TRACKS, start=1):
            meta.append({"name": "thread_name", "ph": "M", "pid": PROCESS_ID, "tid": i, "args": {"name": track}})
            meta.append({"name": "thread_sort_index", "ph": "M", "pid": PROCESS_ID, "tid": i,
                         "args": {"sort_index": i}})
        return {
            "traceEvents": meta + self.events,
            "otherData": {
                "time_unit": "cycles (1 us in the viewer = 1 cycle)",
                "clock_hz": self.clock_hz,
                "program": self.program,
            },
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    def write(self, path) -> None:
        write_atomic(path, self.to_json())
