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
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
