"""User-facing error types shared by every layer of fastmamba.

They live in `isa`, the bottom of the dependency order, so the simulator and
the compiler can both raise them (the compiler's `ModelError`, for models, is
in `fastmamba.compiler.errors`).  The command line turns any of them into a
one-line message and a non-zero exit; everything else is a bug and keeps its
traceback.
"""


class FastmambaError(Exception):
    """An error caused by the user's input (file, flag, model, binary)."""


class InputError(FastmambaError):
    """A missing or unreadable file, a bad flag value, a wrong shape."""
