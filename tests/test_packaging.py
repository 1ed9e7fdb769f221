"""The installed namespace: every source folder installs under `fastmamba`, and nothing else does.

pyproject.toml maps the repository's top-level folders (compiler/, isa/,
passes/, simulator/, hardware/) to subpackages of `fastmamba` with an explicit
package list; a folder with an `__init__.py` missing from that list would be
left out of a wheel silently.  These tests read pyproject.toml and the tree,
and check a real (non-editable) wheel's contents.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _setuptools_config() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def _package_of(folder: Path, package_dir: dict[str, str]) -> str | None:
    """The dotted name `folder` installs as, through the package-dir mapping (None: not mapped)."""
    rel = folder.relative_to(REPO).parts
    for name, root in package_dir.items():
        root_parts = Path(root).parts
        if rel[: len(root_parts)] == root_parts:
            return ".".join([name, *rel[len(root_parts):]])
    return None


def test_every_source_package_is_listed_and_mapped():
    config = _setuptools_config()
    listed = set(config["packages"])
    package_dir = config["package-dir"]
    found = set()
    for init in REPO.glob("*/**/__init__.py"):
        top = init.relative_to(REPO).parts[0]
        if top in ("tests", "benchmarks", "scripts", "examples", "build") or top.startswith("."):
            continue
        name = _package_of(init.parent, package_dir)
        assert name is not None, f"{init.parent.relative_to(REPO)} has an __init__.py but no package-dir mapping"
        found.add(name)
    assert found == listed, f"not listed: {sorted(found - listed)}; listed but absent: {sorted(listed - found)}"
    assert all(name == "fastmamba" or name.startswith("fastmamba.") for name in listed)


def test_no_source_module_imports_the_old_top_level_names():
    bad = []
    for path in REPO.rglob("*.py"):
        if ".venv" in path.parts or "build" in path.parts:
            continue
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            words = line.split()
            if len(words) >= 2 and words[0] in ("from", "import") and \
                    words[1].split(".")[0] in ("compiler", "isa", "passes", "simulator", "hardware"):
                bad.append(f"{path.relative_to(REPO)}:{lineno}: {line.strip()}")
    assert not bad, "imports outside the fastmamba namespace:\n" + "\n".join(bad)


def test_wheel_installs_only_the_fastmamba_namespace(tmp_path):
    """A real wheel (not the editable install) holds `fastmamba/...` files and no other top-level package."""
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 and "No module named" in proc.stderr:
        pytest.skip(f"cannot build a wheel without isolation here: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("fastmamba-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        tops = {name.split("/")[0] for name in zf.namelist() if not name.split("/")[0].endswith(".dist-info")}
        names = set(zf.namelist())
    assert tops == {"fastmamba"}, tops
    for module in ("fastmamba/__main__.py", "fastmamba/compiler/cli.py", "fastmamba/isa/instructions.py",
                   "fastmamba/passes/lower_to_accel.py", "fastmamba/simulator/engine.py",
                   "fastmamba/compiler/models/default/model.safetensors"):
        assert module in names, module
