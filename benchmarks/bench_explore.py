"""Exploration benchmark: the wall time of a `fastmamba explore` sweep on Ray with 2 workers against 1 worker.

    .venv/bin/python benchmarks/bench_explore.py [--space examples/explore_130m.toml] [--model 130m]
                                                 [--seq-len 64] [--workers 2,1] [--keep DIR]

For each worker count, `fastmamba explore` of the space (default: 54 points of the 130M shape at L = 64, plus
the vc709 preset: 55 trials) into a fresh folder (no resume), Ray started locally with that many CPUs.  Printed
per run: trials (ok, failed), the sweep's wall time (Ray Tune's fit: the trials, not the one calibration or Ray's
start), the whole command's wall time and CPU time (user + sys of the command and the Ray processes it waited
for: not Ray's workers), the seconds spent inside the trials (their compile and simulation, summed: over the
sweep's wall time, how many ran at once) and the trials' own CPU time (`cpu_s`, in the workers), seconds per
trial, the machine's load average (1, 5, 15 min) before and after (the trials share its cores with whatever else
runs), and the command's summary (the best configurations in prefill tokens/s per DSP and decode tokens/s per
LUT against the vc709 preset); then the speed-up of each run over the slowest.  --keep DIR keeps the last run's
results folder (results.csv, pareto.png, ...).  Run it at `nice -n -5` on a shared machine (Ray's workers keep
the command's priority: compiler/explore/sweep.py).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default=str(ROOT / "examples" / "explore_130m.toml"))
    parser.add_argument("--model", default="130m")
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--workers", default="2,1")
    parser.add_argument("--keep", metavar="DIR", help="keep the last run's results folder here")
    args = parser.parse_args()
    command = [sys.executable, "-m", "fastmamba", "explore", "--space", args.space, "--model", args.model,
               "--seq-len", str(args.seq_len)]
    print(f"fastmamba explore of {args.space} with {args.model} at L = {args.seq_len}; {os.cpu_count()} cores",
          flush=True)
    runs = []
    for workers in [int(w) for w in args.workers.split(",")]:
        with tempfile.TemporaryDirectory(prefix="bench-explore-") as tmp:
            out = Path(tmp) / "out"
            load = os.getloadavg()
            t, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
            proc = subprocess.run(command + ["--workers", str(workers), "-o", str(out)], capture_output=True,
                                  text=True)
            wall, after = time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            if proc.returncode:
                sys.exit(f"explore with {workers} worker(s) failed:\n{proc.stderr[-2000:]}")
            doc = json.loads((out / "results.json").read_text())
            if args.keep:
                shutil.rmtree(args.keep, ignore_errors=True)
                shutil.copytree(out, args.keep)
        trials = doc["trials"]
        ok = sum(r["status"] == "ok" for r in trials)
        sweep = doc["times_s"]["sweep_s"]
        if not trials:
            sys.exit(f"explore with {workers} worker(s) ran no trial:\n{proc.stderr[-2000:]}")
        in_trials = sum(r.get("compile_s", 0) + r.get("simulate_s", 0) for r in trials)
        trials_cpu = sum(r.get("cpu_s", 0) for r in trials)
        runs.append({"workers": workers, "trials": len(trials), "ok": ok, "failed": len(trials) - ok,
                     "sweep_s": round(sweep, 1), "command_s": round(wall, 1), "command_cpu_s": round(cpu, 1),
                     "trials_s": round(in_trials, 1), "trials_cpu_s": round(trials_cpu, 1),
                     "s_per_trial": round(sweep / len(trials), 2),
                     "load_before": [round(v, 1) for v in load],
                     "load_after": [round(v, 1) for v in os.getloadavg()]})
        print(json.dumps(runs[-1]), flush=True)
        print("\n".join(line for line in proc.stdout.strip().splitlines() if not line.startswith("wrote ")),
              flush=True)
    if len(runs) > 1:
        slow = max(runs, key=lambda r: r["sweep_s"])
        for r in runs:
            print(f"{r['workers']} worker(s): {r['trials']} trials ({r['ok']} ok) in {r['sweep_s']} s "
                  f"({r['s_per_trial']} s a trial; {r['trials_s']} s inside the trials, {r['trials_cpu_s']} s of CPU, "
                  f"{r['trials_s'] / r['sweep_s']:.2f} trials at once), {slow['sweep_s'] / r['sweep_s']:.2f}x the "
                  f"{slow['workers']}-worker run; the command {r['command_s']} s wall, {r['command_cpu_s']} s CPU; "
                  f"load average (1, 5, 15 min) {r['load_before']} -> {r['load_after']}")


if __name__ == "__main__":
    main()
