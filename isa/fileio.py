"""File output for every command: atomic writes, and the check that an output can be written at all.

Place in the flow: under every writer of user-visible output (binaries, IR dumps, traces, JSON).
`write_atomic` writes to a temporary file beside the target and renames it into place only once the
content is complete, so a failed command never leaves a half-written file; `check_writable` is the same
test made before any long work (a compile checks its -o and --dump-dir before importing the model).
Both turn an operating-system failure (missing or read-only directory, permission, full disk) into an
`InputError` naming the path: the one error path for all commands' output.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from fastmamba.isa.errors import InputError


def _directory(path: Path, what: str) -> Path:
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise InputError(f"cannot write {what}{path}: the directory {directory} does not exist")
    if path.is_dir():
        raise InputError(f"cannot write {what}{path}: it is a directory")
    return directory


def _cannot(path: Path, what: str, exc: OSError) -> InputError:
    return InputError(f"cannot write {what}{path}: {exc.strerror or exc}")


def check_writable(path: str | os.PathLike, what: str = "") -> None:
    """InputError unless a file can be created beside `path` (what write_atomic would do); writes nothing.

    `what` names the option in the message ("-o ", "--trace ")."""
    path = Path(path)
    directory = _directory(path, what)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=directory)
    except OSError as exc:
        raise _cannot(path, what, exc) from None
    os.close(fd)
    os.unlink(tmp)


def check_writable_dir(directory: str | os.PathLike, what: str = "") -> None:
    """InputError unless `directory` is a directory files can be created in, or can be made one (its nearest
    existing ancestor is a writable directory); creates nothing."""
    directory = Path(directory)
    existing = directory
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"cannot create {what}{directory}: {existing} is not a directory")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".fastmamba-", suffix=".probe", dir=existing)
    except OSError as exc:
        verb = "write into" if existing == directory else "create"
        raise InputError(f"cannot {verb} {what}{directory}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(tmp)


def write_atomic(path: str | os.PathLike, data: bytes | str | list[bytes], what: str = "") -> None:
    """Write `data` (or the concatenation of a list of parts) to `path` all at once, or leave `path`
    untouched; an OSError is an InputError naming `path` (and `what`, the option, when given)."""
    path = Path(path)
    parts = data if isinstance(data, list) else [data.encode() if isinstance(data, str) else data]
    directory = _directory(path, what)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise _cannot(path, what, exc) from None
    try:
        # mkstemp creates 0600; give the file the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            for part in parts:
                f.write(part)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise _cannot(path, what, exc) from None
        raise
