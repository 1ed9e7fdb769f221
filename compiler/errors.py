"""Errors about models: the compiler's side of the user-facing error types.

Place in the flow: beside the model loaders (`compiler.config`,
`compiler.checkpoint`) and the frontend that raise it.  `ModelError` is a
`FastmambaError` (fastmamba.isa.errors), so the command line reports it as a
one-line message like any other input problem; it lives here, not in `isa/`,
because only the compiler knows what a model is.
"""

from fastmamba.isa.errors import FastmambaError


class ModelError(FastmambaError):
    """An unsupported model or config value, or a missing/extra/mis-shaped tensor."""
