"""`fastmamba demo`: the bundled model compiled and run on the simulator, bit-exact with the golden model."""

from __future__ import annotations

import json

from fastmamba.compiler.cli import main
from fastmamba.isa.container import read_fmb


def test_demo_compiles_runs_and_checks(tmp_path, capsys):
    out = tmp_path / "default.fmb"
    prompt = "ROMEO: speak, what news from the tower?"  # 39 bytes: 4 prefill chunks of 8, 7 decode steps
    assert main(["demo", "--prompt", prompt, "--max-new-tokens", "4", "--seq-len", "8", "--json", "-o", str(out)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["bit_exact"] is True and doc["mismatch"] is None
    assert len(doc["tokens"]) == 4 and doc["prompt"] == prompt
    assert doc["prefill"]["programs"] == {"prefill": 4, "decode": 7} and doc["prefill"]["cycles"] > 0
    assert doc["decode"]["cycles"] > 0 and 0 < doc["decode"]["utilization"]["LD"] <= 1
    binary = read_fmb(out)  # --output keeps the binary
    assert {p.name for p in binary.programs} == {"prefill", "decode"}


def test_demo_rejects_a_bad_length(capsys):
    assert main(["demo", "--seq-len", "0"]) == 1
    assert "--seq-len must be at least 1" in capsys.readouterr().err
