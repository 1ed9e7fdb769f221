"""Progress of long work on stderr: a bar on a terminal, plain lines otherwise, nothing when asked to be quiet.

Place in the flow: beside the command line.  A command that runs long work (`fastmamba compile`, `demo`) makes
a `Progress` for its stderr (`Progress.open`) and names its stages (`plan`); the pipeline driver
(compiler.pipeline.PassDriver) announces each pass (`stage`), and work inside a stage reports its steps through
the module-level `step` (calibrate's windows), which goes to the progress being shown (`showing`) or nowhere.
On a terminal one line is redrawn (stage k of n, a bar, the step, the seconds so far, ticking while a stage
runs) and cleared at the end;
on a file or pipe each stage and at most one step a second is a plain line, so that logs stay readable.  A
stream that is not a real file (an in-memory one, as tests capture) shows nothing.  Progress never goes to
stdout: what a command prints there is unchanged.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TextIO

__all__ = ["Progress", "showing", "step"]

BAR_WIDTH = 20
LINE_EVERY_S = 1.0  # plain lines: at most one step line a second (every stage gets its line)
TICK_S = 0.5  # a terminal's line: redrawn this often while a stage runs
REDRAW_S = 0.1  # ... and for a step at most this often (a stage, or a stage's last step, always)


class Progress:
    """The progress of one command's stages on `stream`; `tty`: redraw one line (else plain lines)."""

    def __init__(self, stream: TextIO, label: str, tty: bool):
        self.stream, self.label, self.tty = stream, label, tty
        self.stages: list[str] = []
        self.index = 0
        self.name = ""
        self.started = time.perf_counter()
        self.last_line = 0.0
        self.width = 0
        self.detail = ""  # the step shown after the stage's name
        self.visible = False  # the terminal's line shows the bar (close hides it until the next stage or step)
        self.lock = threading.Lock()
        self.stopped = threading.Event()

    @classmethod
    def open(cls, stream: TextIO, label: str, quiet: bool = False) -> Progress | None:
        """Progress on `stream` (a bar on a terminal, lines on a file or pipe), or None: `quiet`, or a stream
        that is not a real file."""
        if quiet:
            return None
        try:
            stream.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation, ValueError):
            return None
        return cls(stream, label, stream.isatty())

    def plan(self, stages: Sequence[str]) -> None:
        """The stages to come, in order (their count is the n of 'stage k/n')."""
        self.stages, self.index = list(stages), 0

    def stage(self, name: str) -> None:
        """Stage `name` starts (the next of the plan; one not in the plan is shown without a number)."""
        if name in self.stages[self.index:]:
            self.index = self.stages.index(name, self.index) + 1
        self.name = name
        with self.lock:
            self._show("", force=True)

    def step(self, done: int, total: int, unit: str) -> None:
        """`done` of `total` `unit`s of the current stage are done."""
        with self.lock:
            self._show(f": {unit} {done}/{total}", force=done == total)

    def close(self) -> None:
        """On a terminal the line is cleared (nothing of the bar is left) until the next stage or step: before
        other text goes to the stream, and at the end."""
        with self.lock:
            self.visible = False
            if self.tty and self.width:
                self.stream.write("\r" + " " * self.width + "\r")
                self.stream.flush()
                self.width = 0

    def tick(self) -> None:
        """Redraw the terminal's line with the seconds so far (a long stage shows that it is running)."""
        with self.lock:
            if self.tty and self.visible:
                self._show(self.detail, force=True)

    def _ticking(self) -> None:
        while not self.stopped.wait(TICK_S):
            self.tick()

    def _show(self, detail: str, force: bool) -> None:
        """Draw (the caller holds the lock)."""
        self.detail = detail
        now = time.perf_counter()
        n = len(self.stages)
        where = f"[{self.index}/{n}] " if n and self.index else ""
        text = f"{self.label}: {where}{self.name}{detail} ({now - self.started:.1f} s)"
        if self.tty:
            if not force and now - self.last_line < REDRAW_S:  # (thousands of steps: not a redraw each)
                return
            self.last_line = now
            filled = BAR_WIDTH * self.index // n if n else 0
            line = f"{self.label}: [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {text[len(self.label) + 2:]}"
            self.stream.write("\r" + line.ljust(self.width))
            self.width = max(self.width, len(line))
            self.visible = True
        elif force or now - self.last_line >= LINE_EVERY_S:
            self.stream.write(text + "\n")
            self.last_line = now
        else:
            return
        self.stream.flush()


_shown: list[Progress] = []


@contextmanager
def showing(progress: Progress | None) -> Iterator[Progress | None]:
    """While active, `step` reports to `progress` (None: nowhere), and on a terminal its line is redrawn every
    TICK_S seconds (a thread); it is closed at the end."""
    if progress is None:
        yield None
        return
    _shown.append(progress)
    ticker = threading.Thread(target=progress._ticking, name="fastmamba-progress", daemon=True)
    if progress.tty:
        progress.stopped.clear()
        ticker.start()
    try:
        yield progress
    finally:
        _shown.remove(progress)
        progress.stopped.set()
        if ticker.is_alive():
            ticker.join()
        progress.close()


def step(done: int, total: int, unit: str) -> None:
    """Report a step of long work to the progress being shown, if any (a pass calls this; it costs nothing
    when no command shows progress)."""
    if _shown:
        _shown[-1].step(done, total, unit)
