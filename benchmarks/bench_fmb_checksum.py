"""Benchmark of the .fmb checksums: what verifying them adds to loading a binary (isa/container.py).

Loads a binary (default: the bundled model compiled to a temporary file, `fastmamba compile --seq-len 16
--calibration random`) RUNS times with `load_fmb` and prints the median load time, the median time of the
CRC-32 of all its bytes (what the checks add), its share of the load, and the CRC's throughput on 256 MiB
of random bytes, from which the cost for a larger constant image follows.  On a machine shared with other
work the figures move: compare medians.

    .venv/bin/python benchmarks/bench_fmb_checksum.py [--binary FILE.fmb] [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import zlib
from pathlib import Path


def _median_seconds(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    from fastmamba.compiler.cli import main as cli
    from fastmamba.isa.container import load_fmb

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", metavar="FILE.fmb", help="binary to load (default: the bundled model compiled)")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.binary) if args.binary else Path(tmp) / "default.fmb"
        if not args.binary:
            assert cli(["compile", "--seq-len", "16", "--calibration", "random", "-o", str(path)]) == 0
        data = path.read_bytes()
    load = _median_seconds(lambda: load_fmb(data), args.runs)
    crc = _median_seconds(lambda: zlib.crc32(data), args.runs)
    block = os.urandom(256 << 20)
    throughput = 256 / _median_seconds(lambda: zlib.crc32(block), 3)
    print(f"binary: {path.name}, {len(data):,} bytes")
    print(f"load_fmb (checksums verified): {load * 1e3:.1f} ms (median of {args.runs})")
    print(f"CRC-32 of every byte: {crc * 1e3:.2f} ms, {crc / load:.1%} of the load")
    print(f"CRC-32 throughput: {throughput:,.0f} MiB/s (256 MiB of random bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
