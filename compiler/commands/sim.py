"""`fastmamba sim`: run a program of a .fmb binary on the instruction-level simulator (or the RTL).

Place in the flow: the command-line face of `simulator.runtime`
(`SimulatorBackend`), or with `--backend rtl` of `hardware.backend`
(`RtlBackend`, the Verilated RTL machine: same outputs and counters, plus
`rtl_cycles`): reads the binary and the inputs, runs one program,
prints its outputs and the counters (`simulator.stats`), optionally writes a
Perfetto trace (`simulator.trace`) and the outputs and states as .npy files.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np

from fastmamba.isa.errors import FastmambaError, InputError
from fastmamba.isa.fileio import check_writable, check_writable_dir, write_atomic

HELP = "run a program of an instruction binary (.fmb) on the simulator"
DESCRIPTION = """\
Run one program of a .fmb binary on the functional + timing simulator of the
accelerator (docs/ACCELERATOR.md).  Inputs and recurrent states not given
keep the binary's constant-image bytes (zero, or data the program ships).
Prints the outputs (values when small, a summary otherwise) and the counters:
cycles, time at the target's clock, per-unit busy cycles and utilization,
stall cycles by cause, DDR traffic.  A hazard, deadlock or bad address in the
program is reported as a one-line error naming the bundle."""

BACKENDS = ("sim", "rtl")

SMALL_TENSOR = 16
"""Tensors with at most this many elements are printed in full; larger ones as a summary."""
PREVIEW = 8


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("sim", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("binary", metavar="PROG.fmb", help="binary to run")
    p.add_argument("--program", metavar="NAME", help="program to run (default: the binary's only program)")
    p.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy",
                   help="write an input or state tensor from a .npy file (repeatable); shape and dtype must match "
                        "its descriptor")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--trace", metavar="FILE",
                   help="write a Chrome/Perfetto trace-event JSON (1 us = 1 cycle; docs/PROFILE.md), also when an "
                        "error stops the run (up to the failing bundle)")
    p.add_argument("--target", default=None, metavar="NAME|FILE",
                   help="target configuration: a preset name or a config file (default: the preset whose digest "
                        "the binary records, else vc709); it must be the target the binary was built for")
    p.add_argument("--output-dir", metavar="DIR", help="write each output and state as DIR/NAME.npy")
    p.add_argument("--backend", choices=BACKENDS, default="sim",
                   help="sim: the instruction-level simulator (default); rtl: the RTL machine of hardware/ in "
                        "Verilator (docs/RTL.md; built on first use; adds the RTL's clock count)")
    p.set_defaults(run=run)


def parse_inputs(specs: list[str]) -> dict[str, np.ndarray]:
    """`NAME=FILE.npy` specs to arrays; InputError for a malformed spec, a repeated name or an unreadable file."""
    arrays: dict[str, np.ndarray] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise InputError(f"--input expects NAME=FILE.npy, got {spec!r}")
        if name in arrays:
            raise InputError(f"--input {name} given twice")
        try:
            # mapped first: a header declaring more than the file holds is a ValueError, not an allocation
            arrays[name] = np.array(np.load(path, mmap_mode="r", allow_pickle=False))
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read --input {name} from {path}: "
                             f"{getattr(exc, 'strerror', None) or exc}") from None
    return arrays


def choose_program(binary, name: str | None) -> str:
    if name is not None:
        return binary.program(name).name
    names = [p.name for p in binary.programs]
    if len(names) != 1:
        raise InputError(f"the binary has {len(names)} programs ({', '.join(names) or 'none'}): choose one with "
                         "--program")
    return names[0]


def describe_tensor(array: np.ndarray) -> dict:
    """Shape, dtype, and the values (small tensors) or a summary (min, max, mean, first values)."""
    out = {"shape": list(array.shape), "dtype": array.dtype.name}
    if array.size <= SMALL_TENSOR:
        out["values"] = array.tolist()
    else:
        flat = array.reshape(-1)
        out["summary"] = {"min": flat.min().item(), "max": flat.max().item(),
                          "mean": float(flat.mean(dtype=np.float64)),
                          "first": flat[:PREVIEW].tolist()}
    return out


def _format_tensor(role: str, name: str, array: np.ndarray) -> str:
    d = describe_tensor(array)
    head = f"{role} {name} {array.dtype.name}{list(array.shape)}"
    if "values" in d:
        return f"{head} = {d['values']}"
    s = d["summary"]
    return f"{head}: min {s['min']}, max {s['max']}, mean {s['mean']:.6g}, first {s['first']}"


def _save_npy(directory: Path, name: str, array: np.ndarray) -> None:
    data = io.BytesIO()
    np.save(data, array, allow_pickle=False)
    write_atomic(directory / f"{name}.npy", data.getvalue())


def run(args: argparse.Namespace) -> int:
    from fastmamba.isa.container import read_fmb
    from fastmamba.isa.target import load_target, preset_with_digest
    from fastmamba.simulator.runtime import SimulatorBackend
    from fastmamba.simulator.stats import counters

    binary = read_fmb(args.binary)
    target = load_target(args.target if args.target is not None else preset_with_digest(binary.target_digest)
                         or "vc709")
    inputs = parse_inputs(args.input)
    if args.backend == "rtl" and args.trace:
        raise InputError("--trace is a simulator feature: the RTL backend writes no trace")
    if args.trace:
        check_writable(args.trace, "--trace ")
    if args.output_dir:
        check_writable_dir(args.output_dir, "--output-dir ")
    if args.backend == "rtl":
        from fastmamba.hardware.backend import RtlBackend

        backend = RtlBackend(target)
    else:
        backend = SimulatorBackend(target)
    backend.load(binary)
    program = choose_program(backend.binary, args.program)
    try:
        result = backend.run(program, inputs, trace=bool(args.trace))
    except FastmambaError as exc:
        partial = getattr(exc, "trace", None)
        if args.trace and partial is not None:  # a run stopped by an error: its trace up to the failing bundle
            partial.finish()
            partial.write(args.trace)
        raise

    if args.trace:
        assert result.trace is not None  # run(trace=True) records one
        result.trace.write(args.trace)
    if args.output_dir:
        directory = Path(args.output_dir)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create --output-dir {directory}: {exc.strerror or exc}") from None
        for name, array in {**result.outputs, **result.states}.items():
            _save_npy(directory, name, array)

    if args.json:
        doc = {"program": program, "target": getattr(target, "name", args.target), **result.stats.to_dict(),
               "counters": counters(result.stats),
               "outputs": {n: describe_tensor(a) for n, a in result.outputs.items()},
               "states": {n: describe_tensor(a) for n, a in result.states.items()}}
        print(json.dumps(doc, indent=2))
        return 0
    print(f"program {program}: {result.stats.cycles:,} cycles, {result.stats.seconds * 1e3:.6g} ms "
          f"at {result.stats.clock_hz / 1e6:g} MHz")
    for role, tensors in (("output", result.outputs), ("state", result.states)):
        for name, array in tensors.items():
            print(_format_tensor(role, name, array))
    print()
    print(result.stats.format_table())
    return 0
