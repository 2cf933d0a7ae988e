"""Turn ffmpeg's stderr into a reason a user understands.

ffmpeg's last line is often not the cause ("To ignore this, add a trailing '?' to
the map.", "Error opening input files"); the cause is somewhere in the last lines.
:func:`explain` looks through them for the known kinds of failure, most specific
first, and falls back to the last meaningful line.
"""

from __future__ import annotations

import re

#: (reason, pattern over ffmpeg's stderr lines), most specific first.
REASONS: tuple[tuple[str, re.Pattern[str]], ...] = tuple((reason, re.compile(pattern, re.IGNORECASE)) for reason, pattern in (
    ("unauthorised: the server refused the user name or password (HTTP 401); check the credentials in the URL",
     r"\b401 unauthori|unauthori[sz]ed|authorization failed"),
    ("forbidden: the server refuses access (HTTP 403)", r"\b403 forbidden|\bforbidden\b"),
    ("not found: the server has nothing at this address (HTTP 404); check the URL", r"\b404 not found|server returned 404"),
    ("server error (HTTP 5xx); the server is failing", r"server returned 5(\d\d|xx)|\b5\d\d (internal|bad gateway|service unavailable)"),
    ("no audio stream: the input has no audio (video only?)",
     r"matches no streams|does not contain any stream|no audio stream|Output file .* does not contain any stream"),
    ("connection refused: nothing listens at this address and port", r"connection refused"),
    ("timed out: no answer from the server", r"timed out|timeout"),
    ("host not found: the name does not resolve", r"failed to resolve|name or service not known|temporary failure in name resolution|no address associated"),
    ("network unreachable", r"network is unreachable|no route to host"),
    ("connection lost: the server closed or reset it", r"connection reset|broken pipe|end of file|stream ends prematurely"),
    ("unsupported protocol: ffmpeg cannot open this kind of URL", r"protocol not found|protocol '.*' not on whitelist"),
    ("no such file", r"no such file or directory"),
    ("permission denied", r"permission denied"),
    ("not decodable: the data is not audio ffmpeg can decode",
     r"invalid data found|could not find codec parameters|error while decoding|decoding error|header missing|"
     r"unknown format|failed to read frame size|invalid argument"),
))

_NOISE = ("size=", "video:", " ", "Press [q]", "Input #", "Output #", "Stream #", "Stream mapping", "Duration:")


_ADDRESS = re.compile(r"^\[[^\]@]*@ 0x[0-9a-f]+\]\s*")


def _meaningful(lines: list[str]) -> list[str]:
    return [line.strip() for line in lines if line.strip() and not line.startswith(_NOISE)]


def explain(lines: list[str]) -> str:
    """The reason for a failure from ffmpeg's (or ffprobe's) stderr ``lines``: one of
    :data:`REASONS`, or ``ffmpeg said: LAST LINE`` when none matches."""
    meaningful = _meaningful(lines)
    for reason, pattern in REASONS:
        if any(pattern.search(line) for line in meaningful):
            return reason
    # without its "[mp3 @ 0x55d4...]" prefix: a memory address tells a user nothing
    return f"ffmpeg said: {_ADDRESS.sub('', meaningful[-1])}" if meaningful else "no message from ffmpeg"
