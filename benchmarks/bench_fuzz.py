"""Benchmark of the fuzzers: long coverage-guided runs of the .fmb reader, the assembler and the target loader.

Each target of tests/fuzz/fuzz_targets.py runs in its own process under atheris (libFuzzer) through
tests/fuzz/run_fuzz.py with --keep-going: an unexpected exception is recorded (once per exception type and
place) and the run goes on; a hang over 1 s (-timeout=1) or an allocation over 1 GiB (-rss_limit_mb=1024,
RLIMIT_AS) ends it and counts as a finding too.  Printed per target: executions, seconds, executions/s,
the CPU seconds it used and executions per CPU second (the machine may be shared), coverage (libFuzzer's
edge count), corpus size, peak RSS and the findings; the targets of issue 16 are 1,000,000 executions of
the reader and 200,000 of the assembler with no finding.

    .venv/bin/python benchmarks/bench_fuzz.py [--runs reader=1000000,assembler=200000,target=200000]
                                              [--seed 1] [--keep DIR]
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DRIVER = ROOT / "tests" / "fuzz" / "run_fuzz.py"
DEFAULT_RUNS = {"reader": 1_000_000, "assembler": 200_000, "target": 200_000}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_target(name: str, runs: int, seed: int, workdir: Path) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    started, cpu = time.perf_counter(), _children_cpu()
    proc = subprocess.run([sys.executable, str(DRIVER), name, str(workdir), "--keep-going", f"-runs={runs}",
                           f"-seed={seed}", "-print_final_stats=1"], capture_output=True, text=True)
    seconds, cpu = time.perf_counter() - started, _children_cpu() - cpu
    err = proc.stderr
    stats = dict(re.findall(r"^stat::(\w+):\s+(\d+)", err, re.M))
    done = re.findall(r"^#(\d+)\s+(?:DONE|NEW|REDUCE|pulse|INITED).*?cov: (\d+).*?corp: (\d+)", err, re.M)
    findings = []
    log = workdir / "findings.txt"
    if log.exists():
        findings += [line.split("\t", 1)[1] for line in log.read_text().splitlines()]
    for artifact in sorted(workdir.iterdir()):
        if artifact.name.startswith(("crash-", "timeout-", "oom-", "slow-unit-")):
            findings.append(f"{artifact.name.split('-')[0]}: {artifact}")
    if proc.returncode != 0 and not findings:
        findings.append(f"exit status {proc.returncode}: {err.strip().splitlines()[-1] if err.strip() else ''}")
    executions = int(stats.get("number_of_executed_units", done[-1][0] if done else 0))
    return dict(target=name, executions=executions, seconds=seconds, cpu=cpu,
                per_s=executions / max(seconds, 1e-9), cov=int(done[-1][1]) if done else 0,
                corpus=int(done[-1][2]) if done else 0, rss=int(stats.get("peak_rss_mb", 0)), findings=findings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default=",".join(f"{k}={v}" for k, v in DEFAULT_RUNS.items()),
                        help="TARGET=EXECUTIONS[,...] (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="libFuzzer's -seed (default 1)")
    parser.add_argument("--keep", type=Path, help="keep each target's corpus and findings under DIR/TARGET")
    args = parser.parse_args()
    runs = {k: int(v.replace("_", "")) for k, v in (item.split("=") for item in args.runs.split(","))}
    with tempfile.TemporaryDirectory(prefix="bench-fuzz-") as tmp:
        base = args.keep or Path(tmp)
        rows = []
        for name, n in runs.items():
            row = run_target(name, n, args.seed, base / name)
            rows.append(row)
            print(f"{name:<10} {row['executions']:>10,} executions in {row['seconds']:7.1f} s "
                  f"({row['per_s']:,.0f}/s; {row['cpu']:.0f} CPU s, {row['executions'] / max(row['cpu'], 1e-9):,.0f} "
                  f"per CPU s), cov {row['cov']}, corpus {row['corpus']}, peak RSS {row['rss']} MB, "
                  f"findings {len(row['findings'])}", flush=True)
            for finding in row["findings"]:
                print(f"    {finding}", flush=True)
    total = sum(len(r["findings"]) for r in rows)
    print(f"total findings: {total} (command: benchmarks/bench_fuzz.py --runs {args.runs} --seed {args.seed})")
    sys.exit(1 if total else 0)


if __name__ == "__main__":
    main()
