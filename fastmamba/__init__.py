"""fastmamba: a compiler from PyTorch Mamba2 to a FastMamba-style accelerator ISA, its simulator and its RTL.

The installed namespace.  The repository keeps its parts as top-level folders
(`compiler/`, `passes/`, `isa/`, `simulator/`, `hardware/`); pyproject.toml maps
each to a subpackage of this one (`fastmamba.compiler`, `fastmamba.passes`,
`fastmamba.isa`, `fastmamba.simulator`, `fastmamba.hardware`), so installing
fastmamba adds only the name `fastmamba` to site-packages.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fastmamba")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
