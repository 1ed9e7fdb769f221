"""Fuzzing the parsers of untrusted input: the .fmb reader, the assembler, the target-file loader (issue 16).

A bounded, seeded run of each target of tests/fuzz/fuzz_targets.py under atheris (coverage-guided,
libFuzzer; deterministic for a fixed -seed and -runs), the saved crash inputs of tests/fuzz/regressions/
replayed (each is now a clean one-line error), and checks that the seeds are real, valid inputs and that
the reader's mutator gets past the checksums.  The long runs (a million inputs) are
benchmarks/bench_fuzz.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parent / "fuzz"
sys.path.insert(0, str(FUZZ))

import fuzz_targets  # noqa: E402

from fastmamba.isa.container import ContainerError, load_fmb  # noqa: E402
from fastmamba.isa.errors import FastmambaError  # noqa: E402

# Executions per target in the suite: about a second each on one core, after a start-up of about two
# (a million: benchmarks/bench_fuzz.py).
RUNS = {"reader": 3000, "assembler": 500, "target": 5000}


def test_bounded_fuzz_runs(tmp_path):
    """No input of a seeded run of each target escapes with anything but a FastmambaError or takes over 5 s
    (or 1 GiB); the three run side by side."""
    procs = {}
    for name in sorted(fuzz_targets.TARGETS):
        (tmp_path / name).mkdir()
        procs[name] = subprocess.Popen([sys.executable, str(FUZZ / "run_fuzz.py"), name, str(tmp_path / name),
                                        f"-runs={RUNS[name]}", "-seed=1", "-timeout=5"],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    errs = {name: proc.communicate(timeout=600)[1] for name, proc in procs.items()}  # all ended before asserting
    for name, proc in procs.items():
        err = errs[name]
        crashes = sorted(p.name for p in (tmp_path / name).iterdir()
                         if p.name.startswith(("crash-", "timeout-", "oom-")))
        assert proc.returncode == 0 and not crashes, f"{name}: {crashes}\n{err[-3000:]}"
        done = [line for line in err.splitlines() if "DONE" in line]
        assert done and done[0].startswith(f"#{RUNS[name]}\t"), err[-2000:]
        assert "cov: " in done[0] and int(done[0].split("cov: ")[1].split()[0]) > 100  # instrumented


def test_the_driver_reports_each_kind_of_finding(tmp_path):
    """Targets that raise, allocate 2 GiB or sleep 5 s end their run with libFuzzer's artifact of that kind:
    the bounded runs above would fail on such an input."""
    expected = {"canary-raises": ("crash-", "LookupError: canary"), "canary-allocates": ("crash-", "MemoryError"),
                "canary-hangs": ("timeout-", "timeout=1s")}
    procs = {}
    for name in expected:
        (tmp_path / name).mkdir()
        procs[name] = subprocess.Popen([sys.executable, str(FUZZ / "run_fuzz.py"), name, str(tmp_path / name),
                                        "-runs=10", "-seed=1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True)
    outputs = {name: "".join(proc.communicate(timeout=600)) for name, proc in procs.items()}  # all ended first
    for name, (prefix, words) in expected.items():
        err = outputs[name]  # stdout and stderr: atheris prints the uncaught exception to stdout
        artifacts = [p.name for p in (tmp_path / name).iterdir() if p.name.startswith(prefix)]
        assert procs[name].returncode != 0 and len(artifacts) == 1 and words in err, f"{name}:\n{err[-2000:]}"


def test_a_parents_peak_rss_is_not_the_drivers(tmp_path):
    """Started from a process holding 1.5 GB (a long pytest run: Linux carries the peak RSS across exec), the
    hanging canary still ends in a timeout, not in an out-of-memory on its first input (the CI failure of
    stop 19)."""
    parent = ("import subprocess, sys\n"
              "big = bytearray(1536 << 20)\n"
              "big[::4096] = b'\\x01' * len(big[::4096])\n"
              f"sys.exit(subprocess.run([sys.executable, {str(FUZZ / 'run_fuzz.py')!r}, 'canary-hangs', "
              f"{str(tmp_path)!r}, '-runs=2', '-seed=1']).returncode)\n")
    proc = subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True, timeout=600)
    artifacts = sorted(p.name.split("-")[0] for p in tmp_path.iterdir() if p.name != "corpus")
    assert proc.returncode != 0 and artifacts == ["timeout"], proc.stdout[-2000:] + proc.stderr[-2000:]


@pytest.mark.parametrize("name", sorted(fuzz_targets.TARGETS))
def test_seeds_are_valid_inputs(name):
    seeds = fuzz_targets.seeds(name)
    assert len(seeds) >= 3
    for data in seeds.values():
        fuzz_targets.parse(name, data)  # raises if a seed is stale (e.g. after a format change)


def test_a_compiled_model_is_among_the_reader_seeds():
    binary = load_fmb(fuzz_targets.seeds("reader")["model_tiny.fmb"])
    assert [p.name for p in binary.programs] == ["prefill", "decode"] and '"plan"' in binary.meta


class _Always:
    """A random.Random stand-in whose draws never fall in the mutator's 'leave it as it is' branch."""

    def random(self) -> float:
        return 0.5


def test_the_reader_mutator_reseals_checksums():
    data = bytearray(fuzz_targets.seeds("reader")["ssm_step.fmb"])
    binary = load_fmb(bytes(data))
    at = bytes(data).index(binary.const_image[:16])  # the constant image's section
    data[at] ^= 0x01
    with pytest.raises(ContainerError, match="checksum mismatch"):
        load_fmb(bytes(data))
    damaged = load_fmb(fuzz_targets.fix_up(bytes(data), _Always()))  # resealed: the flip reaches the parser
    assert damaged.const_image[0] == binary.const_image[0] ^ 0x01 and damaged.programs == binary.programs
    cut = bytes(data[:-8])
    with pytest.raises(ContainerError, match="truncated: header declares"):
        load_fmb(cut)
    with pytest.raises(ContainerError) as info:  # the size field follows the length: the section table is next
        load_fmb(fuzz_targets.fix_up(cut, _Always()))
    assert "lies outside the file" in str(info.value) or "section" in str(info.value), info.value
    assert "declares" not in str(info.value) and "checksum" not in str(info.value)


REGRESSIONS = [(name, path, data) for name in sorted(fuzz_targets.TARGETS)
               for path, data in fuzz_targets.regressions(name).items()]


@pytest.mark.parametrize("name, path, data", REGRESSIONS, ids=[f"{n}/{p.name}" for n, p, _ in REGRESSIONS])
def test_regression(name, path, data):
    """Each input that once crashed a parser is now a one-line FastmambaError (and the target passes)."""
    with pytest.raises(FastmambaError) as info:
        fuzz_targets.parse(name, data)
    message = str(info.value)
    assert "\n" not in message and len(message) < 300, message
    fuzz_targets.TARGETS[name](data)


def test_every_target_has_regressions():
    assert {name for name, _, _ in REGRESSIONS} == set(fuzz_targets.TARGETS)
