"""User-facing error types shared by every layer of fastmamba.

They live in `isa`, the bottom of the dependency order, so the simulator and
the compiler can both raise them (the compiler's `ModelError`, for models, is
in `fastmamba.compiler.errors`).  The command line turns any of them into a
one-line message and a non-zero exit.  Everything else is a bug in fastmamba:
`InternalError` (an invariant the code relies on does not hold) or any other
exception that escapes a command; the command line reports it as a bug
(compiler/diagnostics.py), with its traceback under `--debug`.
"""


class FastmambaError(Exception):
    """An error caused by the user's input (file, flag, model, binary)."""


class InputError(FastmambaError):
    """A missing or unreadable file, a bad flag value, a wrong shape."""


class InternalError(Exception):
    """A bug in fastmamba, never a problem with the input: an invariant the code relies on does not hold.

    Deliberately not a FastmambaError.  `reproducer` is a file holding the input that triggers it
    (the IR a failing pass ran on) and `rerun` the command that reproduces it from that file, when known.
    """

    def __init__(self, message: str, reproducer: str | None = None, rerun: str | None = None):
        super().__init__(message)
        self.reproducer, self.rerun = reproducer, rerun
