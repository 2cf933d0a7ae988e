"""SIGTERM as an interruption: a batch job's stop (Slurm, a Kubernetes Job, ``timeout``, systemd)
ends a long command as Ctrl-C does, so what it leaves behind is the same (``classify``'s output
that ``--resume`` goes on with, ``train``'s output folder as it was) and it says so."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived during :func:`sigterm_interrupts` (a ``KeyboardInterrupt``, so every
    handler of Ctrl-C handles it too)."""


def exit_status(interruption: KeyboardInterrupt) -> int:
    """The shell's status for a command that ``interruption`` ended: 143 for SIGTERM, 130 for Ctrl-C."""
    return 128 + (signal.SIGTERM if isinstance(interruption, Terminated) else signal.SIGINT)


def how(interruption: KeyboardInterrupt) -> str:
    """``stopped by SIGTERM`` or ``interrupted``, for the line a command ends with."""
    return "stopped by SIGTERM" if isinstance(interruption, Terminated) else "interrupted"


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread; the handler before it
    is put back after. Elsewhere than in the main thread (where Python runs signal handlers) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminated(signum, frame) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
