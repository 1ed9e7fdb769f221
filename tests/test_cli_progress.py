"""Progress of long work (compiler/progress.py): a redrawn bar on a terminal, plain lines on a file or pipe,
nothing with --quiet or on an in-memory stream; stdout unaffected."""

from __future__ import annotations

import io
import sys

import pytest

from fastmamba.compiler import progress as progress_module
from fastmamba.compiler.cli import main
from fastmamba.compiler.progress import Progress, showing, step


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_redraws_one_line_and_clears_it(monkeypatch):
    monkeypatch.setattr(progress_module, "TICK_S", 3600.0)  # (no redraw by the ticking thread in between)
    monkeypatch.setattr(progress_module, "REDRAW_S", 0.0)  # (every step drawn)
    out = FakeTerminal()
    p = Progress(out, "job", tty=True)
    p.plan(["a", "b"])
    with showing(p):
        p.stage("a")
        step(1, 2, "window")
        p.stage("b")
    text = out.getvalue()
    assert "\n" not in text and text.endswith("\r") and text.count("\r") == 5  # three redraws, the clearing
    frames = [f for f in text.split("\r") if f]
    assert frames[0].startswith("job: [##########..........] [1/2] a (")
    assert frames[1].startswith("job: [##########..........] [1/2] a: window 1/2 (")
    assert frames[2].startswith("job: [####################] [2/2] b (")
    assert frames[3] == " " * max(len(f.rstrip()) for f in frames[:3])  # cleared: nothing of the bar is left


def test_a_terminal_draws_steps_at_most_every_redraw_interval(monkeypatch):
    monkeypatch.setattr(progress_module, "REDRAW_S", 3600.0)
    out = FakeTerminal()
    p = Progress(out, "job", tty=True)
    p.plan(["a"])
    p.stage("a")
    for done in range(1, 11):
        p.step(done, 10, "block")
    frames = [f.rstrip() for f in out.getvalue().split("\r") if f]
    assert [f.split("] a", 1)[1].split(" (")[0] for f in frames] == ["", ": block 10/10"]  # the stage, the last


def test_the_terminal_line_ticks_while_shown_and_not_once_cleared():
    out = FakeTerminal()
    p = Progress(out, "job", tty=True)
    p.plan(["a"])
    p.tick()  # nothing shown yet: nothing to redraw
    assert out.getvalue() == ""
    p.stage("a")
    p.tick()
    frames = [f for f in out.getvalue().split("\r") if f]
    assert len(frames) == 2 and frames[1].startswith("job: [####################] [1/1] a (")
    p.close()  # (as before other text goes to the stream)
    cleared = out.getvalue()
    p.tick()
    assert out.getvalue() == cleared


def test_showing_ticks_on_a_terminal_and_stops(monkeypatch):
    monkeypatch.setattr(progress_module, "TICK_S", 0.01)
    out = FakeTerminal()
    p = Progress(out, "job", tty=True)
    p.plan(["a"])
    with showing(p):
        p.stage("a")
        deadline = progress_module.time.monotonic() + 30
        while out.getvalue().count("\r") < 3 and progress_module.time.monotonic() < deadline:
            progress_module.time.sleep(0.01)
    assert out.getvalue().count("\r") >= 3  # the stage's line and redraws by the thread, then the clearing
    text = out.getvalue()
    progress_module.time.sleep(0.05)
    assert out.getvalue() == text and text.endswith("\r")  # stopped: nothing after the clearing


def test_plain_lines_a_line_per_stage_and_steps_at_most_each_second(monkeypatch):
    clock = iter([0.0, 0.1, 0.2, 0.3, 1.5, 1.6])
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: next(clock))
    out = io.StringIO()
    p = Progress(out, "job", tty=False)  # (started at 0.0)
    p.plan(["a"])
    p.stage("a")           # 0.1: always
    p.step(1, 4, "window")  # 0.2: within the second after the stage's line: not shown
    p.step(2, 4, "window")  # 0.3: neither
    p.step(3, 4, "window")  # 1.5: shown
    p.step(4, 4, "window")  # 1.6: the last step, always
    assert out.getvalue() == ("job: [1/1] a (0.1 s)\njob: [1/1] a: window 3/4 (1.5 s)\n"
                              "job: [1/1] a: window 4/4 (1.6 s)\n")


def test_no_progress_when_quiet_or_on_an_in_memory_stream(tmp_path):
    with open(tmp_path / "err", "w") as real:
        assert Progress.open(real, "job") is not None and Progress.open(real, "job", quiet=True) is None
    assert Progress.open(io.StringIO(), "job") is None
    step(1, 1, "nothing listens")  # no progress shown: a no-op


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from model_factory import make_config, random_hf_model, save_hf_dir

    return save_hf_dir(random_hf_model(make_config("tiny"), seed=5), tmp_path_factory.mktemp("tiny") / "model")


def _compile(tiny, tmp_path, monkeypatch, capsys, *extra: str) -> str:
    """compile's stderr when it is a real file (as when redirected); stdout must stay empty."""
    args = ["--model", str(tiny), "--seq-len", "3", "--calibration", "random", "--calibration-windows", "2"]
    with open(tmp_path / "stderr", "w") as err:
        monkeypatch.setattr(sys, "stderr", err)
        assert main(["compile", *args, "-o", str(tmp_path / "m.fmb"), *extra]) == 0
    assert capsys.readouterr().out == ""
    return (tmp_path / "stderr").read_text()


def test_compile_shows_each_stage_and_the_calibration_windows(tiny, tmp_path, monkeypatch, capsys):
    assert main(["compile", "--model", str(tiny), "--seq-len", "3", "--calibration", "random",
                 "--calibration-windows", "2", "--print-pipeline"]) == 0
    passes = [s.split("{")[0] for s in capsys.readouterr().out.strip().split(",")]
    lines = _compile(tiny, tmp_path, monkeypatch, capsys).splitlines()
    stages = ["import", *passes, "emit"]
    shown = [line for line in lines if line.startswith("fastmamba compile: [")]
    what = [line.split("] ", 1)[1].rsplit(" (", 1)[0] for line in shown]  # "stage" or "stage: unit k/n"
    assert [w for w in what if ": " not in w] == stages
    assert "calibrate: window 2/2" in what and what[-1].startswith("emit: constant block ")
    starts = [line for line, w in zip(shown, what) if ": " not in w]
    assert all(line.startswith(f"fastmamba compile: [{n}/{len(stages)}] ") for n, line in enumerate(starts, 1))
    assert lines[-4].startswith("wrote ")


def test_compile_quiet_prints_nothing_but_warnings(tiny, tmp_path, monkeypatch, capsys):
    assert _compile(tiny, tmp_path, monkeypatch, capsys, "--quiet") == ""
