"""The FileCheck tests of tests/filecheck/ (one .mlir file per case, run by lit), as one pytest test.

Each file's RUN lines pipe `fastmamba opt` through `filecheck` (both from this Python environment);
lit runs them in parallel with its scratch files under tmp_path.  A failure lists every failing
file and lit's report of each (the command, its output, what filecheck expected).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

FILECHECK_DIR = Path(__file__).resolve().parent / "filecheck"


def test_filecheck_suite(tmp_path):
    cases = sorted(FILECHECK_DIR.rglob("*.mlir"))
    cases = [c for c in cases if "Inputs" not in c.relative_to(FILECHECK_DIR).parts]
    assert cases, f"no FileCheck tests under {FILECHECK_DIR}"
    proc = subprocess.run([sys.executable, "-c", "import sys; from lit.main import main; sys.exit(main())",
                           "-v", "--param", f"exec_root={tmp_path}", str(FILECHECK_DIR)],
                          capture_output=True, text=True, env={**os.environ, "TMPDIR": str(tmp_path)})
    failed = re.findall(r"^(?:FAIL|UNRESOLVED|XPASS|TIMEOUT): fastmamba :: (\S+)", proc.stdout, re.M)
    passed = re.findall(r"^PASS: fastmamba :: (\S+)", proc.stdout, re.M)
    assert proc.returncode == 0 and not failed, (
        f"{len(failed)} FileCheck test(s) failed: {', '.join(failed) or '(lit itself failed)'}\n"
        f"{proc.stdout[-20000:]}\n{proc.stderr[-4000:]}")
    assert len(passed) == len(cases), f"lit ran {len(passed)} of the {len(cases)} files: {proc.stdout[-4000:]}"
