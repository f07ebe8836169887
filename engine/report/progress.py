"""A progress display for the command line, on stderr, for work longer than a second.

The backtest itself runs inside the compiled loop, which reports nothing while it
runs (counting bars from Python would cost more than the loop). So progress is
shown by **steps**: the phases of a run (backtest, tables, files) or the
strategies of a comparison. The display is a rich progress bar with a spinner,
the current step and the elapsed time; it is transient (erased when done) and
appears only once the work has taken more than :data:`DELAY` seconds, so a fast
run prints nothing extra. It is never shown when stderr is not a terminal or
with ``--json``.

``ENGINE_PROGRESS_DELAY`` (seconds) overrides the delay; tests set it to 0.
"""

from __future__ import annotations

import os
import sys
import threading

#: Seconds of work before the display appears.
DELAY = 1.0

# The display on screen now, if any: messages go through it so they do not tear it.
_active: Steps | None = None


def emit(text: str) -> None:
    """Print a line on stderr, above the progress display when one is shown."""
    steps = _active
    bar = steps._bar if steps is not None else None
    if bar is not None:
        bar.console.print(text, markup=False, highlight=False, soft_wrap=True)
    else:
        print(text, file=sys.stderr)


def wanted(json_output: bool = False, stream=None) -> bool:
    """Whether to show progress: stderr is a terminal and the output is not JSON."""
    stream = sys.stderr if stream is None else stream
    try:
        return not json_output and bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _delay() -> float:
    try:
        return max(0.0, float(os.environ.get("ENGINE_PROGRESS_DELAY", DELAY)))
    except ValueError:
        return DELAY


class Steps:
    """A transient bar over ``total`` steps, drawn on stderr after a delay.

    Use as a context manager; call :meth:`step` as each step starts. When
    ``enabled`` is false every method does nothing.
    """

    def __init__(self, total: int, enabled: bool, delay: float | None = None, console=None):
        self.total = max(int(total), 1)
        self.enabled = enabled
        self.delay = _delay() if delay is None else delay
        self._console = console
        self._lock = threading.Lock()
        self._done = 0
        self._started = 0
        self._text = ""
        self._bar = None
        self._task = None
        self._timer = None
        self._closed = False

    def __enter__(self) -> Steps:
        if self.enabled:
            self._timer = threading.Timer(self.delay, self._show)
            self._timer.daemon = True
            self._timer.start()
        return self

    def step(self, text: str, total: int | None = None) -> None:
        """Start the next step (the previous one is complete), described by ``text``."""
        with self._lock:
            if total is not None:
                self.total = max(int(total), 1)
            self._done = self._started
            self._started += 1
            self._text = text
            if self._bar is not None:
                self._bar.update(self._task, description=text, completed=self._done,
                                 total=self.total)

    def _show(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        with self._lock:
            if self._closed:
                return
            console = self._console or Console(stderr=True)
            self._bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                                 transient=True, redirect_stdout=False, redirect_stderr=False)
            self._task = self._bar.add_task(self._text, total=self.total, completed=self._done)
            self._bar.start()
            global _active
            _active = self

    def __exit__(self, *exc) -> None:
        if self._timer is not None:
            self._timer.cancel()
        global _active
        with self._lock:
            self._closed = True
            if _active is self:
                _active = None
            if self._bar is not None:
                self._bar.stop()
                self._bar = None
