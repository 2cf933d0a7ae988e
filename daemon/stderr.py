"""Keep our log lines when a library points file descriptor 2 elsewhere, drop known noise, and
let a stdout whose reader went away go quietly.

sounddevice points fd 2 at ``/dev/null`` while PortAudio initialises (at import and at every
re-initialisation, i.e. every microphone retry) to hide ALSA's chatter. Anything another thread
writes to fd 2 meanwhile is lost: log lines too. :func:`private_stderr` gives Python's
``sys.stderr`` (and so the logging handler, typer's error lines and thread tracebacks) a
duplicate of fd 2 taken at start-up, so such a redirection no longer reaches them, while the
C libraries' own noise still goes where the library sends it.

:func:`dropping_lines` is the other direction: it catches what C code writes to fd 2 for the
length of one call and writes it back, less the lines it was asked to drop (LiteRT's
"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.", which it has no switch for).

:func:`stdout_to_devnull` is for a broken pipe on stdout (``genrecast ... | head``), and
:func:`escape_unencodable` for a stdout whose encoding cannot write every name (a legacy locale).
"""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import sys
import tempfile
import threading
from typing import BinaryIO, Callable, Iterator, TextIO

_lock = threading.Lock()
_private: TextIO | None = None


def private_stderr() -> TextIO:
    """Make ``sys.stderr`` write to a duplicate of fd 2 (once per process) and return it.

    Falls back to the current ``sys.stderr`` when it has no file descriptor (e.g. under a
    test runner that captures it).
    """
    global _private
    with _lock:
        if _private is not None and sys.stderr is _private:
            return _private
        try:
            fd = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            return sys.stderr
        sys.stderr.flush()
        encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
        _private = os.fdopen(os.dup(fd), "w", buffering=1, encoding=encoding, errors="backslashreplace")
        sys.stderr = _private
        return _private


def stdout_to_devnull() -> None:
    """Point fd 1 at ``/dev/null`` after its reader went away (a ``BrokenPipeError``), so the
    flush at exit cannot fail again (Python's documented way; see its ``signal`` module docs on
    SIGPIPE)."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


@contextlib.contextmanager
def dropping_lines(drop: Callable[[bytes], bool]) -> Iterator[None]:
    """Catch fd 2 for the body and write its lines back afterwards, except those ``drop`` accepts.

    Only for short calls into C code that print known noise; nothing written meanwhile is lost,
    it is only delayed until the body ends.
    """
    caught = _capture_file()
    if caught is None:
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:
        caught.close()
        yield
        return
    with caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = b"".join(line for line in caught if not drop(line))
            if kept:
                os.write(2, kept)


def _capture_file() -> BinaryIO | None:
    """A file to catch fd 2 in: an anonymous one in memory where the OS has them (Linux), so that no
    temporary folder is needed (a container's read-only root without a writable /tmp), else a
    temporary file; None if neither can be made (the noise then goes through unfiltered)."""
    if hasattr(os, "memfd_create"):
        try:
            return os.fdopen(os.memfd_create("genrecast-stderr", getattr(os, "MFD_CLOEXEC", 0)), "w+b")
        except OSError:
            pass
    try:
        return tempfile.TemporaryFile()
    except OSError:
        return None


#: The error handler :func:`escape_unencodable` puts on stdout.
STDOUT_ERRORS = "genrecast-escape"


def _escape(exc: UnicodeError) -> tuple[str | bytes, int]:
    """A file name's undecodable bytes (``surrogateescape``'s lone surrogates) are written back as
    those bytes; any other character the encoding lacks as a backslash escape (``café`` → ``caf\\xe9``
    on an ASCII terminal). One character at a time, so a mix of both is handled."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    one = UnicodeEncodeError(exc.encoding, exc.object, exc.start, exc.start + 1, exc.reason)
    surrogate = 0xDC80 <= ord(exc.object[exc.start]) <= 0xDCFF
    replacement, _ = codecs.lookup_error("surrogateescape" if surrogate else "backslashreplace")(one)
    return replacement, exc.start + 1


def escape_unencodable(stream: TextIO) -> None:
    """Make ``stream`` (stdout) write what its encoding cannot as :func:`_escape` does, instead of
    raising ``UnicodeEncodeError`` (a source or file name in a legacy-locale terminal)."""
    try:
        codecs.lookup_error(STDOUT_ERRORS)
    except LookupError:
        codecs.register_error(STDOUT_ERRORS, _escape)
    if hasattr(stream, "reconfigure"):
        stream.reconfigure(errors=STDOUT_ERRORS)
