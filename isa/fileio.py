"""Atomic file output: a failed command never leaves a half-written file.

Every writer of user-visible output (binaries, IR dumps, traces, JSON) goes
through `write_atomic`, which writes to a temporary file beside the target
and renames it into place only once the content is complete.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from fastmamba.isa.errors import InputError


def write_atomic(path: str | os.PathLike, data: bytes | str | list[bytes]) -> None:
    """Write `data` (or the concatenation of a list of parts) to `path` all at once, or leave `path`
    untouched."""
    path = Path(path)
    parts = data if isinstance(data, list) else [data.encode() if isinstance(data, str) else data]
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise InputError(f"output directory does not exist: {directory}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        # mkstemp creates 0600; give the file the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            for part in parts:
                f.write(part)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
