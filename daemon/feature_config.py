"""What a bundle's features are: :class:`FeatureConfig` and the summary columns.

Kept apart from the code that computes them (:mod:`genrecast.daemon.spectral`,
:mod:`genrecast.daemon.summary_features`); :mod:`genrecast.daemon.features` is the
one place the trainer and the daemon import them from.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


from genrecast.daemon.level import LEVEL_COLUMNS, LEVEL_MODES

FEATURE_KINDS = ("mfcc", "summary", "detector", "logmel")
#: Hz: the ``logmel`` kind's windows are resampled to this rate (musicnn's) before its features.
LOGMEL_RATE = 16000
#: The kinds whose model input is one window's own time-frequency map (no context).
WINDOW_KINDS = ("mfcc", "logmel")

#: Frame-level features of the summary kind, in the table's column order.
#: Each contributes a ``_mean`` and a ``_var`` column.
SUMMARY_FRAME_FEATURES = (
    "chroma_stft",
    "rms",
    "spectral_centroid",
    "spectral_bandwidth",
    "rolloff",
    "zero_crossing_rate",
) + tuple(f"mfcc{i}" for i in range(1, 21))

#: The default summary columns: the cheap frame-level statistics of the table.
DEFAULT_SUMMARY_COLUMNS = tuple(
    f"{name}_{stat}" for name in SUMMARY_FRAME_FEATURES for stat in ("mean", "var")
)


@dataclass(frozen=True)
class FeatureConfig:
    """How audio becomes model input; saved inside every model bundle."""

    kind: str = "mfcc"
    """``mfcc`` (one window's MFCC map), ``summary`` (table statistics over a context),
    ``logmel`` (one window's level-normalised log-mel map, the musicnn model's input, see
    :mod:`genrecast.daemon.logmel`) or ``detector`` (the music detector's level-invariant window
    statistics, see ``music_features``)."""
    sample_rate: int = 22050
    """Hz; every source is resampled to this rate before features."""
    window_seconds: float = 3.0
    """Seconds of audio per classified window."""
    n_mfcc: int = 13
    """MFCC coefficients per frame (``mfcc`` kind; the summary kind always uses 20)."""
    n_fft: int = 2048
    """FFT size in samples."""
    hop_length: int = 512
    """Samples between frames."""
    n_mels: int = 128
    """Mel bands before the DCT."""
    context_seconds: float = 30.0
    """Seconds of audio the ``summary`` statistics cover (the table's clip length)."""
    columns: tuple[str, ...] = field(default=())
    """Ordered summary columns (``summary`` kind); empty for ``mfcc``."""
    level: str = "absolute"
    """``absolute``: the columns as librosa computes them, so they carry the recording's
    level; ``normalised``: the level is taken out of them (:func:`normalise_level`), so a
    gain leaves the model's input unchanged (``summary`` kind; bundles before this field
    read as ``absolute``)."""
    band_stage_hz: int = 0
    """Sources at or below ``sample_rate`` (which no anti-alias filter has touched on their
    way to the model) have each window sent up to this rate and back
    (:func:`genrecast.daemon.audio.band_limit`), so they carry the band limit that soxr gives
    faster sources on their way down (about 0.91 of the Nyquist frequency): with twice
    ``sample_rate`` (44100 for the default bundle) a 22.05, 44.1 or 48-kHz recording of the
    same music reaches the features with the same band, and its sample rate no longer moves
    them. Per window, not streamed, so it adds no latency. 0 (older bundles): none."""

    def __post_init__(self) -> None:
        problems = []
        if self.kind not in FEATURE_KINDS:
            problems.append(f"kind must be one of {FEATURE_KINDS}, not {self.kind!r}")
        if not 4000 <= self.sample_rate <= 192000:
            problems.append(f"sample_rate {self.sample_rate} Hz is out of range 4000..192000")
        window_ok = 0.25 <= self.window_seconds <= 60  # False for nan too
        if not window_ok:
            problems.append(f"window_seconds {self.window_seconds} is out of range 0.25..60")
        if not 1 <= self.n_mfcc <= 128:
            problems.append(f"n_mfcc {self.n_mfcc} is out of range 1..128")
        if self.n_fft < 16 or self.hop_length < 1 or self.hop_length > self.n_fft:
            problems.append(f"n_fft {self.n_fft} / hop_length {self.hop_length} are inconsistent")
        if window_ok and self.window_samples < self.n_fft:
            problems.append("window_seconds is shorter than one FFT frame")
        if self.kind == "summary":
            unknown = sorted(set(self.columns) - set(DEFAULT_SUMMARY_COLUMNS))
            if unknown:
                problems.append(f"unknown summary columns {unknown}")
            if not self.columns:
                problems.append("a summary config needs its columns")
            if self.context_seconds < self.window_seconds:
                problems.append("context_seconds must be at least window_seconds")
        if self.kind == "detector":
            from genrecast.daemon.music_features import DETECTOR_COLUMN_SETS

            if tuple(self.columns) not in DETECTOR_COLUMN_SETS:
                problems.append("a detector config's columns must be music_features.DETECTOR_COLUMNS "
                                "(or an older detector's DETECTOR_COLUMNS_52 or _55)")
        if self.band_stage_hz and not self.sample_rate < self.band_stage_hz <= 192000:
            problems.append(f"band_stage_hz {self.band_stage_hz} must be 0 or above sample_rate (at most 192000)")
        if self.level not in LEVEL_MODES:
            problems.append(f"level must be one of {LEVEL_MODES}, not {self.level!r}")
        elif self.level == "normalised" and (self.kind != "summary" or not set(LEVEL_COLUMNS) <= set(self.columns)):
            problems.append(f"level 'normalised' needs the summary kind with the columns {', '.join(LEVEL_COLUMNS)}")
        if problems:
            raise ValueError("invalid feature config: " + "; ".join(problems))

    @property
    def window_samples(self) -> int:
        """Samples in one window at ``sample_rate``."""
        return int(round(self.window_seconds * self.sample_rate))

    @property
    def frames_per_window(self) -> int:
        """STFT frames in one window (centred frames, as librosa)."""
        return 1 + self.window_samples // self.hop_length

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one model input (without the batch axis)."""
        if self.kind == "mfcc":
            return (self.frames_per_window, self.n_mfcc)
        if self.kind == "logmel":  # at LOGMEL_RATE, whole hops only: musicnn's 187 frames for 3 s, hop 256
            return (int(round(self.window_seconds * LOGMEL_RATE)) // self.hop_length, self.n_mels)
        return (len(self.columns),)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["columns"] = list(self.columns)
        if not self.band_stage_hz:  # as before the field existed: same bundle.json, same cache keys
            del d["band_stage_hz"]
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FeatureConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"invalid feature config: unknown keys {unknown}")
        data = dict(data)
        if "columns" in data:
            data["columns"] = tuple(data["columns"])
        return cls(**data)

    def cache_key(self) -> str:
        """A short stable string that changes whenever the features would."""
        import hashlib
        import json

        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
