"""Test helper: the bundled model compiled for the `small` target once per test session.

Place in the flow: test support only.  `fastmamba compile --target small` of the bundled model takes
about half a minute; tests/test_compile_small.py (the simulator) and tests/test_rtl_model.py (the RTL)
share one binary, compiled as the command line does it (no --seq-len: the target's default).
"""

from __future__ import annotations

from pathlib import Path

_CACHE: dict[str, Path] = {}


def bundled_small(tmp_path_factory) -> Path:
    """The .fmb of `fastmamba compile --target small --calibration random --calibration-windows 1`."""
    if "bundled" not in _CACHE:
        from fastmamba.compiler.cli import main

        path = tmp_path_factory.mktemp("small") / "bundled.fmb"
        assert main(["compile", "--target", "small", "--calibration", "random", "--calibration-windows", "1",
                     "-o", str(path)]) == 0
        _CACHE["bundled"] = path
    return _CACHE["bundled"]
