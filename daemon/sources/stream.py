"""Network streams (any URL ffmpeg opens), with reconnects, stall detection, failure
reasons a user understands, and credentials kept out of logs and the command line."""

from __future__ import annotations

import itertools
import os
import re
import threading
import time

import numpy as np

from genrecast.daemon.redact import has_secret, redact_text, redact_url, url_secrets
from genrecast.daemon.sources.base import POLL_SECONDS, Deliver, SampleSplitter, SourceError, log
from genrecast.daemon.sources.ffmpeg import FFmpegChild, require_ffmpeg
from genrecast.daemon.sources.reconnect import _Reconnecting

_OUTPUT_RATE = re.compile(r"Stream #\d+:\d+.*?: Audio: pcm_f32le\b.*?(\d+) Hz")
_stream_numbers = itertools.count(1)

#: The URL schemes a stream source takes (network protocols ffmpeg reads, most used first).
STREAM_PROTOCOLS = ("http", "https", "icecast", "hls", "rtsp", "rtmp", "rtsps", "rtp", "srtp", "udp", "tcp", "tls",
                    "rtmps", "rtmpt", "rtmpts", "mmsh", "mmst", "ftp", "sftp", "srt")
#: Protocols ffmpeg may use for a URL handed over in a concat list (see :func:`_secret_input`):
#: the stream protocols and the local ones ffmpeg needs around them.
_PROTOCOLS = ",".join(("fd", "pipe", "file", "crypto", "httpproxy", "applehttp", "data") + STREAM_PROTOCOLS)


#: Seconds ffmpeg may take to open and probe a stream before its first output, on top of
#: ``stall_seconds`` (it reads ~5 s of a live stream first; network silence during that
#: time is caught by ffmpeg's own ``rw_timeout``, set to ``stall_seconds``).
PROBE_ALLOWANCE_SECONDS = 20.0
#: A connection that has delivered audio for this long (wall clock) resets the backoff: a
#: finite file served over HTTP decodes in a moment and ends, and must not be fetched again
#: every 0.5 s (it was: 87 requests in 40 s for a 12-s MP3).
STABLE_SECONDS = 10.0


def _secret_input(url: str, rw_timeout_us: int) -> tuple[list[str], int]:
    """ffmpeg input arguments that name ``url`` without putting it on the command line
    (which every user can read in ``ps`` and ``/proc/PID/cmdline``): a one-entry concat
    list (``ffconcat``) written to a pipe that ffmpeg reads as ``/dev/fd/N``. Returns the
    arguments and the pipe's read end, to pass to the child."""
    read_fd, write_fd = os.pipe()
    text = ("ffconcat version 1.0\nfile '" + url.replace("'", "'\\''") + "'\n"
            f"option rw_timeout {rw_timeout_us}\n")
    try:
        os.write(write_fd, text.encode())  # far below a pipe's buffer: never blocks
    finally:
        os.close(write_fd)
    return ["-f", "concat", "-safe", "0", "-protocol_whitelist", _PROTOCOLS, "-i", f"/dev/fd/{read_fd}"], read_fd


class StreamSource(_Reconnecting):
    """A network stream (any URL ffmpeg opens) decoded to mono float32 at the stream's
    own rate. Never finite: end of stream, errors and stalls restart ffmpeg after a
    capped exponential backoff, and the log says why in words (see
    :mod:`~genrecast.daemon.sources.ffmpeg_errors`).

    A stall is ``stall_seconds`` without audio from ffmpeg, or without a byte from the
    network: ffmpeg's own ``rw_timeout`` watches the network while it opens and probes
    the stream (~5 s of a live stream before its first output), so a limit shorter than
    the probe still lets a healthy stream start.

    Credentials in the URL (a password, a ``token=`` query) never reach the log, error
    messages or ffmpeg's command line: ``display_url`` is the redacted URL.

    Counters: ``restarts`` (ffmpeg starts after the first), ``stalls``. ``rate`` is the
    rate of the current (or last) connection; a change on reconnect is logged.
    """

    finite = False
    _retry_verb = "reconnecting"

    def __init__(self, url: str, *, name: str | None = None, stall_seconds: float = 10.0,
                 backoff_initial_seconds: float = 0.5, backoff_max_seconds: float = 30.0) -> None:
        self.display_url = redact_url(url)
        if stall_seconds <= 0:
            raise SourceError(f"{self.display_url}: stall_seconds must be > 0 (got {stall_seconds})")
        require_ffmpeg(self.display_url)
        super().__init__(backoff_initial_seconds, backoff_max_seconds)
        self.url = url
        self._secrets = url_secrets(url)
        self.name = name or f"stream-{next(_stream_numbers)}"
        self.stall_seconds = stall_seconds
        self.ffmpeg_pid: int | None = None

    def __repr__(self) -> str:
        return f"StreamSource({self.display_url!r}, name={self.name!r})"

    def _redact(self, text: str) -> str:
        return redact_text(text, self._secrets)

    def _start(self, on_line) -> FFmpegChild:
        # No -reconnect: this loop owns reconnection, so every outage is logged and counted.
        head = ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info"]
        tail = ["-map", "0:a:0", "-vn", "-f", "f32le", "-ac", "1", "-"]
        rw_timeout_us = max(1, int(self.stall_seconds * 1e6))
        if not has_secret(self.url):
            return FFmpegChild(head + ["-rw_timeout", str(rw_timeout_us), "-i", self.url] + tail, on_line,
                               redact=self._redact)
        args, fd = _secret_input(self.url, rw_timeout_us)
        return FFmpegChild(head + args + tail, on_line, pass_fds=(fd,), redact=self._redact)

    def _attempt(self, deliver: Deliver, stop: threading.Event, first: bool) -> str:
        """One ffmpeg run; returns why it ended."""
        rate_found = threading.Event()
        found: list[int] = []

        def on_line(line: str) -> None:
            match = _OUTPUT_RATE.search(line)
            if match and not found:
                found.append(int(match.group(1)))
                rate_found.set()

        try:
            child = self._start(on_line)
        except OSError as exc:
            return f"cannot start ffmpeg ({exc})"
        self.ffmpeg_pid = child.pid
        splitter = SampleSplitter(np.dtype("<f4"), 1)
        delivered = 0
        receiving_since: float | None = None
        rate = 0
        last_progress = time.monotonic()
        url = self.display_url
        try:
            while not stop.is_set():
                chunk = child.read(POLL_SECONDS)
                if chunk is None:
                    limit = self.stall_seconds if rate else self.stall_seconds + PROBE_ALLOWANCE_SECONDS
                    if time.monotonic() - last_progress >= limit:
                        self.stalls += 1
                        said = f"; {child.reason()}" if child.lines else ""
                        return f"no audio from {url} for {limit:g} s (stalled{said})"
                    continue
                if not chunk:
                    code = child.finish()
                    why = "end of stream" if code == 0 else child.reason()
                    if why.startswith("timed out"):
                        self.stalls += 1  # ffmpeg's rw_timeout: no byte from the network for stall_seconds
                        return f"no data from {url} for {self.stall_seconds:g} s (stalled; {why})"
                    return f"stream {url} ended ({why})"
                last_progress = time.monotonic()
                if not rate:
                    while not rate_found.wait(POLL_SECONDS):
                        if stop.is_set():
                            return "stopped"
                        if time.monotonic() - last_progress >= self.stall_seconds:
                            return f"could not learn the sample rate of {url} from ffmpeg"
                    rate = found[0]
                    recovered = self._now_receiving(rate)
                    log.info("%s: receiving %s at %d Hz%s", self.name, url, rate, recovered)
                block = splitter.feed(chunk)
                if len(block):
                    deliver(block, rate)
                    if not delivered:
                        receiving_since = time.monotonic()
                    elif receiving_since is not None and time.monotonic() - receiving_since >= STABLE_SECONDS:
                        self.backoff.reset()  # audio for STABLE_SECONDS: healthy again
                        receiving_since = None
                    delivered += len(block)
            return "stopped"
        finally:
            child.close()
