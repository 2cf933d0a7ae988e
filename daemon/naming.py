"""Names: the daemon's id, source names (given or derived from the SPEC) and their slugs.

A slug is what a name becomes in an MQTT topic level and a Home Assistant ``unique_id``:
only ``A-Za-z0-9_-``. Accented letters keep their base letter (``café`` → ``cafe``); any
other character becomes ``_``, and a name that had characters with no ASCII form (``ラジオ``)
gets a stable suffix from its SHA-1, so two Japanese names never share a slug. Names
whose slugs still clash (``a b`` and ``a_b``) are a configuration error
(:func:`source_name_problems`), never a silent merge.
"""

from __future__ import annotations

import hashlib
import re
import socket
import unicodedata
from pathlib import Path

from genrecast.daemon.redact import redact_text

SLUG_ALLOWED = re.compile(r"[^A-Za-z0-9_-]")
DAEMON_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_NAMED_SPEC = re.compile(r"^(?P<name>[^=:/\\]+)=(?P<spec>.+)$")


def slug(name: str) -> str:
    """``name`` as one safe topic level / unique_id part (see the module docstring); never empty."""
    ascii_form = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))
    lossy = any(ord(c) > 127 for c in ascii_form)
    out = SLUG_ALLOWED.sub("_", ascii_form) or "_"
    if lossy:
        out += "-" + hashlib.sha1(name.encode("utf-8")).hexdigest()[:6]
    return out


def default_daemon_id() -> str:
    """The host name's slug (its first label): unique per host and stable across restarts.
    Two daemons on one host need their own ``daemon_id``."""
    return slug(socket.gethostname().split(".")[0] or "genrecast")


def daemon_id_problem(value: str) -> str | None:
    """Why ``value`` cannot be a daemon id, or None (empty means the default)."""
    if value == "" or DAEMON_ID_PATTERN.match(value):
        return None
    return "must be 1-64 characters of A-Z a-z 0-9 _ - (it names MQTT topics and Home Assistant ids)"


def split_named(entry: str) -> tuple[str | None, str]:
    """``NAME=SPEC`` → (NAME, SPEC); a plain SPEC → (None, SPEC). NAME holds no ``= : / \\``,
    so ``file:a=b.wav`` and URLs with ``?a=b`` stay plain SPECs; an existing file named
    ``a=b.wav`` too."""
    entry = entry.strip()
    match = _NAMED_SPEC.match(entry)
    if match is None or _is_file(entry):
        return None, entry
    return match["name"].strip(), match["spec"].strip()


def _is_file(entry: str) -> bool:
    """Whether ``entry`` names an existing path (False for one the system cannot look up, e.g. a
    component over 255 bytes)."""
    try:
        return Path(entry).exists()
    except OSError:
        return False


def derived_name(spec: str, stream_number: int) -> str:
    """The name a source gets when none is given: ``mic``, ``mic-NAME``, ``stdin``, ``file-STEM``,
    ``stream-N`` (``stream_number`` counts URLs from 1, in the order given)."""
    if spec == "-":
        return "stdin"
    if spec == "mic" or spec.startswith("mic:"):
        device = spec[4:].strip()
        return f"mic-{device}" if device else "mic"
    if spec.startswith("file://"):  # percent-decoded, as the file is opened: file:///a%20b.wav is file-a b
        from urllib.parse import unquote, urlsplit

        return f"file-{Path(unquote(urlsplit(spec).path)).stem}"
    if spec.startswith("file:"):
        return f"file-{Path(spec[len('file:'):]).stem}"
    if "://" in spec:
        return f"stream-{stream_number}"
    return f"file-{Path(spec).stem}"


def named_sources(entries: list[str]) -> list[tuple[str, str]]:
    """(name, spec) for each ``NAME=SPEC`` or ``SPEC`` entry, in order (names given or derived)."""
    out, streams = [], 0
    for entry in entries:
        name, spec = split_named(entry)
        if name is None and "://" in spec and not spec.startswith("file://"):
            streams += 1
        out.append((name or derived_name(spec, streams), spec))
    return out


def source_name_problems(entries: list[str]) -> list[str]:
    """One problem per pair of sources whose names or slugs collide (case-insensitively,
    as Home Assistant's entity ids are lower case), naming both SPECs and the fix; and one if
    more than one source reads stdin (``-``), which can feed only one."""
    problems, seen = [], {}
    stdin = [name for name, spec in named_sources(entries) if spec == "-"]
    if len(stdin) > 1:
        problems.append(f"sources: {', '.join(stdin)} all read stdin (-), which can feed one source only; "
                        "keep one, and give the others files, streams or a microphone")
    for name, spec in named_sources(entries):
        key = slug(name).lower()
        if key in seen:
            other_name, other_spec = seen[key]
            same = f"the name {name!r}" if other_name == name else f"names {other_name!r} and {name!r} that share the slug {slug(name)!r}"
            problems.append(redact_text(f"sources: {other_spec!r} and {spec!r} both get {same}; "
                                        f"name them, e.g. --source kitchen={spec} or [[sources]] name = \"kitchen\""))
        else:
            seen[key] = (name, spec)
    return problems
