"""Counters of one simulated run: what `simulator.engine` counts and the CLI prints.

Place in the flow: filled in by the engine while it issues bundles, returned
by the runtime (`simulator.runtime.RunResult.stats`), printed by
`fastmamba sim` as a table or as JSON (`to_dict`).

Units are the issue slots that do work (every slot but CTL).  A compute
unit's busy cycles are the sum of its operations' occupancy; a DMA engine's
(LD, ST) are the cycles its transfers hold the DDR channel.  Stall cycles are
cycles a bundle waited past its earliest issue time, by cause:
`semaphore` (a `ctl.wait` not yet satisfied), `structural` (a slot's unit
still busy), `dma_queue` (the DMA queue full).

`counters(stats)` is the one JSON schema of these counters (docs/PROFILE.md):
`sim --json`, `run --json` (per phase and in total) and `profile` each carry
it under the key "counters", for the simulator's `Stats` and the RTL's
counters alike.  `Stats.to_dict` is the older flat form `sim --json` keeps at
its top level.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastmamba.isa.instructions import SLOTS

UNITS: tuple[str, ...] = tuple(s for s in SLOTS if s != "CTL")
DMA_UNITS: tuple[str, ...] = ("LD", "ST")
STALL_CAUSES: tuple[str, ...] = ("semaphore", "structural", "dma_queue")


@dataclass
class Stats:
    clock_hz: float
    cycles: int = 0
    bundles: int = 0
    ops: int = 0
    macs: int = 0
    ddr_bytes_read: int = 0
    ddr_bytes_written: int = 0
    busy: dict[str, int] = field(default_factory=lambda: dict.fromkeys(UNITS, 0))
    ops_per_unit: dict[str, int] = field(default_factory=lambda: dict.fromkeys(UNITS, 0))
    stalls: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STALL_CAUSES, 0))

    def add(self, other: "Stats") -> None:
        """Add another run's counters to these (a sequence of runs at the same clock, e.g. prefill then decode)."""
        if other.clock_hz != self.clock_hz:
            raise ValueError(f"cannot add counters at {other.clock_hz} Hz to counters at {self.clock_hz} Hz")
        for name in ("cycles", "bundles", "ops", "macs", "ddr_bytes_read", "ddr_bytes_written"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for mine, theirs in ((self.busy, other.busy), (self.ops_per_unit, other.ops_per_unit), (self.stalls,
                                                                                                other.stalls)):
            for key, value in theirs.items():
                mine[key] = mine.get(key, 0) + value

    @property
    def seconds(self) -> float:
        return self.cycles / self.clock_hz

    def utilization(self, unit: str) -> float:
        return self.busy[unit] / self.cycles if self.cycles else 0.0

    @property
    def ddr_channel_busy(self) -> int:
        return sum(self.busy[u] for u in DMA_UNITS)

    def to_dict(self) -> dict:
        """A JSON-ready summary (plain ints, floats and dicts)."""
        return {
            "cycles": self.cycles,
            "time_s": self.seconds,
            "clock_hz": self.clock_hz,
            "bundles": self.bundles,
            "ops": self.ops,
            "macs": self.macs,
            "units": {u: {"ops": self.ops_per_unit[u], "busy_cycles": self.busy[u],
                          "utilization": self.utilization(u)} for u in UNITS},
            "stalls": dict(self.stalls),
            "ddr_bytes_read": self.ddr_bytes_read,
            "ddr_bytes_written": self.ddr_bytes_written,
            "ddr_channel_utilization": self.ddr_channel_busy / self.cycles if self.cycles else 0.0,
        }

    def counters(self) -> dict[str, Any]:
        """These counters in the unified schema (`counters`)."""
        return counters(self)

    def format_table(self) -> str:
        """A readable multi-line summary for the terminal."""
        lines = [
            f"cycles            {self.cycles:>14,}   ({self.seconds * 1e3:.6g} ms at {self.clock_hz / 1e6:g} MHz)",
            f"bundles issued    {self.bundles:>14,}",
            f"ops issued        {self.ops:>14,}",
            f"int MACs          {self.macs:>14,}",
            f"DDR bytes read    {self.ddr_bytes_read:>14,}",
            f"DDR bytes written {self.ddr_bytes_written:>14,}",
            "",
            f"{'unit':<6}{'ops':>12}{'busy cycles':>16}{'utilization':>13}",
        ]
        for u in UNITS:
            lines.append(f"{u:<6}{self.ops_per_unit[u]:>12,}{self.busy[u]:>16,}{self.utilization(u):>12.1%}")
        lines.append("")
        lines.append(f"{'stall cause':<14}{'cycles':>14}")
        for cause in STALL_CAUSES:
            lines.append(f"{cause:<14}{self.stalls[cause]:>14,}")
        return "\n".join(lines)


COUNTERS_SCHEMA = "fastmamba.counters/1"
"""The name and version of the unified counter schema (`counters`; docs/PROFILE.md)."""


def counters(stats: Any, clock_hz: float | None = None) -> dict[str, Any]:
    """One run's (or a sum of runs') counters as the unified JSON object (docs/PROFILE.md):

        {"schema", "cycles", "time_s", "clock_hz", "bundles", "ops", "macs",
         "units": {UNIT: {"ops", "busy_cycles", "utilization"}},
         "stalls": {CAUSE: cycles},
         "ddr": {"bytes_read", "bytes_written", "bytes", "channel_busy_cycles", "channel_utilization"}}

    `stats`: a `Stats`, anything with its attributes (the RTL's counters), or None (no run: zeros, clock_hz
    the given one)."""
    if stats is None:
        return {**counters(Stats(clock_hz=clock_hz or 0.0)), "clock_hz": clock_hz}
    cycles = stats.cycles
    busy = {u: int(stats.busy.get(u, 0)) for u in UNITS}
    channel = sum(busy[u] for u in DMA_UNITS)
    return {
        "schema": COUNTERS_SCHEMA,
        "cycles": cycles,
        "time_s": cycles / stats.clock_hz if stats.clock_hz else 0.0,
        "clock_hz": stats.clock_hz,
        "bundles": stats.bundles,
        "ops": stats.ops,
        "macs": stats.macs,
        "units": {u: {"ops": int(stats.ops_per_unit.get(u, 0)), "busy_cycles": busy[u],
                      "utilization": busy[u] / cycles if cycles else 0.0} for u in UNITS},
        "stalls": {c: int(stats.stalls.get(c, 0)) for c in STALL_CAUSES},
        "ddr": {"bytes_read": stats.ddr_bytes_read, "bytes_written": stats.ddr_bytes_written,
                "bytes": stats.ddr_bytes_read + stats.ddr_bytes_written, "channel_busy_cycles": channel,
                "channel_utilization": channel / cycles if cycles else 0.0},
    }
