"""GenreEvent: the one typed value every sink receives, with a versioned JSON form.

The JSON Schema lives in ``daemon/schema/genre-event.schema.json``; every sink
serialises with :meth:`GenreEvent.to_json` and ``genrecast tail`` parses with
:meth:`GenreEvent.from_json`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from typing import Any

SCHEMA_VERSION = 3
#: Versions :meth:`GenreEvent.from_dict` reads (1: before the music detector; its events get
#: ``music_probability`` None. 2: before the bandwidth estimate; its events get ``bandwidth_hz``
#: and ``band_limited`` None).
READABLE_SCHEMA_VERSIONS = (1, 2, 3)
#: Fields an event may leave out (read as None), whatever its version.
OPTIONAL_FIELDS = frozenset({"context_seconds", "bandwidth_hz", "band_limited"})
STATES = ("music", "not_music", "silence", "uncertain")


@dataclass(frozen=True)
class GenreEvent:
    """The classification of one window of one source."""

    source: str
    """Name of the source the window came from."""
    seq: int
    """Sequence number of this event within its source, from 0."""
    utc: str
    """UTC wall-clock time the event was made, ISO 8601 with ``Z``."""
    audio_start_seconds: float
    """Start of the window on the source's audio clock (seconds of audio consumed)."""
    audio_end_seconds: float
    """End of the window on the source's audio clock."""
    state: str
    """``music``, ``not_music`` (the music detector's gate is closed: speech, noise, ...), ``silence``
    (below the silence gate) or ``uncertain`` (top probability below the confidence gate)."""
    genre: str | None
    """Top genre of this window (``None`` when silent or not music)."""
    probability: float
    """Probability of ``genre`` (0 when silent)."""
    probabilities: dict[str, float]
    """Every label's probability for this window (empty when silent)."""
    smoothed_genre: str | None
    """Genre of the mean of the last K windows' probabilities, after hysteresis."""
    smoothed_probability: float
    """Mean probability of ``smoothed_genre`` over the last K windows."""
    changed: bool
    """True on the event where ``smoothed_genre`` changed to a new value."""
    level_dbfs: float
    """RMS level of the window in dBFS (−120 for digital silence)."""
    model_id: str
    """Identifier of the model bundle that classified the window."""
    context_seconds: float | None = None
    """Seconds of audio the summary features covered (summary bundles), else ``None``."""
    music_probability: float | None = None
    """The music detector's P(music) for this window (0..1); ``None`` when the window is silent
    or the bundle has no detector."""
    smoothed_music_probability: float | None = None
    """P(music) averaged over the detector's last windows (this one included), which the
    music/not_music hysteresis acts on; ``None`` when ``music_probability`` is."""
    bandwidth_hz: float | None = None
    """The source's effective audio bandwidth (Hz), estimated from the long-term spectrum of its
    last audible windows (see ``genrecast.daemon.bandwidth``); ``None`` until a few audible windows
    were heard."""
    band_limited: bool | None = None
    """True when ``bandwidth_hz`` is well below the band the model was trained on (e.g. 8-kHz
    telephone or 16-kHz audio resampled up): genres are less reliable; ``None`` when unknown."""
    schema_version: int = field(default=SCHEMA_VERSION)
    """Version of this JSON form."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """One compact JSON line (no newline)."""
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GenreEvent":
        if not isinstance(data, dict):
            raise ValueError("a genre event must be a JSON object")
        version = data.get("schema_version")
        if version not in READABLE_SCHEMA_VERSIONS:
            raise ValueError(f"unsupported genre event schema_version {version!r} (expected one of {READABLE_SCHEMA_VERSIONS})")
        names = {f.name for f in dataclasses.fields(cls)}
        optional = OPTIONAL_FIELDS | ({"music_probability", "smoothed_music_probability"} if version == 1 else set())
        missing = sorted(n for n in names - set(data) if n not in optional)
        if missing:
            raise ValueError(f"genre event is missing {missing}")
        for name, value in data.items():
            if name in _FIELD_TYPES and not _has_type(value, _FIELD_TYPES[name]):
                raise ValueError(f"genre event field {name!r} has the wrong type: {type(value).__name__} {value!r:.40}")
        probabilities = data.get("probabilities")
        if not all(isinstance(k, str) and _has_type(v, "number") for k, v in probabilities.items()):
            raise ValueError("genre event probabilities must map labels to numbers")
        event = cls(**{k: v for k, v in data.items() if k in names})
        if event.state not in STATES:
            raise ValueError(f"genre event has unknown state {event.state!r}")
        return event

    @classmethod
    def from_json(cls, line: str | bytes) -> "GenreEvent":
        """Parse one JSON line; raises ``ValueError`` on anything malformed."""
        try:
            data = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"not JSON: {exc}") from None
        try:
            return cls.from_dict(data)
        except TypeError as exc:
            raise ValueError(str(exc)) from None


_FIELD_TYPES: dict[str, tuple[str, ...]] = {
    "source": ("str",), "seq": ("int",), "utc": ("str",), "audio_start_seconds": ("number",),
    "audio_end_seconds": ("number",), "state": ("str",), "genre": ("str", "null"), "probability": ("number",),
    "probabilities": ("dict",), "smoothed_genre": ("str", "null"), "smoothed_probability": ("number",),
    "changed": ("bool",), "level_dbfs": ("number",), "model_id": ("str",), "context_seconds": ("number", "null"),
    "music_probability": ("number", "null"), "smoothed_music_probability": ("number", "null"), "bandwidth_hz": ("number", "null"),
    "band_limited": ("bool", "null"), "schema_version": ("int",),
}
"""JSON types of each field (what :meth:`GenreEvent.from_dict` accepts from other publishers)."""


_TYPE_CHECKS: dict[str, Any] = {
    "str": lambda v: isinstance(v, str), "dict": lambda v: isinstance(v, dict),
    "bool": lambda v: isinstance(v, bool), "null": lambda v: v is None,
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and _finite(v),
}


def _finite(value: int | float) -> bool:
    """Whether a JSON number is a finite float (JSON has no NaN; an integer of 400 digits is none either)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _has_type(value: Any, kinds: tuple[str, ...] | str) -> bool:
    kinds = (kinds,) if isinstance(kinds, str) else kinds
    return any(_TYPE_CHECKS[kind](value) for kind in kinds)


def utc_now() -> str:
    """The current UTC time as ISO 8601 with millisecond precision and ``Z``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def load_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`GenreEvent`'s JSON form."""
    text = resources.files("genrecast.daemon").joinpath("schema/genre-event.schema.json").read_text()
    return json.loads(text)
