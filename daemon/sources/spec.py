"""``--source SPEC``: which source a spec names, and the errors for specs that can never work."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from genrecast.daemon.redact import redact_url
from genrecast.daemon.sources.base import AudioSource, SourceError
from genrecast.daemon.sources.files import FileSource
from genrecast.daemon.sources.mic import MicSource
from genrecast.daemon.sources.stdin import StdinSource
from genrecast.daemon.sources.stream import STREAM_PROTOCOLS, StreamSource

SPEC_HELP = "use mic, mic:NAME_OR_INDEX, file:PATH, - (raw PCM on stdin) or a URL such as http://host/stream"


def _file_uri_path(spec: str) -> str:
    """The local path of a ``file://`` URI (percent-decoded; host empty or localhost)."""
    parts = urlsplit(spec)
    if parts.netloc not in ("", "localhost"):
        raise SourceError(f"{spec}: a file:// URI must name a local file (file:///path or file://localhost/path)")
    if not parts.path:
        raise SourceError(f"{spec}: no path; {SPEC_HELP}")
    return unquote(parts.path)


def parse_source(spec: str, *, name: str | None = None, realtime: bool = False, loop: bool = False,
                 stdin_format: str = "f32le", stdin_rate: int = 22050, stdin_channels: int = 1,
                 stall_seconds: float = 10.0, backoff_max_seconds: float = 30.0) -> AudioSource:
    """Make a source from a SPEC: ``mic`` | ``mic:NAME_OR_INDEX`` | ``file:PATH`` | ``-`` |
    a URL (anything with ``://``; ``file:///PATH`` is a file, percent-decoded) | a bare
    existing path.

    ``file:PATH`` takes PATH exactly as written, colons included (``file:take:01.wav``,
    ``file:./2024-05-01T12:00:00.wav``); a bare path that exists wins over a URL reading.

    Default names: ``mic``, ``mic-NAME``, ``file-STEM``, ``stdin``, ``stream-N`` (N counts
    URLs parsed in this process). Raises :class:`SourceError` for a spec that can never
    work; a URL's credentials are redacted in its messages.
    """
    spec = spec.strip()
    if not spec:
        raise SourceError(f"empty source spec; {SPEC_HELP}")
    if spec == "-":
        return StdinSource(name=name, format=stdin_format, rate=stdin_rate, channels=stdin_channels)
    if spec == "mic" or spec.startswith("mic:"):
        device = spec[4:].strip() or None
        return MicSource(device, name=name, stall_seconds=stall_seconds, backoff_max_seconds=backoff_max_seconds)
    if spec.startswith("file://"):
        return FileSource(_file_uri_path(spec), name=name, realtime=realtime, loop=loop)
    if spec.startswith("file:"):
        path = spec[len("file:"):]
        if not path:
            raise SourceError(f"file: needs a path, e.g. file:/music/clip.wav; {SPEC_HELP}")
        return FileSource(path, name=name, realtime=realtime, loop=loop)
    if Path(spec).exists():
        return FileSource(spec, name=name, realtime=realtime, loop=loop)
    name_part, eq, rest = spec.partition("=")
    if eq and "://" not in name_part and re.match(r"(file:|mic\b|-$|[a-z][a-z0-9+.-]*://)", rest.strip(), re.IGNORECASE):
        raise SourceError(f"source {name_part + '=' + redact_url(rest.strip())!r}: a source's NAME in NAME=SPEC must be a non-empty name without "
                          f"= : / or \\ (not {name_part!r}); e.g. kitchen={redact_url(rest.strip())}")
    if "://" in spec:
        scheme = spec.partition("://")[0].lower()
        if scheme not in STREAM_PROTOCOLS:  # ffmpeg would refuse it on every retry, forever
            raise SourceError(f"{redact_url(spec)}: {scheme!r} is not a protocol genrecast streams; use one of "
                              f"{', '.join(STREAM_PROTOCOLS[:6])} ... (check the URL's spelling)")
        if not urlsplit(spec).netloc:
            raise SourceError(f"{redact_url(spec)}: no host in the URL; e.g. http://radio.example/live.mp3")
        return StreamSource(spec, name=name, stall_seconds=stall_seconds, backoff_max_seconds=backoff_max_seconds)
    if "/" in spec or Path(spec).suffix:
        raise SourceError(f"no such file: {spec} (a path must exist when the daemon starts; check it, or give a URL "
                          f"or mic)")
    raise SourceError(f"unknown source {redact_url(spec)!r}: {SPEC_HELP}")
