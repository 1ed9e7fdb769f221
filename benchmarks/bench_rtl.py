"""RTL simulation speed: the Verilated machine of hardware/ (small preset), and what building it costs.

Place in the flow: a measurement, not a test.  Prints

1. the build: Verilog export, Verilator, the Verilated C++ compile and the
   link (cold: into an empty build directory; skipped with --warm-only), and
   the warm lookup a second run pays (both caches hit);
2. the Verilog's size per module (bytes, the largest first) and its
   `assign` count: what Verilator and the C++ compiler have to chew;
3. simulation speed in clock cycles per second of wall time and of CPU time
   (user + system: on a loaded machine the wall time adds the waits for a
   core), one ctypes call per program: a program per kind that keeps one
   unit busy (back-to-back `lin`, `conv`, `ssm` or `vec` ops, each issued
   once the last is complete), a DMA program (strided loads and stores) and
   an idle one (`ctl.wait` bundles 1,000 cycles apart), each repeated, and a
   long LIN program (about a million cycles, run once).  The units' clocks
   are gated off while they are idle (docs/RTL.md, "Simulation speed"), so
   the kinds differ: a busy VEC costs the most;
4. with --cells N (instead of the rest): the machine's Amaranth netlist
   cells per source line, the N largest: where the Verilog comes from;
5. with --libraries LIB.so... (instead of the rest): the LIN-heavy program's
   speed on each built library (build/rtl/*/libmachine.so, e.g. of two
   commits), runs alternating so that each sees the same machine load, then
   each library's load time of a 20,000-word program.

Run: `.venv/bin/python benchmarks/bench_rtl.py [--warm-only] [--repeat N] [--long-ops N] [--cells N]
[--libraries LIB.so ...]`.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastmamba.hardware import backend, build  # noqa: E402
from fastmamba.isa import costs  # noqa: E402
from fastmamba.isa.encoding import encode_bundles  # noqa: E402
from fastmamba.isa.instructions import Bundle, Instruction  # noqa: E402
from fastmamba.isa.target import PRESETS  # noqa: E402

SMALL = PRESETS["small"]
HALT = Bundle((Instruction("ctl.halt"),))


def lin_program(ops: int) -> list[Bundle]:
    lin = Instruction("lin", dict(dst=0x4000, src=0, wgt=0x1000, scale=0x6000, m=8, k=64, n=16, src_ld=64, dst_ld=16,
                                  src_type="i16", hlog2=4, qmul=3, qshift=2, acc=1, out="i32"))
    occ = costs.occupancy(lin, SMALL)
    # each op accumulates onto the last one's results: issue once they are complete
    return [Bundle((lin,), occ + SMALL.lin_latency - 1) for _ in range(ops)] + [HALT]


def repeated(op: Instruction, times: int) -> list[Bundle]:
    """`op` issued `times` times, each once the last is complete (its duration on `small`), then halt."""
    return [Bundle((op,), costs.duration(op, SMALL) - 1) for _ in range(times)] + [HALT]


def conv_program(ops: int) -> list[Bundle]:
    conv = Instruction("conv", dict(dst=0x4000, src=0, state=0x2000, wgt=0x3000, bias=0x3800, t=64, c=64, kw=4,
                                    src_ld=64, dst_ld=64, shift=4, out_type=1, upd=1))
    return repeated(conv, ops)


def ssm_program(ops: int) -> list[Bundle]:
    ssm = Instruction("ssm", dict(y=0x8000, xbc=0, dt=0x4000, params=0x5000, state=0x6000, t=4, h=4, p=16, n=16,
                                  hpg=4, xbc_ld=128, b_off=64, c_off=96, dt_ld=4, y_ld=64, dt_frac=12, a_frac=12,
                                  dbx_shift=0, y_shift=0, d_shift=0))
    return repeated(ssm, ops)


def vec_program(ops: int) -> list[Bundle]:
    """silu(a) * b with i8 rows of a and f32 rows of b, rounded to i8: a chain of two micro-ops."""
    from fastmamba.hardware.vec_datapath import MICRO_OPS

    chain = [MICRO_OPS.index(n) for n in ("silu", "mul", "none", "none")]
    vec = Instruction("vec", dict(dst=0x8000, a=0, b=0x2000, rows=16, cols=64, a_ld=64, b_ld=64, dst_ld=64, a_type=0,
                                  a_exp=-4, b_type=3, b_exp=0, b_mode=1, op0=chain[0], op1=chain[1], op2=chain[2],
                                  op3=chain[3], group=0, eps=0.0, out_type=0, out_scale=8.0))
    return repeated(vec, ops)


def idle_program(bundles: int) -> list[Bundle]:
    """Bundles of `ctl.wait` on a semaphore already at its count, 1,000 cycles apart: no unit ever busy."""
    return [Bundle((Instruction("ctl.wait", {"sem": 1, "count": 0}),), 999) for _ in range(bundles)] + [HALT]


def dma_program(pairs: int) -> list[Bundle]:
    out = []
    for i in range(pairs):
        out.append(Bundle((Instruction("ld", dict(buf=0x100 * (i % 8), ddr=0x40 * i, rows=8, row_bytes=24,
                                                 ddr_stride=40, buf_stride=32, sem=1)),)))
        out.append(Bundle((Instruction("ctl.wait", {"sem": 1, "count": 1}),)))
        out.append(Bundle((Instruction("st", dict(ddr=0x8000 + 0x100 * (i % 64), buf=0x100 * (i % 8), rows=8,
                                                 row_bytes=24, ddr_stride=32, buf_stride=32, sem=2)),)))
    out.append(Bundle((Instruction("ctl.wait", {"sem": 2, "count": pairs}),)))
    return out + [HALT]


def module_sizes(path: Path) -> list[tuple[str, int]]:
    """(module name, bytes of its text) of a Verilog file, the largest first."""
    sizes: dict[str, int] = {}
    name = ""
    with open(path, "rb") as f:
        for line in f:
            found = re.match(rb"module (\S+?)[(\s]", line)
            if found:
                name = found.group(1).decode().lstrip("\\")
            sizes[name] = sizes.get(name, 0) + len(line)
    return sorted(sizes.items(), key=lambda kv: -kv[1])


def netlist_cells(top: int) -> None:
    """The machine's netlist cells (Amaranth's own, before Verilog) by module and source line."""
    from collections import Counter

    from amaranth.hdl import _ir

    from fastmamba.hardware.machine import make_machine

    start = time.perf_counter()
    netlist = _ir.build_netlist(_ir.Fragment.get(make_machine(SMALL, backend.IMEM_WORDS), None), ports=(),
                                name="top")
    by_line: Counter = Counter()
    for cell in netlist.cells:
        where = f"{Path(cell.src_loc[0]).name}:{cell.src_loc[1]}" if cell.src_loc else "?"
        by_line[(".".join(netlist.modules[cell.module_idx].name), where)] += 1
    print(f"netlist      {len(netlist.cells):,} cells ({time.perf_counter() - start:.0f} s); largest sources:")
    for (module, where), n in by_line.most_common(top):
        print(f"  {n:>10,}  {module:<24} {where}")


def load_program(words: int) -> list[Bundle]:
    """`ctl.halt` first, then bundles never reached: about `words` instruction words to load, two cycles to run."""
    ld = Bundle((Instruction("ld", dict(buf=0, ddr=0, rows=1, row_bytes=16, ddr_stride=16, buf_stride=16, sem=0)),))
    return [HALT] + [ld] * (words // (len(encode_bundles([ld])) // 8))


def load_time(words: int, repeat: int) -> None:
    """The wall time of a run that is all instruction-memory load (the harness loads before `start`)."""
    bundles = load_program(words)
    ddr = np.zeros(1 << 12, dtype=np.uint8)
    backend.run_bundles(SMALL, bundles, ddr.copy())
    best = min(_timed(lambda: backend.run_bundles(SMALL, bundles, ddr.copy())) for _ in range(repeat))
    print(f"{'load':<12} {len(encode_bundles(bundles)) // 8:>10,} words   {best * 1e3:8.1f} ms  (a program that "
          f"halts at once, best of {repeat})")


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def compare_libraries(paths: list[str], repeat: int) -> None:
    """The LIN-heavy program on each library, alternating; the best of `repeat` runs each."""
    libs = [backend._Library(Path(p)) for p in paths]
    key = (SMALL.digest(), backend.IMEM_WORDS)
    program = lin_program(60)
    ddr = np.random.default_rng(0).integers(0, 256, 1 << 16, dtype=np.uint8)
    best = [0.0] * len(libs)
    best_cpu = [0.0] * len(libs)
    for _ in range(repeat):
        for i, lib in enumerate(libs):
            backend._LIBRARIES[key] = lib
            start, cpu = time.perf_counter(), time.process_time()
            stats = backend.run_bundles(SMALL, program, ddr.copy())
            best[i] = max(best[i], stats.rtl_cycles / (time.perf_counter() - start))
            best_cpu[i] = max(best_cpu[i], stats.rtl_cycles / max(time.process_time() - cpu, 1e-9))
    for path, rate, rate_cpu in zip(paths, best, best_cpu):
        print(f"{rate / 1e3:8.1f} k cycles/s, CPU {rate_cpu / 1e3:8.1f} k cycles/s  {path}  (LIN-heavy, "
              f"{stats.rtl_cycles:,} cycles, best of {repeat})")
    for path, lib in zip(paths, libs):  # the harness's port list must match the library's: each its own ports.h
        backend._LIBRARIES[key] = lib
        print(path, end=": ")
        load_time(20_000, repeat)


def speed(name: str, bundles: list[Bundle], repeat: int) -> None:
    ddr = np.random.default_rng(0).integers(0, 256, 1 << 16, dtype=np.uint8)
    backend.run_bundles(SMALL, bundles, ddr.copy())  # load the library
    best = best_cpu = float("inf")
    for _ in range(repeat):
        image = ddr.copy()
        start, cpu = time.perf_counter(), time.process_time()
        stats = backend.run_bundles(SMALL, bundles, image)
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    busy = ", ".join(f"{u} {b / stats.rtl_cycles:.0%}" for u, b in stats.busy.items() if b) or "no unit"
    print(f"{name:<12} {stats.rtl_cycles:>10,} cycles  {best * 1e3:8.1f} ms  {stats.rtl_cycles / best / 1e3:7.1f} k "
          f"cycles/s, CPU {best_cpu * 1e3:8.1f} ms {stats.rtl_cycles / max(best_cpu, 1e-9) / 1e3:7.1f} k cycles/s "
          f"(best of {repeat}; busy: {busy})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--warm-only", action="store_true", help="skip the cold build into an empty directory")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--long-ops", type=int, default=2000, help="lin ops of the long program (0: skip it)")
    ap.add_argument("--cells", type=int, default=0, help="print the netlist's N largest sources and stop")
    ap.add_argument("--libraries", nargs="+", help="compare these built libraries' speed and stop")
    args = ap.parse_args()
    if args.libraries:
        compare_libraries(args.libraries, args.repeat)
        return 0
    if args.cells:
        netlist_cells(args.cells)
        return 0
    print(f"target small: {SMALL.lin_groups * SMALL.lin_mac_trees} MAC trees x {SMALL.lin_mac_tree_width}, "
          f"{SMALL.buffer_bytes // 1024} KiB buffer, {SMALL.dma_bytes_per_cycle:g} B/cycle DMA")
    if not args.warm_only:
        with tempfile.TemporaryDirectory() as tmp:
            old = os.environ.get("FASTMAMBA_BUILD")
            os.environ["FASTMAMBA_BUILD"] = tmp
            try:
                timings: dict = {}
                start = time.perf_counter()
                build.library(SMALL, backend.IMEM_WORDS, timings)
                cold = time.perf_counter() - start
            finally:
                if old is None:
                    del os.environ["FASTMAMBA_BUILD"]
                else:
                    os.environ["FASTMAMBA_BUILD"] = old
        print(f"cold build   {cold:8.1f} s  (Verilog export {timings.get('verilog_s', 0):.1f} s, Verilator "
              f"{timings.get('verilator_s', 0):.1f} s, C++ compile {timings.get('cxx_s', 0):.1f} s, link "
              f"{timings.get('link_s', 0):.1f} s; Verilator runtime once per install)")
    build.library(SMALL, backend.IMEM_WORDS)
    start = time.perf_counter()
    build.library(SMALL, backend.IMEM_WORDS)
    print(f"warm lookup  {time.perf_counter() - start:8.3f} s  (both caches hit: no export, no compile)")
    vpath, _ = build.verilog(SMALL, backend.IMEM_WORDS)
    sizes = module_sizes(vpath)
    assigns = sum(line.startswith(b"  assign ") for line in open(vpath, "rb"))
    print(f"Verilog      {vpath.stat().st_size:>10,} bytes, {assigns:,} assigns; largest modules:")
    for name, size in sizes[:6]:
        print(f"  {size:>12,}  {name}")
    speed("LIN-heavy", lin_program(200), args.repeat)
    speed("CONV-heavy", conv_program(40), args.repeat)
    speed("SSM-heavy", ssm_program(80), args.repeat)
    speed("VEC-heavy", vec_program(20), args.repeat)
    speed("DMA", dma_program(400), args.repeat)
    speed("idle", idle_program(100), args.repeat)
    load_time(20_000, args.repeat)
    if args.long_ops:
        speed("long LIN", lin_program(args.long_ops), 1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
