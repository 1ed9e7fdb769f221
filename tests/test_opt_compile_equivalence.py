"""`fastmamba opt` and `fastmamba compile` are one pipeline (compiler.pipeline.PassDriver): every stage the bundled
model's compile dumps (--dump-dir), run through `opt -p <the next pass>` as `compile --print-pipeline` names it, gives
the next dumped stage byte for byte (calibration included: the text and the model are the pass's options); and
`fastmamba translate` of the last stage writes the same .fmb as compile."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastmamba.compiler.cli import main
from fastmamba.compiler.pipeline import parse_passes, pipeline_spec

REPO = Path(__file__).resolve().parent.parent
# Small enough for seconds: 8-token prefill, 1 calibration window of the README's text.
OPTIONS = ["--seq-len", "8", "--calibration-windows", "1", "--calibration-text", str(REPO / "README.md")]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bundled")
    dump, out = folder / "stages", folder / "model.fmb"
    assert main(["compile", *OPTIONS, "-o", str(out), "--dump-dir", str(dump)]) == 0
    return dump, out


def _pipeline(capsys) -> list[str]:
    """The passes `compile --print-pipeline` prints, one spec each."""
    capsys.readouterr()
    assert main(["compile", *OPTIONS, "--print-pipeline"]) == 0
    return [pipeline_spec([p]) for p in parse_passes(capsys.readouterr().out.strip())]


def test_each_dumped_stage_through_opt_gives_the_next(compiled, tmp_path, capsys):
    dump, _ = compiled
    passes = _pipeline(capsys)
    stages = sorted(dump.glob("*.mlir"))
    assert [s.name for s in stages] == ["00-import.mlir"] + [f"{n:02d}-{spec.split('{')[0]}.mlir"
                                                             for n, spec in enumerate(passes, 1)]
    assert any(spec.startswith("calibrate{") and 'copy_to="decode"' in spec for spec in passes)
    for before, spec, after in zip(stages, passes, stages[1:]):
        out = tmp_path / after.name
        assert main(["opt", str(before), "-p", spec, "-o", str(out)]) == 0, spec
        assert out.read_bytes() == after.read_bytes(), f"opt -p '{spec}' on {before.name} differs from {after.name}"


def test_translate_of_the_last_stage_is_compiles_binary(compiled, tmp_path):
    dump, out = compiled
    last = sorted(dump.glob("*.mlir"))[-1]
    assert last.name.endswith("-schedule-vliw.mlir")
    fmb = tmp_path / "translated.fmb"
    assert main(["translate", str(last), "-o", str(fmb)]) == 0
    assert fmb.read_bytes() == out.read_bytes()
