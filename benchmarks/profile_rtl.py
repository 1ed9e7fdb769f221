"""Where the Verilated machine spends its time: CPU samples of one program run, per module of the RTL.

Place in the flow: a measurement, not a test (it needs `perf`, `addr2line` and a few minutes of compile).
Builds the machine of `small` (hardware/build.py's Verilog and Verilator options) once more with the C++ at
`-O1 -g` in a temporary directory, runs one program kind of benchmarks/bench_rtl.py on it under
`perf record -e cpu-clock` (sampling by the clock: the hardware counters need not exist), and attributes each
sample in the model to the Verilog module of the statement it falls in: the variable a C++ statement assigns
(`top__DOT__unit_VEC__DOT__dp__DOT__...` is in `unit_VEC.dp`), or for Verilator's own temporaries
(`__Vdfg...`, `__Vtemp...`) the module most named on the statement's right-hand side.  Prints the share of
the samples per module, the largest first; `(eval)` is Verilator's scheduling and the functions' entries.

Run: `.venv/bin/python benchmarks/profile_rtl.py [--kind lin|conv|ssm|vec|dma|idle] [--top N]`.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from fastmamba.hardware import backend, build  # noqa: E402

KINDS = {"lin": "lin_program(400)", "conv": "conv_program(80)", "ssm": "ssm_program(160)",
         "vec": "vec_program(40)", "dma": "dma_program(800)", "idle": "idle_program(300)"}
RUN = """
import sys
from pathlib import Path
import numpy as np
sys.path.insert(0, {bench!r})
from fastmamba.hardware import backend
import bench_rtl as b
backend._LIBRARIES[(b.SMALL.digest(), backend.IMEM_WORDS)] = backend._Library(Path({lib!r}))
backend.run_bundles(b.SMALL, b.{program}, np.random.default_rng(0).integers(0, 256, 1 << 17, dtype=np.uint8))
"""
ASSIGN = re.compile(r"\s+(?:vlSelfRef\.)?(\w+)\s*(?:\[[^\]]*\]\s*)?=[^=]")


def debug_library(tmp: Path) -> Path:
    """The machine's library with symbols and line tables (the cached Verilog, the cached runtime)."""
    from fastmamba.isa.target import PRESETS

    vpath, header = build.verilog(PRESETS["small"], backend.IMEM_WORDS)
    vr = build.verilator_root()
    shutil.copy(vpath, tmp / "top.v")
    (tmp / "ports.h").write_text(header)
    build._run([str(vr / "bin" / "verilator"), "--cc", "top.v", "--top-module", build.TOP, *build.VERILATOR_FLAGS,
                "-CFLAGS", "-fPIC", "-Mdir", "obj"], tmp, "verilator")
    build._run(["make", "-s", "-j", str(build.MAKE_JOBS), "-C", "obj", "-f", f"V{build.TOP}.mk",
                f"OPT_FAST={build.OPT_FAST} -g", "VM_PARALLEL_BUILDS=1", "CFG_CXXFLAGS_PCH_I=-include",
                f"V{build.TOP}__ALL.a"], tmp, "make (Verilated C++)")
    runtime = build._verilated_runtime(vr, build.build_root())
    lib = tmp / "libmachine.so"
    inc = ["-Iobj", "-I.", f"-I{vr / 'include'}", f"-I{vr / 'include' / 'vltstd'}"]
    build._run(["g++", "-O2", "-g", "-fPIC", "-shared", "-std=c++17", *inc,
                *map(str, sorted(build.HARNESS_DIR.glob("*.cpp"))), f"obj/V{build.TOP}__ALL.a", str(runtime),
                "-o", str(lib), "-pthread"], tmp, "link the harness")
    return lib


def module_of(name: str) -> str:
    """`top__DOT__unit_LIN__DOT__mac__DOT__x` -> `unit_LIN.mac`; a signal of the top module -> `top`."""
    parts = name[len("top__DOT__"):].split("__DOT__")
    return ".".join(parts[:2]) if len(parts) > 2 else (parts[0] if len(parts) > 1 else "top")


def statement_module(lines: list[str], index: int) -> str:
    i = index
    while i >= 0:
        if re.match(r"^(void|\}|static|bool)", lines[i]):
            return "(eval)"
        found = ASSIGN.match(lines[i])
        if found:
            break
        i -= 1
    else:
        return "(eval)"
    var = found.group(1)
    if var.startswith("top__DOT__"):
        return module_of(var)
    body = []
    for line in lines[i:i + 40]:
        body.append(line)
        if line.rstrip().endswith(";"):
            break
    named = Counter(module_of(n) for n in re.findall(r"top__DOT__\w+", " ".join(body)))
    return named.most_common(1)[0][0] if named else "(eval)"


def attribute(lib: Path, perf_data: Path, src_dir: Path) -> Counter:
    script = subprocess.run(["perf", "script", "-i", str(perf_data), "--show-mmap-events", "-F", "ip,dso"],
                            capture_output=True, text=True).stdout
    base = None
    ips = []
    for line in script.splitlines():
        mapped = re.search(r"\[(0x[0-9a-f]+)\(0x[0-9a-f]+\) @ (0x[0-9a-f]+)", line)
        if "PERF_RECORD_MMAP" in line and str(lib) in line and "r-xp" in line and mapped:
            base = int(mapped.group(1), 16) - int(mapped.group(2), 16)
        elif str(lib) in line and "PERF_RECORD" not in line:
            ips.append(int(line.split()[0], 16))
    if base is None or not ips:
        raise SystemExit("no samples in the machine's library")
    args = []
    for ip in ips:
        args += [hex(ip - base), "0x0"]  # 0x0 answers ??: the end of one address's inlined frames
    out = subprocess.run(["addr2line", "-i", "-e", str(lib), *args], capture_output=True, text=True).stdout
    frames: list[list[str]] = []
    cur: list[str] = []
    for line in out.splitlines():
        if line.startswith("??"):
            if cur:
                frames.append(cur)
            cur = []
        elif line:
            cur.append(line)
    files: dict[str, list[str]] = {}
    shares: Counter = Counter()
    for chain in frames:
        where = chain[-1].split(" ")[0]  # the outermost frame: the model's statement
        path, _, num = where.rpartition(":")
        name = Path(path).name
        if not name.startswith(f"V{build.TOP}___024root") or not num.isdigit():
            shares["(eval)" if name.startswith(f"V{build.TOP}") else f"({name or 'other'})"] += 1
            continue
        if name not in files:
            files[name] = (src_dir / name).read_text().splitlines()
        shares[statement_module(files[name], int(num) - 1)] += 1
    return shares


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kind", choices=sorted(KINDS), default="lin")
    ap.add_argument("--top", type=int, default=12)
    args = ap.parse_args()
    for tool in ("perf", "addr2line"):
        if shutil.which(tool) is None:
            print(f"profile_rtl: `{tool}` is not installed")
            return 1
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        print("building the machine with -g (minutes) ...", flush=True)
        lib = debug_library(tmp)
        code = RUN.format(bench=str(ROOT / "benchmarks"), lib=str(lib), program=KINDS[args.kind])
        data = tmp / "perf.data"
        subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "4000", "-o", str(data), "--",
                        sys.executable, "-c", code], check=True, capture_output=True)
        shares = attribute(lib, data, tmp / "obj")
    total = sum(shares.values())
    print(f"{args.kind}: {total:,} samples in the machine's library (cpu-clock at 4 kHz); share per module:")
    for module, n in shares.most_common(args.top):
        print(f"  {n / total:6.1%}  {module}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
