"""Compile-time benchmark: `fastmamba compile` of a random-weight checkpoint of the 130M shape, stage by stage.

    .venv/bin/python benchmarks/bench_compile.py [--shape 130m] [--seq-len 64] [--windows 4] [--keep DIR] [-o OUT]
    .venv/bin/python benchmarks/bench_compile.py --shape 2.7b --seq-len 16 --windows 1
    .venv/bin/python benchmarks/bench_compile.py --calibration-only --shape 2.7b --seq-len 16 --windows 1
    .venv/bin/python benchmarks/bench_compile.py --shape 2.7b --layers 4 --seq-len 16 --windows 1 --profile OUT.prof
    .venv/bin/python benchmarks/bench_compile.py --backend-only --shape 2.7b --seq-len 16 [--profile OUT.prof]

Writes the checkpoint (transformers layout, safetensors shards of 2 GiB, each
tensor drawn when written) to a temporary directory (or --keep, where a
checkpoint already written is reused), then runs the whole compile as the CLI
does (compiler.compile.compile_model, default options: calibration on
--windows windows (4) of seed-0 random tokens, since the checkpoint has no
tokenizer) and prints each stage's wall and CPU seconds (this process's user +
system time, which a machine shared with other work inflates less than wall
time), the totals (targets, issue 15: 130M under 20 s, 2.7B under 120 s and
12 GiB) and the peak resident memory.  -o writes the binary (.fmb), to compare
its bytes before and after a change of the compiler.

--layers N: the shape with N layers (its widths kept): a quick profile of the
per-layer costs.  --profile OUT.prof: the compile run under cProfile (CPU seconds), its
statistics written there and the 30 functions of most cumulative time printed.

--calibration-only: the calibrate stage alone on the whole model, interpreting
the IR with weights drawn on demand (no checkpoint is written): its time and
peak memory for shapes whose checkpoint is too large to write here.

--backend-only: lower-to-accel, plan-memory and schedule-vliw alone, run as
compile runs them (one pass driver, the IR verified after the last), on the
prefill and decode functions quantized with ranges measured on a one-layer
model of the shape (no checkpoint is written); each stage's wall and CPU
seconds and the programs' CRC-32 (the same schedule before and after a change).
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import pstats
import resource
import sys
import tempfile
import time
import zlib
from collections.abc import Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from shapes import SHAPES, RandomWeights  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="130m", choices=sorted(SHAPES))
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--keep", metavar="DIR", help="write the checkpoint here and keep it")
    parser.add_argument("--calibration-only", action="store_true", help="time the calibrate stage alone")
    parser.add_argument("--backend-only", action="store_true", help="time lower/plan/schedule alone")
    parser.add_argument("--windows", type=int, default=4, help="calibration windows")
    parser.add_argument("-o", "--out", metavar="OUT.fmb", help="write the compiled binary here")
    parser.add_argument("--layers", type=int, help="the shape with this many layers (its widths kept)")
    parser.add_argument("--profile", metavar="OUT.prof", help="run the compile under cProfile, statistics here")
    args = parser.parse_args()
    if args.calibration_only:
        calibration_only(args)
        return
    if args.backend_only:
        backend_only(args)
        return

    from fastmamba.compiler.checkpoint import save_hf_layout
    from fastmamba.compiler.compile import CompileOptions, compile_model
    from fastmamba.isa.container import write_fmb
    from fastmamba.isa.target import load_target

    config = SHAPES[args.shape]
    if args.layers:
        config = dataclasses.replace(config, n_layer=args.layers)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp) / f"mamba2-{args.shape}-random{f'-{args.layers}' if args.layers else ''}"
        if not (folder / "config.json").exists():
            weights = RandomWeights(config)
            save_hf_layout(config, _Torch(weights), folder, shard_bytes=SHARD_BYTES)
        clock = StageClock()
        log = io.StringIO()
        options = CompileOptions(seq_len=args.seq_len, calibration_windows=args.windows, time_passes=True)
        profiler = cProfile.Profile(time.process_time) if args.profile else None  # CPU time: load-independent
        if profiler is not None:
            profiler.enable()
        result = compile_model(folder, options, log=log, progress=clock)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        clock.stage("")  # the end of the last stage (emit)
        if args.out:
            write_fmb(args.out, result.binary, load_target(result.meta["target"]))
    print(log.getvalue(), end="")
    if args.profile:
        pstats.Stats(args.profile).sort_stats("cumulative").print_stats(30)
    print(clock.table())
    wall, cpu = clock.total()
    ops = {p.name: sum(len(b.ops) for b in p.bundles) for p in result.binary.programs}
    crcs = {p.name: f"{_program_crc(p):#010x}" for p in result.binary.programs}
    print(f"{args.shape} L={args.seq_len}: compile {wall:.1f} s wall, {cpu:.1f} s CPU, operations {ops}, "
          f"bundles' CRC-32 {crcs}, image {len(result.binary.const_image):,} bytes (CRC-32 "
          f"{zlib.crc32(result.binary.const_image):#010x}), peak RSS {peak_rss_gib():.2f} GiB")


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _program_crc(program) -> int:
    """CRC-32 of a program's bundles as text (their operations and delays: what its cycles follow from)."""
    return zlib.crc32(repr(program.bundles).encode())


def _progress_base():
    from fastmamba.compiler.progress import Progress

    return Progress


class StageClock(_progress_base()):  # type: ignore[misc]
    """A compiler.progress.Progress that shows nothing and records each stage's wall and CPU seconds."""

    def __init__(self) -> None:
        super().__init__(io.StringIO(), "bench_compile", tty=False)
        self.rows: list[tuple[str, float, float]] = []
        self.current: tuple[str, float, float] | None = None

    def plan(self, stages) -> None:
        pass

    def stage(self, name: str) -> None:
        now = (time.perf_counter(), cpu_seconds())
        if self.current is not None:
            label, wall, cpu = self.current
            self.rows.append((label, now[0] - wall, now[1] - cpu))
        self.current = (name, *now) if name else None

    def step(self, done: int, total: int, unit: str) -> None:
        pass

    def close(self) -> None:
        pass

    def total(self) -> tuple[float, float]:
        return sum(r[1] for r in self.rows), sum(r[2] for r in self.rows)

    def table(self) -> str:
        lines = [f"{'stage':<24}{'wall s':>10}{'CPU s':>10}"]
        lines += [f"{name:<24}{wall:>10.1f}{cpu:>10.1f}" for name, wall, cpu in self.rows]
        wall, cpu = self.total()
        return "\n".join(lines + [f"{'total':<24}{wall:>10.1f}{cpu:>10.1f}"])


SHARD_BYTES = 2 * 1024**3  # the checkpoint is written in shards of this size (transformers' layout)


class _Torch(Mapping):
    """RandomWeights as torch tensors, each drawn when read (the writer reads one shard at a time)."""

    def __init__(self, weights):
        self.weights = weights

    def __getitem__(self, name):
        import torch

        return torch.from_numpy(self.weights[name])

    def __iter__(self):
        return iter(self.weights)

    def __len__(self):
        return len(self.weights)


def calibration_only(args) -> None:
    import numpy as np

    from fastmamba.compiler.compile import around_calibration
    from fastmamba.compiler.frontend.importer import import_model
    from fastmamba.compiler.pipeline import run_pipeline
    from fastmamba.passes.calibrate import calibrate_module

    config = SHAPES[args.shape]
    module = import_model(config, "prefill", args.seq_len).module
    run_pipeline(module, around_calibration()[0])
    tokens = np.random.default_rng(0).integers(0, config.vocab_size, args.windows * args.seq_len)
    start, cpu = time.perf_counter(), cpu_seconds()
    ranges = calibrate_module(module, RandomWeights(config), tokens, windows=args.windows)
    print(f"{args.shape} L={args.seq_len} x {args.windows} window(s): calibrate {time.perf_counter() - start:.1f} s "
          f"wall, {cpu_seconds() - cpu:.1f} s CPU, {len(ranges)} sites, peak RSS {peak_rss_gib():.2f} GiB")


def backend_only(args) -> None:
    from fastmamba.compiler.backend.emit import program_of
    from fastmamba.compiler.compile import CompileOptions, backend_stages
    from fastmamba.compiler.dialects.accel import ProgramOp
    from fastmamba.compiler.pipeline import DriverOptions, PassDriver, collecting_rarely, parse_passes
    from shapes import quantized_module, ranges_by_calibration

    config = SHAPES[args.shape]
    if args.layers:
        config = dataclasses.replace(config, n_layer=args.layers)
    module = quantized_module(config, args.seq_len, ranges_by_calibration(config))
    passes = parse_passes(",".join(backend_stages(CompileOptions(seq_len=args.seq_len))))
    clock = StageClock()
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    with collecting_rarely():  # (as compile_model)
        if profiler is not None:
            profiler.enable()
        PassDriver(passes, DriverOptions(progress=clock, verify_each=False)).run(module)
        clock.stage("")
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
            pstats.Stats(args.profile).sort_stats("cumulative").print_stats(30)
    print(clock.table())
    wall, cpu = clock.total()
    crcs = {p.program_name: f"{_program_crc(program_of(p)):#010x}" for p in module.walk() if isinstance(p, ProgramOp)}
    print(f"{args.shape} L={args.seq_len}{f' ({config.n_layer} layers)' if args.layers else ''}: lower/plan/schedule "
          f"{wall:.1f} s wall, {cpu:.1f} s CPU, bundles' CRC-32 {crcs}, peak RSS {peak_rss_gib():.2f} GiB")


if __name__ == "__main__":
    main()
