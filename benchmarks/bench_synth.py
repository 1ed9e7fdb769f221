"""Synthesis time and counts: `fastmamba synth`'s report for each named target, with each part's yosys time.

Place in the flow: a measurement, not a test.  For every target (default: small and vc709) it runs
hardware.synth's report over the units asked for (default all), printing the report (counts, the
xc7vx690t's share, how each row was composed, and per synthesized part yosys' own time, the wall time
and whether the cache answered: build/synth/, a second run takes seconds).

Run: `.venv/bin/python benchmarks/bench_synth.py [--target NAME ...] [--unit NAME ...]`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastmamba.hardware import synth  # noqa: E402
from fastmamba.isa.target import load_target  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", action="append", help="preset or target file (repeatable; default small, vc709)")
    ap.add_argument("--unit", action="append", help="unit (repeatable; default all)")
    args = ap.parse_args()
    for name in args.target or ["small", "vc709"]:
        target = load_target(name)
        report = synth.synth_report(target, args.unit, progress=lambda u: print(f"  {u} ...", flush=True))
        print(synth.format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
