"""Internal errors: how fastmamba reports its own bugs, as opposed to bad input.

Place in the flow: beside the command line, at the top of the compiler.  A
problem with the user's input is a `FastmambaError` (fastmamba.isa.errors)
and prints as one line.  Anything else that escapes a command is a bug in
fastmamba: an explicit invariant check (`invariant`, raising `InternalError`)
or any other exception.  `report` prints it as one short block saying that it
is a bug, what to send, and where the reproducer IR was written when a
pipeline was running; the traceback only with `--debug`.  The pipeline driver
writes that reproducer with `write_reproducer`: into the dump folder the user
asked for, else into a new file named in the message, never silently.
"""

from __future__ import annotations

import os
import tempfile
import traceback
from pathlib import Path
from typing import TextIO

from fastmamba.isa.errors import InternalError

__all__ = ["EXIT_INTERNAL", "InternalError", "invariant", "write_reproducer", "describe", "report"]

# The exit status of a command that hit a bug (sysexits.h EX_SOFTWARE); input errors exit with 1, usage errors with 2.
EXIT_INTERNAL = 70


def invariant(condition: object, message: str) -> None:
    """Raise InternalError(message) unless `condition` holds: for facts the code relies on, not for input checks."""
    if not condition:
        raise InternalError(message)


def write_reproducer(text: str, name: str, dump_dir: str | os.PathLike | None = None) -> Path:
    """Write `text` (the IR a failing pass ran on) to `dump_dir`/`name`, or without a dump folder to a new
    file `fastmamba-*-<name>` in the temporary folder; returns the path, for the message to name."""
    if dump_dir is not None:
        path = Path(dump_dir) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path
    fd, temp = tempfile.mkstemp(prefix="fastmamba-", suffix=f"-{name}")
    with os.fdopen(fd, "w") as out:
        out.write(text)
    return Path(temp)


def describe(exc: BaseException) -> str:
    """One line for a bug: an InternalError's message; for any other exception its type, the first line of
    its message and the innermost frame it was raised in."""
    if isinstance(exc, InternalError):
        return str(exc)
    lines = str(exc).splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        text += f" (in {last.name}, {_short(last.filename)}:{last.lineno})"
    return text


def _short(filename: str) -> str:
    """A source path from the package root (fastmamba/...), or as it is outside it."""
    parts = Path(filename).parts
    for root in ("compiler", "passes", "isa", "simulator", "hardware", "xdsl", "torch", "numpy"):
        if root in parts:
            return "/".join(parts[len(parts) - 1 - parts[::-1].index(root):])
    return filename


def report(exc: BaseException, command: str, debug: bool, stream: TextIO) -> int:
    """Print a bug that escaped `command` (e.g. "fastmamba opt") to `stream`; returns EXIT_INTERNAL.

    With `debug` the full traceback comes first; without it, one line says how to get it."""
    if debug:
        stream.write("".join(traceback.format_exception(exc)))
    lines = [f"{command}: internal error: {describe(exc)}",
             "  This is a bug in fastmamba, not a problem with your input."]
    reproducer = getattr(exc, "reproducer", None)
    rerun = getattr(exc, "rerun", None)
    if reproducer:
        lines.append(f"  The IR the failing pass ran on is in {reproducer}")
    if rerun:
        lines.append(f"  Reproduce it with: {rerun}")
    what = "the command you ran, this message" + (" and that file" if reproducer else "")
    lines.append(f"  Please report it to the fastmamba developers with {what}.")
    if not debug:
        lines.append(f"  Rerun with --debug for the traceback ({command.split()[0]} --debug ...).")
    stream.write("\n".join(lines) + "\n")
    return EXIT_INTERNAL
