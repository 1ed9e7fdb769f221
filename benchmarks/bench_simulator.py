"""Simulator speed: how fast `simulator.engine` with the real unit semantics runs programs.

Place in the flow: a measurement, not a test.  Two synthetic programs for the
vc709 target, built directly as bundles (no assembler, no file):

1. **Small ops**: a long program of one tiny LIN and one tiny VEC operation
   per bundle; measures bundles simulated per second, i.e. the engine's and
   the semantics' per-operation overhead.
2. **LIN-heavy**: a stream of large int8 LIN tiles (64 x 768 x 256 MACs each);
   measures int8 MACs simulated per second and compares them with a plain
   numpy int32 matmul of the same tile on this machine (ratio ~1 or more:
   bounded by matmul speed, not by Python overhead).

Run: `.venv/bin/python benchmarks/bench_simulator.py [--bundles N] [--lin-ops N]`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastmamba.isa.instructions import Bundle, Instruction  # noqa: E402
from fastmamba.isa.target import load_target  # noqa: E402
from fastmamba.simulator.effects import MachineState  # noqa: E402
from fastmamba.simulator.engine import simulate  # noqa: E402

HALT = Bundle((Instruction("ctl.halt"),))
DDR_BYTES = 4096


def _lin(dst: int, src: int, wgt: int, m: int, k: int, n: int) -> Instruction:
    return Instruction("lin", {"dst": dst, "src": src, "wgt": wgt, "scale": 0, "m": m, "k": k, "n": n, "src_ld": k,
                               "dst_ld": n, "src_type": "i8", "hlog2": 0, "qmul": 1, "qshift": 0, "acc": 0,
                               "out": "i32"})


def _vec_copy(dst: int, a: int, cols: int) -> Instruction:
    return Instruction("vec", {"dst": dst, "a": a, "b": 0, "rows": 1, "cols": cols, "a_ld": cols, "b_ld": cols,
                               "dst_ld": cols, "a_type": "i32", "a_exp": 0,
                               "b_type": "i32", "b_exp": 0, "b_mode": "none", "op0": "none", "op1": "none",
                               "op2": "none", "op3": "none", "group": cols, "eps": 0.0, "out_type": "i32",
                               "out_scale": 1.0})


def small_ops_program(n_bundles: int, regions: int = 64, lag: int = 32) -> list[Bundle]:
    """Bundle i: a 1x16x16 lin into region i % regions and a vec copying region (i - lag) % regions elsewhere.

    Rotating over `regions` result slots keeps every operation clear of those still in flight (no hazards).
    """
    k = n = 16
    src, wgt, lin_out, vec_out = 0, 64, 1024, 1024 + regions * n * 4
    bundles = []
    for i in range(n_bundles):
        ops = [_lin(lin_out + (i % regions) * n * 4, src, wgt, 1, k, n)]
        if i >= lag:
            ops.append(_vec_copy(vec_out + (i % regions) * n * 4, lin_out + ((i - lag) % regions) * n * 4, n))
        bundles.append(Bundle(tuple(ops)))
    return bundles + [HALT]


def lin_heavy_program(n_ops: int, m: int, k: int, n: int) -> list[Bundle]:
    """`n_ops` back-to-back m x k x n lin tiles alternating between two result buffers."""
    src, wgt = 0, m * k
    dst = (wgt + n * k + 63) // 64 * 64
    return [Bundle((_lin(dst + (i % 2) * m * n * 4, src, wgt, m, k, n),)) for i in range(n_ops)] + [HALT]


def _state(target) -> MachineState:
    rng = np.random.default_rng(0)
    buf = rng.integers(0, 256, int(target.buffer_bytes), dtype=np.uint8)
    return MachineState(ddr=np.zeros(DDR_BYTES, np.uint8), buf=buf)


def _time(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundles", type=int, default=100_000, help="bundles in the small-ops program")
    p.add_argument("--lin-ops", type=int, default=24, help="lin tiles in the LIN-heavy program")
    p.add_argument("--tile", type=int, nargs=3, default=(64, 768, 256), metavar=("M", "K", "N"))
    args = p.parse_args(argv)
    target = load_target("vc709")

    small = small_ops_program(args.bundles)
    t_small = _time(lambda: simulate(small, _state(target), target), repeat=1)
    small_stats = simulate(small, _state(target), target)

    m, k, n = args.tile
    heavy = lin_heavy_program(args.lin_ops, m, k, n)
    state = _state(target)
    t_heavy = _time(lambda: simulate(heavy, state, target), repeat=2)
    heavy_stats = simulate(heavy, _state(target), target)
    sim_macs_per_s = heavy_stats.macs / t_heavy

    rng = np.random.default_rng(1)
    a = rng.integers(-128, 128, (m, k)).astype(np.int32)
    w = rng.integers(-128, 128, (k, n)).astype(np.int32)
    t_np = _time(lambda: a @ w)
    af, wf = a.astype(np.float64), w.astype(np.float64)
    t_np64 = _time(lambda: af @ wf)
    np_macs_per_s = m * k * n / t_np

    rows = [
        ("small ops: bundles", f"{len(small):,}"),
        ("small ops: ops issued", f"{small_stats.ops:,}"),
        ("small ops: wall time", f"{t_small:.3f} s"),
        ("small ops: bundles/s", f"{len(small) / t_small:,.0f}"),
        ("small ops: simulated cycles", f"{small_stats.cycles:,}"),
        ("LIN-heavy: tile m x k x n", f"{m} x {k} x {n} ({m * k * n:,} MACs)"),
        ("LIN-heavy: tiles", f"{args.lin_ops}"),
        ("LIN-heavy: wall time", f"{t_heavy:.3f} s"),
        ("LIN-heavy: simulated int8 MAC/s", f"{sim_macs_per_s:,.3g}"),
        ("LIN-heavy: LIN utilization", f"{heavy_stats.utilization('LIN'):.1%}"),
        ("numpy int32 matmul, same tile", f"{t_np * 1e3:.2f} ms ({np_macs_per_s:,.3g} MAC/s)"),
        ("numpy float64 matmul, same tile", f"{t_np64 * 1e3:.2f} ms ({m * k * n / t_np64:,.3g} MAC/s)"),
        ("simulated MAC/s / numpy int32 MAC/s", f"{sim_macs_per_s / np_macs_per_s:.2f}"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
