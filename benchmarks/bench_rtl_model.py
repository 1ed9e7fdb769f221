"""The bundled model on the RTL of the `small` preset: wall time, RTL cycles per second, RTL vs simulator cycles.

Place in the flow: a measurement, not a test (issue 12's targets).  Compiles the bundled model for
`small` as `fastmamba compile --target small` does (its default --seq-len, calibrated on seeded random
tokens), then generates as `fastmamba run --backend rtl --greedy` does: a prompt of --prompt-tokens
tokens (default 64, the first bytes of the default calibration text, else seeded random bytes) through
prefill chunks, then --decode-steps decode runs feeding generated tokens back.  Prints

1. the compile's wall time and the programs' sizes (bundles, instruction words);
2. the RTL's build lookup (a cold build when hardware/ changed: minutes, once per source);
3. per phase on the RTL: runs, wall time of the RTL runs, their CPU time (user + system of this process: on a
   loaded machine the wall time is the CPU time plus the waits for a core), RTL clock cycles and RTL cycles per
   second of wall time; the total against issue 12's 2-minute target (the golden model's time with --check
   apart); the share of the RTL cycles in which each unit had a beat (busy): the units' clocks are gated off
   while they are idle (docs/RTL.md, "Simulation speed"), so a busy unit costs time and an idle one does not;
4. per program: RTL cycles (the clock to `done`, summed over its runs), the simulator's cycles for the same
   runs, their ratio (docs/RTL.md explains the difference: the RTL counts the clock that sees `done`);
5. with --check: whether every run equalled the golden model bit for bit.

Run: `.venv/bin/python benchmarks/bench_rtl_model.py [--prompt-tokens 64] [--decode-steps 16] [--check]`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastmamba.compiler.checkpoint import DEFAULT_MODEL_DIR  # noqa: E402
from fastmamba.compiler.compile import DEFAULT_CALIBRATION_TEXT, CompileOptions, compile_model  # noqa: E402
from fastmamba.compiler.compile import default_seq_len  # noqa: E402
from fastmamba.compiler.runner import generate, make_backend  # noqa: E402
from fastmamba.isa.encoding import encode_bundles  # noqa: E402
from fastmamba.isa.errors import InputError  # noqa: E402
from fastmamba.isa.target import SMALL  # noqa: E402

TARGET_S = 120.0  # issue 12: prefill (64 tokens) + 16 decode steps under 2 minutes


class Timed:
    """A backend wrapper that times each run and keeps its counters per program."""

    def __init__(self, backend):
        self.backend = backend
        self.runs: list[tuple[str, float, object]] = []  # (program, wall seconds, stats)
        self.cpu: list[float] = []  # CPU seconds of each run

    @property
    def binary(self):
        return self.backend.binary

    def run(self, program, inputs, **kw):
        start, cpu = time.perf_counter(), time.process_time()
        result = self.backend.run(program, inputs, **kw)
        self.runs.append((program, time.perf_counter() - start, result.stats))
        self.cpu.append(time.process_time() - cpu)
        return result


def prompt_ids(n: int) -> list[int]:
    if DEFAULT_CALIBRATION_TEXT.is_file():
        data = DEFAULT_CALIBRATION_TEXT.read_bytes()[:n]
        if len(data) == n:
            return list(data)
    return [int(t) for t in np.random.default_rng(0).integers(0, 256, n)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--decode-steps", type=int, default=16)
    ap.add_argument("--check", action="store_true", help="compare every run with the golden model")
    args = ap.parse_args()

    from fastmamba.compiler.checkpoint import read_config

    config = read_config(DEFAULT_MODEL_DIR)[0]
    seq_len = default_seq_len(config, SMALL)
    start = time.perf_counter()
    result = compile_model(DEFAULT_MODEL_DIR, CompileOptions(seq_len=seq_len, target="small", calibration_windows=1),
                           calibration_random=True)
    binary = result.binary
    print(f"compile (bundled model, target small, --seq-len {seq_len}): {time.perf_counter() - start:.1f} s")
    for prog in binary.programs:
        words = len(encode_bundles(prog.bundles)) // 8
        print(f"  program {prog.name}: {len(prog.bundles):,} bundles, {words:,} instruction words")

    rtl = make_backend("rtl", SMALL)
    rtl.load(binary)
    try:
        for name in ("prefill", "decode"):
            rtl.check(name)
    except InputError as exc:  # a unit the RTL does not have yet
        print(f"cannot run on the RTL: {exc}")
        return 1
    from fastmamba.hardware import backend as hw

    start = time.perf_counter()
    words = max(len(encode_bundles(p.bundles)) // 8 for p in binary.programs)
    hw.prepare(SMALL, words)
    print(f"RTL build lookup: {time.perf_counter() - start:.1f} s (instruction memory {hw.imem_words(words):,} words)")

    golden = None
    if args.check:
        from fastmamba.compiler.checkpoint import load_model
        from fastmamba.compiler.quant.golden import GoldenMamba2

        _, weights = load_model(DEFAULT_MODEL_DIR)
        golden = GoldenMamba2(config, weights, result.plan, SMALL)
    ids = prompt_ids(args.prompt_tokens)
    timed = Timed(rtl)
    start = time.perf_counter()
    gen = generate(timed, ids, args.decode_steps + 1, check=golden)
    total = time.perf_counter() - start

    sim = make_backend("sim", SMALL)
    sim.load(binary)
    sim_timed = Timed(sim)
    generate(sim_timed, ids, args.decode_steps + 1)

    print(f"\nprompt {len(ids)} tokens (prefill chunks of {seq_len}, the rest through decode), "
          f"{args.decode_steps} decode steps feeding generated tokens back")
    print(f"{'phase':<9}{'runs':>6}{'wall s':>10}{'CPU s':>8}{'RTL cycles':>14}{'M cycles/s':>12}")
    for phase in (gen.prefill, gen.decode):
        n = phase.runs
        lo = 0 if phase is gen.prefill else gen.prefill.runs
        wall = sum(w for _, w, _ in timed.runs[lo:lo + n])
        cpu = sum(timed.cpu[lo:lo + n])
        cycles = phase.rtl_cycles or 0
        print(f"{phase.name:<9}{n:>6}{wall:>10.1f}{cpu:>8.1f}{cycles:>14,}{cycles / wall / 1e6 if wall else 0:>12.3f}")
    cycles = (gen.prefill.rtl_cycles or 0) + (gen.decode.rtl_cycles or 0)
    runs = sum(w for _, w, _ in timed.runs)
    print(f"{'total':<9}{len(timed.runs):>6}{runs:>10.1f}{sum(timed.cpu):>8.1f}{cycles:>14,}"
          f"{cycles / runs / 1e6:>12.3f}   (target < {TARGET_S:.0f} s: {'met' if runs < TARGET_S else 'NOT met'})")
    busy = {u: sum(st.busy[u] for _, _, st in timed.runs) for u in timed.runs[0][2].busy}
    print("busy (share of the RTL cycles with a beat in the unit): "
          + ", ".join(f"{u} {b / cycles:.1%}" for u, b in busy.items()))
    print(f"(wall s: the RTL runs; the whole generation{' with --check' if golden else ''} took {total:.1f} s)")

    print(f"\n{'program':<9}{'runs':>6}{'RTL cycles':>14}{'sim cycles':>14}{'RTL/sim':>10}")
    for name in ("prefill", "decode"):
        r = [s for p, _, s in timed.runs if p == name]
        s = [st for p, _, st in sim_timed.runs if p == name]
        rc, sc = sum(x.rtl_cycles for x in r), sum(x.cycles for x in s)
        print(f"{name:<9}{len(r):>6}{rc:>14,}{sc:>14,}{rc / sc if sc else 0:>10.6f}")
    same = all(a.cycles == b.cycles for (_, _, a), (_, _, b) in zip(timed.runs, sim_timed.runs))
    print(f"RTL `cycles` counter (halt's issue + 1 or the last completion) equals the simulator's in every run: "
          f"{same}")
    if gen.check is not None:
        print(f"check: {'bit exact' if gen.check.bit_exact else 'NOT bit exact: ' + gen.check.mismatch.describe()} "
              f"({gen.check.runs_checked} runs compared)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
