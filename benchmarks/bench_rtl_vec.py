"""The machine's VEC unit under Verilator: random vec programs against the simulator, and the build's cost.

Place in the flow: a measurement, not a test (tests/test_hw_vec.py runs the same 200 programs).  Builds (or finds
in the cache) the machine of `small` and runs tests/hw_programs' random_vec_program (chains of up to four micro-ops
with at most one rmsnorm, every type and b mode, padded pitches, in place over a, ties, saturation, signed zeros,
subnormals, +-inf, NaN; 1-3 ops back to back beside a prefetch load) on it and on the simulator: the DDR images
must be equal byte for byte and every counter equal.  Then a schedule for a vec_latency one short must stop the
RTL with a RAW hazard.  Prints the build's seconds and Verilog size, the programs, ops, cycles and mismatches (must
be 0).

Run: `.venv/bin/python benchmarks/bench_rtl_vec.py [--programs N]` (default 200).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fastmamba.hardware import backend, build  # noqa: E402
from fastmamba.isa.target import PRESETS  # noqa: E402
from hw_programs import compare_stats, random_vec_program, run_rtl, run_sim  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=200, help="random vec programs")
    args = parser.parse_args()
    if args.programs < 1:
        parser.error("--programs must be positive")
    target = PRESETS["small"]
    timings: dict = {}
    start = time.perf_counter()
    build.library(target, backend.IMEM_WORDS, timings)
    vpath, _ = build.verilog(target, backend.IMEM_WORDS)
    print(f"machine built or found in {time.perf_counter() - start:.1f} s "
          f"({', '.join(f'{k} {v:.1f} s' for k, v in timings.items()) or 'cached'}); "
          f"Verilog {vpath.stat().st_size / 1e6:.2f} MB")
    bad, ops, cycles = 0, 0, 0
    start = time.perf_counter()
    for seed in range(args.programs):
        bundles, image = random_vec_program(seed, target)
        sim_ddr, sim_stats = run_sim(target, bundles, image)
        rtl_ddr, rtl_stats = run_rtl(target, bundles, image)
        differ = int((sim_ddr != rtl_ddr).sum())
        keys = compare_stats(sim_stats, rtl_stats)
        if differ or keys or rtl_stats.rtl_cycles != rtl_stats.cycles + 1:
            bad += 1
            print(f"seed {seed}: {differ} DDR bytes differ; counters differ: {keys}")
        ops += sim_stats.ops_per_unit["VEC"]
        cycles += sim_stats.cycles
    print(f"{args.programs} random VEC programs, {ops} vec ops, {cycles:,} cycles: mismatches = {bad} "
          f"({time.perf_counter() - start:.1f} s)")
    wrong = dataclasses.replace(target, vec_latency=target.vec_latency - 1)
    seed = next(s for s in range(100) if sum(b.op_in("VEC") is not None for b in random_vec_program(s, target)[0]) == 1)
    bundles, image = random_vec_program(seed, target, schedule_target=wrong)
    run_sim(wrong, bundles, image)
    try:
        run_rtl(target, bundles, image)
        caught = "not caught"
        bad += 1
    except backend.RtlError as exc:
        caught = str(exc)
    print(f"a schedule for vec_latency {wrong.vec_latency}: {caught}")
    if bad:
        raise SystemExit(f"{bad} failures")


if __name__ == "__main__":
    main()
