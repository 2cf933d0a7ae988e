"""Progress on long work: a rich progress bar on stderr when it is a terminal."""

from __future__ import annotations

import sys


class Progress:
    """Use as ``with Progress(True, total, "extracting") as advance: advance(n)``.

    On a terminal: a rich progress bar on stderr. Elsewhere, when ``lines`` is set, a
    line ``DESCRIPTION: DONE/TOTAL`` on stderr every tenth of the way; otherwise nothing.
    """

    def __init__(self, enabled: bool, total: float, description: str, *, lines: bool = True) -> None:
        self.enabled, self.total, self.description, self.lines = enabled, total, description, lines
        self.done: float = 0
        self._next_line = total / 10
        self._bar = None

    def __enter__(self):
        if self.enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import Progress as Bar

            self._bar = Bar(transient=False, console=Console(stderr=True))  # stdout may be data (--json)
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total)
        return self.advance

    def advance(self, amount: float = 1) -> None:
        self.done += amount
        if self._bar is not None:
            self._bar.advance(self._task, amount)
        elif self.enabled and self.lines and (self.done >= self._next_line or self.done >= self.total):
            self._next_line = self.done + self.total / 10
            print(f"{self.description}: {self.done:g}/{self.total:g}", file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
