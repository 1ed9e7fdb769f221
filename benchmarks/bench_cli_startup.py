"""Benchmark of the command line's start-up: wall time of `fastmamba --help`, `fastmamba opt --help` and friends.

Each command runs RUNS times in a fresh process (the installed `fastmamba` script beside this Python); the
median, minimum and maximum wall times are printed, with `python -c pass` as the floor every command pays and
the heavy modules each one imported (torch, xdsl, numpy).  Target: `fastmamba --help` and
`fastmamba opt --help` under 0.5 s (compiler/cli.py lists the commands without importing them; the command
modules import xDSL and torch only when they run).  On a machine shared with other work the figures move
by tens of milliseconds: compare medians.

    .venv/bin/python benchmarks/bench_cli_startup.py [--runs 9]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
# (label, argv after the python executable)
CASES = [
    ("python -c pass", ["-c", "pass"]),
    ("fastmamba --help", [str(BIN / "fastmamba"), "--help"]),
    ("fastmamba opt --help", [str(BIN / "fastmamba"), "opt", "--help"]),
    ("fastmamba translate --help", [str(BIN / "fastmamba"), "translate", "--help"]),
    ("fastmamba --version", [str(BIN / "fastmamba"), "--version"]),
    ("fastmamba compile --help", [str(BIN / "fastmamba"), "compile", "--help"]),  # (its module imports xDSL)
    ("fastmamba import --help", [str(BIN / "fastmamba"), "import", "--help"]),  # (its module imports torch)
]
TARGET_S = 0.5
TARGETED = ("fastmamba --help", "fastmamba opt --help")
PROBE = ("import runpy, sys\nsys.argv = sys.argv[1:]\ntry:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
         "except SystemExit:\n    pass\nsys.stderr.write('MODULES ' + ' '.join(m for m in ('torch', 'xdsl', 'numpy') "
         "if m in sys.modules) + '\\n')\n")


def _time(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def _heavy(argv: list[str]) -> str:
    """The heavy modules the command imports (run once more under a probe that lists them)."""
    if argv[0] == "-c":
        return "-"
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True)
    line = next((x for x in done.stderr.splitlines() if x.startswith("MODULES")), "MODULES ?")
    return line.split(" ", 1)[1].strip() or "none"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="fresh processes per command (default 9)")
    args = parser.parse_args()
    print(f"{'command':<28} {'median s':>9} {'min s':>7} {'max s':>7}  imports")
    failed = []
    for label, argv in CASES:
        _time(argv)  # warm the file cache
        times = [_time(argv) for _ in range(args.runs)]
        median = statistics.median(times)
        print(f"{label:<28} {median:9.3f} {min(times):7.3f} {max(times):7.3f}  {_heavy(argv)}")
        if label in TARGETED and median >= TARGET_S:
            failed.append(label)
    print(f"target: {', '.join(TARGETED)} under {TARGET_S} s: " + ("met" if not failed else f"MISSED by {failed}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
