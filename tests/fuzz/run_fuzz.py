"""Run one fuzz target of tests/fuzz/fuzz_targets.py under atheris (coverage-guided, libFuzzer).

Place in the flow: test support.  tests/test_fuzz.py runs it for a bounded, seeded number of inputs,
benchmarks/bench_fuzz.py for a million; by hand:

    .venv/bin/python tests/fuzz/run_fuzz.py reader /tmp/fuzz-reader -runs=100000 -seed=1

WORKDIR receives the corpus (seeded with the target's real inputs, grown by libFuzzer), and a crashing
input as WORKDIR/crash-<sha1> (libFuzzer's artifact).  Every other argument is libFuzzer's; the driver
adds `-timeout=1` (a hang is an input that takes over 1 s) and `-rss_limit_mb=1024` unless given, and
caps the address space at 1 GiB over what the process holds once it has imported everything
(RLIMIT_AS), so that any single allocation over 1 GiB fails (a MemoryError, a finding) instead of
swapping.  With `--keep-going` an unexpected exception is recorded instead of ending the run: its input
as WORKDIR/findings/<signature hash>.bin, once per signature (exception type and the innermost
fastmamba frame), and the signature as a line of WORKDIR/findings.txt.
"""

from __future__ import annotations

import hashlib
import os
import resource
import sys
import traceback
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # numpy's thread pool: fewer threads, less address space


def run_with_own_peak_rss() -> None:
    """Run the rest of this script in a forked child when this process's peak RSS is inherited.

    libFuzzer's -rss_limit_mb reads getrusage's peak RSS, and Linux carries the peak of the address space
    an exec replaced into the new program: started from a parent holding 1.1 GB (a long pytest run),
    the driver would report an out-of-memory on its first input.  A forked child starts its own count.
    """
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    status = Path("/proc/self/status").read_text()
    rss_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    if peak_kib <= 4 * rss_kib:
        return
    pid = os.fork()
    if pid == 0:
        return  # the child goes on with the run
    _, status_code = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status_code):
        os.kill(os.getpid(), os.WTERMSIG(status_code))
    os._exit(os.waitstatus_to_exitcode(status_code))


run_with_own_peak_rss()

import atheris  # noqa: E402

# The modules whose branches guide each target (instrumenting only these keeps start-up short).
INSTRUMENTED = {
    "reader": ["fastmamba.isa.container", "fastmamba.isa.encoding", "fastmamba.isa.instructions", "json"],
    "assembler": ["fastmamba.isa.assembler", "fastmamba.isa.instructions", "fastmamba.isa.container", "json"],
    "target": ["fastmamba.isa.target", "json", "tomllib"],
}
sys.path.insert(0, str(Path(__file__).resolve().parent))
with atheris.instrument_imports(include=INSTRUMENTED.get(sys.argv[1] if len(sys.argv) > 1 else "", ["fastmamba"])):
    import fuzz_targets  # noqa: E402

ADDRESS_SPACE_HEADROOM = 1 << 30
DEFAULTS = {"-timeout": "1", "-rss_limit_mb": "1024"}


def signature(exc: BaseException) -> str:
    """`Type at file:line` of the innermost frame in fastmamba or the targets (the place to fix)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if "/fastmamba/" in f.filename or "/isa/" in f.filename or "/compiler/" in f.filename
              or "fuzz_targets" in f.filename]
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
    return f"{type(exc).__name__} at {where}"


def keep_going(fn, workdir: Path):
    """`fn` with every unexpected exception recorded (once per signature) instead of raised."""
    findings = workdir / "findings"
    findings.mkdir(exist_ok=True)
    seen: set[str] = set()

    def guarded(data: bytes) -> None:
        try:
            fn(data)
        except Exception as exc:  # noqa: BLE001 - the point: anything that escapes the target
            sig = signature(exc)
            if sig in seen:
                return
            seen.add(sig)
            name = hashlib.sha1(sig.encode()).hexdigest()[:12]
            (findings / f"{name}.bin").write_bytes(data)
            with open(workdir / "findings.txt", "a") as log:
                log.write(f"{name}\t{sig}\t{str(exc).splitlines()[0][:200] if str(exc) else ''}\n")
    return guarded


def cap_address_space() -> None:
    status = Path("/proc/self/status").read_text()
    vm_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmSize:"))
    limit = vm_kib * 1024 + ADDRESS_SPACE_HEADROOM
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))


def main(argv: list[str]) -> None:
    args = [a for a in argv[1:] if a != "--keep-going"]
    targets = {**fuzz_targets.TARGETS, **fuzz_targets.CANARIES}
    if len(args) < 2 or args[0] not in targets:
        sys.exit(f"usage: {argv[0]} {{{','.join(targets)}}} WORKDIR [--keep-going] [-libfuzzer_flag=V]")
    name, workdir, flags = args[0], Path(args[1]), args[2:]
    corpus = workdir / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    if not any(corpus.iterdir()):
        for seed_name, data in fuzz_targets.seeds(name).items():
            (corpus / seed_name).write_bytes(data)
    given = {f.split("=", 1)[0] for f in flags}
    flags += [f"{k}={v}" for k, v in DEFAULTS.items() if k not in given]
    if "-artifact_prefix" not in given:
        flags.append(f"-artifact_prefix={workdir}/")
    fn = targets[name]
    if "--keep-going" in argv:
        fn = keep_going(fn, workdir)
    mutator = fuzz_targets.reader_mutator(lambda data, n: atheris.Mutate(data, n)) if name == "reader" else None
    atheris.Setup([argv[0], *flags, str(corpus)], fn, custom_mutator=mutator)
    cap_address_space()
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
