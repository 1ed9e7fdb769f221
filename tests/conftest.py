"""pytest set-up shared by every test: the suite leaves nothing behind in the temporary folder.

Place in the flow: test support only.  For the whole session, TMPDIR (inherited by the commands the
tests start) and Python's tempfile point to a fresh folder inside the system's temporary folder; at
the end that folder must be empty (everything a test keeps belongs under its tmp_path), and is
removed.  The system's temporary folder itself is shared with other programs, so it cannot be
compared before and after; this private folder can.  pytest's own tmp_path folders are made before
the switch and stay where pytest keeps them; torch's inductor cache, which torch makes on its own
while the tests run (by default <temporary folder>/torchinductor_<user>), goes under them too.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _nothing_left_in_tmpdir(tmp_path_factory):
    tmp_path_factory.getbasetemp()  # pytest's tmp_path root, in the system's temporary folder as usual
    private = Path(tempfile.mkdtemp(prefix="fastmamba-tests-"))
    saved = {name: os.environ.get(name) for name in ("TMPDIR", "TORCHINDUCTOR_CACHE_DIR")}
    saved_tempdir = tempfile.tempdir
    os.environ["TMPDIR"], tempfile.tempdir = str(private), str(private)
    if saved["TORCHINDUCTOR_CACHE_DIR"] is None:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(tmp_path_factory.mktemp("torchinductor"))
    try:
        yield private
    finally:
        tempfile.tempdir = saved_tempdir
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        left = sorted(p.name for p in private.iterdir())
        if not left:
            private.rmdir()
    assert not left, (f"the tests left {len(left)} file(s) in the temporary folder (kept in {private}): "
                      f"{', '.join(left[:20])}; write them under tmp_path")
