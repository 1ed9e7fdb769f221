"""Benchmark of the frontend: import time and peak memory of the 130M and 2.7B Mamba2 shapes.

Each case runs in a fresh subprocess (so peak RSS is its own) and imports the
prefill and the decode program to `mamba` IR:
  130m: d_model 768, 24 layers, d_state 128, headdim 64, expand 2, vocab 50288,
        from a checkpoint directory of random float32 weights written first
        (the import reads its config and tensor headers, not the weights);
  2.7b: d_model 2560, 64 layers (same other dims), from the config alone.
Targets: 130m under 60 s and 4 GB; 2.7b completes.

    .venv/bin/python benchmarks/bench_import.py [--seq-len 64] [--cases 130m,2.7b]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHAPES = {
    "130m": dict(d_model=768, n_layer=24, vocab_size=50288, d_state=128, headdim=64, expand=2, ngroups=1),
    "2.7b": dict(d_model=2560, n_layer=64, vocab_size=50288, d_state=128, headdim=64, expand=2, ngroups=1),
}


def _write_random_checkpoint(shape: dict, directory: Path) -> None:
    import torch

    from fastmamba.compiler.checkpoint import expected_shapes, save_hf_layout
    from fastmamba.compiler.config import Mamba2Config

    config = Mamba2Config(**shape)
    gen = torch.Generator().manual_seed(0)
    weights = {name: torch.randn(*s, generator=gen) * 0.02 for name, s in expected_shapes(config).items()}
    save_hf_layout(config, weights, directory)


def _peak_rss_mb() -> int:
    """This process's peak resident memory (VmHWM; ru_maxrss would carry the parent's over fork+exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _child(case: str, seq_len: int, directory: str | None) -> None:
    """Import both programs; print one JSON line of timings and peak memory."""
    t0 = time.perf_counter()
    from fastmamba.compiler.config import Mamba2Config
    from fastmamba.compiler.frontend.importer import import_model
    from fastmamba.compiler.pipeline import print_ir

    t_libs = time.perf_counter() - t0
    source = directory if directory else Mamba2Config(**SHAPES[case])
    result = {"case": case, "seq_len": seq_len, "library_import_s": round(t_libs, 2)}
    for program in ("prefill", "decode"):
        t = time.perf_counter()
        module = import_model(source, program, seq_len).module
        t_import = time.perf_counter() - t
        t = time.perf_counter()
        text = print_ir(module)
        result[program] = {"import_s": round(t_import, 2), "print_s": round(time.perf_counter() - t, 3),
                           "ir_bytes": len(text), "ops": sum(1 for _ in module.walk())}
    result["peak_rss_mb"] = _peak_rss_mb()
    print(json.dumps(result))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--cases", default="130m,2.7b")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.child:
        _child(args.child, args.seq_len, args.dir)
        return 0
    for case in args.cases.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            directory = None
            if case == "130m":
                t = time.perf_counter()
                _write_random_checkpoint(SHAPES[case], Path(tmp))
                print(f"# wrote a random 130m checkpoint in {time.perf_counter() - t:.1f} s", file=sys.stderr)
                directory = tmp
            cmd = [sys.executable, __file__, "--child", case, "--seq-len", str(args.seq_len)]
            cmd += ["--dir", directory] if directory else []
            t = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return 1
            line = json.loads(proc.stdout.strip().splitlines()[-1])
            line["total_wall_s"] = round(time.perf_counter() - t, 2)
            print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
