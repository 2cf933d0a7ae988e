"""The ``summary`` kind: the published GTZAN feature table's statistics (mean and variance
over frames of chroma, RMS, spectral centroid / bandwidth / rolloff, zero-crossing rate and
20 MFCCs), over a whole clip (:func:`clip_summary`) or over the daemon's rolling context
(:class:`RollingSummary`), built on :mod:`genrecast.daemon.spectral`.
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np

from genrecast.daemon.level import normalise_level

from genrecast.daemon.feature_config import FeatureConfig
from genrecast.daemon.spectral import _chroma_basis, _dct_matrix32, _fft_freqs, _mel_basis, _windowed

#: Bins per block in the rolloff search (:func:`_rolloff_bins`).
_ROLLOFF_BLOCK = 32


def _rolloff_bins(mag: np.ndarray, fraction: float = 0.85) -> np.ndarray:
    """Per frame (``mag``: frames x bins), the first bin where the cumulative magnitude reaches
    ``fraction`` of the frame's total, as ``librosa.feature.spectral_rolloff``. Found block by
    block: cumulative block sums locate the block, one short cumsum inside it the bin."""
    n_frames, n_bins = mag.shape
    full = n_bins // _ROLLOFF_BLOCK * _ROLLOFF_BLOCK
    blocks = mag[:, :full].reshape(n_frames, -1, _ROLLOFF_BLOCK).sum(axis=2)
    if full < n_bins:
        blocks = np.concatenate([blocks, mag[:, full:].sum(axis=1, keepdims=True)], axis=1)
    cumulative = np.cumsum(blocks, axis=1)
    threshold = fraction * cumulative[:, -1:]
    block = np.argmax(cumulative >= threshold, axis=1)
    before = np.where(block > 0, cumulative[np.arange(n_frames), block - 1], 0.0)[:, None]
    bins = block[:, None] * _ROLLOFF_BLOCK + np.arange(_ROLLOFF_BLOCK)
    inside = np.where(bins < n_bins, np.take_along_axis(mag, np.minimum(bins, n_bins - 1), axis=1), 0.0)
    return bins[np.arange(n_frames), np.argmax(before + np.cumsum(inside, axis=1) >= threshold, axis=1)]


#: librosa.piptrack's defaults, as ``chroma_stft`` uses them to estimate the tuning.
_PITCH_FMIN, _PITCH_FMAX, _PITCH_THRESHOLD = 150.0, 4000.0, 0.1


@functools.lru_cache(maxsize=16)
def _pitch_bins(sample_rate: int, n_fft: int) -> tuple[int, int]:
    """The FFT bins [lo, hi) that piptrack searches for peaks (fmin <= f < fmax; none for a
    very coarse FFT). Never bin 0 or the last, so every bin in it has two neighbours."""
    freqs = _fft_freqs(sample_rate, n_fft)
    inside = np.flatnonzero((freqs >= _PITCH_FMIN) & (freqs < min(_PITCH_FMAX, sample_rate / 2)))
    return (int(inside[0]), int(inside[-1]) + 1) if inside.size else (1, 1)


#: Edges of ``librosa.estimate_tuning``'s histogram of semitone offsets (resolution 0.01).
_TUNING_EDGES = np.linspace(-0.5, 0.5, 101)


def pitch_peaks(power: np.ndarray, cfg: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """``librosa.piptrack(S=power)`` (frames x bins) within its 150-4000 Hz band, as
    ``librosa.estimate_tuning`` uses it. Per frame and band bin: the peak's interpolated
    magnitude (NaN where there is no peak) and the histogram bin (0-99; -1 where no peak)
    of its pitch's offset from the nearest equal-tempered semitone of A440."""
    lo, hi = _pitch_bins(cfg.sample_rate, cfg.n_fft)
    gated = power * (power > _PITCH_THRESHOLD * power.max(axis=1, keepdims=True))
    here = gated[:, lo:hi]
    frame, band = np.nonzero((here > gated[:, lo - 1 : hi - 1]) & (here >= gated[:, lo + 1 : hi + 1]))  # localmax
    k = band + lo
    centre, left, right = power[frame, k], power[frame, k - 1], power[frame, k + 1]
    slope = (right - left) / 2  # np.gradient, and the parabola's b
    curve = right + left - 2 * centre
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(np.abs(slope) >= np.abs(curve), np.float32(0), -slope / curve)
    pitch = ((k + shift.astype(np.float64)) * float(cfg.sample_rate) / cfg.n_fft).astype(np.float32)
    offset = np.mod(12 * np.log2(pitch / np.float32(440.0 / 16)), 1.0)
    offset[offset >= 0.5] -= 1.0
    magnitude = np.full(here.shape, np.nan, dtype=np.float32)
    magnitude[frame, band] = centre + 0.5 * slope * shift
    bins = np.full(here.shape, -1, dtype=np.int16)
    bins[frame, band] = np.clip(np.searchsorted(_TUNING_EDGES, offset.astype(np.float64), side="right") - 1, 0, 99)
    return magnitude, bins


def estimate_tuning(magnitude: np.ndarray, bins: np.ndarray) -> float:
    """``librosa.estimate_tuning`` from the :func:`pitch_peaks` of a span: the commonest
    offset (in 0.01 steps) among the peaks at least as strong as their median."""
    found = bins >= 0
    if not found.any():
        return 0.0
    strength = magnitude[found]
    counts = np.bincount(bins[found][strength >= np.median(strength)], minlength=len(_TUNING_EDGES) - 1)
    return float(_TUNING_EDGES[np.argmax(counts)])


def chroma_frames(power: np.ndarray, tuning: float, cfg: FeatureConfig) -> np.ndarray:
    """``librosa.feature.chroma_stft`` per frame (frames x 12, each frame's max 1) for a tuning."""
    chroma = power @ _chroma_basis(cfg.sample_rate, cfg.n_fft, tuning)
    return chroma / np.maximum(chroma.max(axis=1, keepdims=True), np.finfo(np.float32).tiny)


def _wants_chroma(cfg: FeatureConfig) -> bool:
    return any(c.startswith("chroma") for c in cfg.columns)


def _frame_values(signal: np.ndarray, count: int, cfg: FeatureConfig) -> dict[str, np.ndarray]:
    """Per-frame values of the summary features of the first ``count`` frames of ``signal``
    (float32 audio; a frame of ``n_fft`` samples starts every ``hop_length``).

    float32 like librosa's own STFT. Two entries are inputs to span-wide statistics, not
    statistics themselves: ``mel_db`` (frames x n_mels, before the 80-dB floor, which depends
    on the loudest frame of the span: see :func:`mfcc_frames`) and, when chroma is wanted,
    ``power`` with ``pitch_magnitude`` / ``pitch_bin`` (the chroma filterbank follows the
    span's estimated tuning: see :func:`estimate_tuning`). Every other entry is one value per frame.
    """
    import scipy.fft

    n_fft, hop = cfg.n_fft, cfg.hop_length
    signal = np.asarray(signal[: (count - 1) * hop + n_fft], dtype=np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(signal, n_fft)[::hop]
    mag = np.abs(scipy.fft.rfft(_windowed(frames), axis=1))  # frames x bins
    power = np.square(mag)
    out: dict[str, np.ndarray] = {}

    if _wants_chroma(cfg):
        out["power"] = power
        out["pitch_magnitude"], out["pitch_bin"] = pitch_peaks(power, cfg)

    out["rms"] = np.sqrt(np.einsum("ij,ij->i", frames, frames) / n_fft)  # librosa.feature.rms: no window
    signs = np.signbit(signal)
    flips = np.lib.stride_tricks.sliding_window_view(signs[1:] != signs[:-1], n_fft - 1)[::hop]  # within each frame
    out["zero_crossing_rate"] = np.count_nonzero(flips, axis=1) / (n_fft - 1)

    freqs = _fft_freqs(cfg.sample_rate, n_fft)
    total = np.maximum(mag.sum(axis=1, dtype=np.float64), np.finfo(float).tiny)
    centroid = (mag @ freqs.astype(np.float32)) / total
    out["spectral_centroid"] = centroid
    spread = (mag @ (freqs**2).astype(np.float32)) / total - centroid**2  # E[(f - centroid)^2], magnitude-weighted
    out["spectral_bandwidth"] = np.sqrt(np.maximum(spread, 0.0))
    out["rolloff"] = freqs[_rolloff_bins(mag)]

    mel = (_mel_basis(cfg.sample_rate, n_fft, cfg.n_mels) @ power.T).T
    out["mel_db"] = 10.0 * np.log10(np.maximum(mel, 1e-10))
    return out


def frame_statistics(y: np.ndarray, cfg: FeatureConfig) -> dict[str, np.ndarray]:
    """Per-frame summary values over a whole clip ``y`` (centred frames, as librosa)."""
    padded = np.pad(np.asarray(y, dtype=np.float32), cfg.n_fft // 2)
    return _frame_values(padded, 1 + (len(padded) - cfg.n_fft) // cfg.hop_length, cfg)


def mfcc_floor(mel_db: np.ndarray) -> float:
    """librosa's ``power_to_db(top_db=80)`` floor over a span: 80 dB under its loudest value."""
    return float(mel_db.max()) - 80.0


def mfcc_frames(mel_db: np.ndarray, floor: float, cfg: FeatureConfig) -> np.ndarray:
    """20 MFCCs per frame (frames x 20) from mel dB values and the span's floor."""
    return np.maximum(mel_db, np.float32(floor)) @ _dct_matrix32(cfg.n_mels, 20).T


#: Entries of :func:`_frame_values` that feed span-wide statistics rather than being one.
_SPAN_INPUTS = ("mel_db", "power", "pitch_magnitude", "pitch_bin", "pitch_count")


def summarise(
    frames: dict[str, np.ndarray], cfg: FeatureConfig, mfccs: np.ndarray | None = None, chroma: np.ndarray | None = None
) -> np.ndarray:
    """Mean/variance columns (in ``cfg.columns`` order) from per-frame values.

    Matches librosa's defaults as used to build the published GTZAN table (then takes the
    level out when ``cfg.level`` is ``normalised``). ``mfccs`` (frames x 20) and ``chroma`` (frames x 12) may be given when already
    computed for this span.
    """
    stats: dict[str, tuple[float, float]] = {}
    for name, values in frames.items():
        if name not in _SPAN_INPUTS:
            v = np.asarray(values, dtype=np.float64)
            stats[name] = (v.mean(), v.var())
    if _wants_chroma(cfg):
        if chroma is None:
            tuning = estimate_tuning(frames["pitch_magnitude"], frames["pitch_bin"])
            chroma = chroma_frames(frames["power"], tuning, cfg)
        v = np.asarray(chroma, dtype=np.float64)  # over every bin and frame
        stats["chroma_stft"] = (v.mean(), v.var())
    if any(c.startswith("mfcc") for c in cfg.columns):
        if mfccs is None:
            mfccs = mfcc_frames(frames["mel_db"], mfcc_floor(frames["mel_db"]), cfg)
        coeffs = np.asarray(mfccs, dtype=np.float64)
        stats.update({f"mfcc{i + 1}": pair for i, pair in enumerate(zip(coeffs.mean(axis=0), coeffs.var(axis=0)))})
    values = []
    for column in cfg.columns:
        name, _, stat = column.rpartition("_")
        values.append(stats[name][0 if stat == "mean" else 1])
    row = np.asarray(values, dtype=np.float64)
    return normalise_level(row, cfg.columns, cfg.n_mels) if cfg.level == "normalised" else row


def clip_summary(y: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Summary features over a whole clip, as one row of the feature table."""
    return summarise(frame_statistics(y, cfg), cfg).astype(np.float32)


class _FrameRing:
    """The last ``capacity`` rows of per-frame values, kept in fixed arrays and overwritten
    oldest first. Rows are not in time order once it wraps: every statistic taken over
    them (means, variances, the loudest value) does not depend on order."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.arrays: dict[str, np.ndarray] = {}
        self.filled = 0
        self._next = 0

    def positions_for(self, n: int) -> np.ndarray:
        """Where the next ``n`` rows will go (only the last ``capacity`` of them are kept)."""
        return (self._next + np.arange(min(n, self.capacity))) % self.capacity

    def occupied(self, positions: np.ndarray) -> np.ndarray:
        """Those of ``positions`` that hold a row now (rows an add there overwrites)."""
        return positions[positions < self.filled]

    def add(self, rows: dict[str, np.ndarray]) -> np.ndarray:
        """Store new rows (a dict of equally long arrays); returns the positions written."""
        n = min(len(next(iter(rows.values()))), self.capacity)
        if not self.arrays:
            self.arrays = {k: np.empty((self.capacity, *v.shape[1:]), v.dtype) for k, v in rows.items()}
        positions = self.positions_for(n)
        for k, v in rows.items():
            self.arrays[k][positions] = v[len(v) - n :]
        self._next = (self._next + n) % self.capacity
        self.filled = min(self.capacity, self.filled + n)
        return positions

    def view(self, name: str) -> np.ndarray:
        """The stored rows of one value (no copy)."""
        return self.arrays[name][: self.filled]


class _PeakQueue:
    """The pitch peaks of the frames in a rolling context, oldest first, in one circular
    buffer: new frames' peaks join at the back, evicted frames' leave at the front."""

    def __init__(self, capacity: int) -> None:
        self.magnitude = np.empty(capacity, dtype=np.float32)
        self.bins = np.empty(capacity, dtype=np.int16)
        self._start = 0
        self.size = 0

    def drop(self, n: int) -> None:
        self._start = (self._start + n) % len(self.bins)
        self.size -= n

    def push(self, magnitude: np.ndarray, bins: np.ndarray) -> None:
        at = (self._start + self.size + np.arange(len(bins))) % len(self.bins)
        self.magnitude[at], self.bins[at] = magnitude, bins
        self.size += len(bins)

    def tuning(self) -> float:
        """:func:`estimate_tuning` over the peaks held."""
        at = (self._start + np.arange(self.size)) % len(self.bins)
        return estimate_tuning(self.magnitude[at], self.bins[at])


class _SpanDependent:
    """Per-frame values that depend on one span-wide parameter too (the MFCCs on the 80-dB
    floor, the chroma on the tuning), kept per ring row: only the written rows are computed
    while the parameter stays, every row when it moves."""

    def __init__(self, capacity: int, width: int) -> None:
        self.rows = np.zeros((capacity, width), dtype=np.float32)
        self._parameter = np.nan

    def update(self, parameter: float, written: np.ndarray, fresh: np.ndarray, stored: np.ndarray,
               compute: Callable[[np.ndarray, float], np.ndarray]) -> None:
        """``fresh``: the inputs of the ``written`` rows; ``stored``: the inputs of every ring row."""
        if parameter == self._parameter:
            self.rows[written] = compute(fresh, parameter)
        else:
            self.rows[: len(stored)], self._parameter = compute(stored, parameter), parameter


class RollingSummary:
    """Summary features over the last ``cfg.context_seconds`` of a stream, updated as audio
    arrives: frames are computed once each, continuously across pushes, as over one clip,
    and kept in a ring (no per-window copy of the context).

    Each frame's MFCCs and chroma are kept too. The MFCCs depend on the context's loudest
    value (the 80-dB floor) and the chroma on its estimated tuning, so each is recomputed
    for the whole context only when that value moves.
    """

    def __init__(self, cfg: FeatureConfig) -> None:
        self.cfg = cfg
        self._buffer = np.zeros(cfg.n_fft // 2, dtype=np.float32)  # the zero padding of a centred first frame
        self._ring = _FrameRing(int(cfg.context_seconds * cfg.sample_rate / cfg.hop_length) + 1)
        self._mfccs = _SpanDependent(self._ring.capacity, 20)  # row i: the MFCCs of ring row i
        self._chroma = _SpanDependent(self._ring.capacity, 12)  # row i: the chroma of ring row i
        lo, hi = _pitch_bins(cfg.sample_rate, cfg.n_fft)
        self._peaks = _PeakQueue(self._ring.capacity * ((hi - lo + 1) // 2 + 1))  # at most every other bin peaks
        self._pushed_samples = 0

    @property
    def covered_seconds(self) -> float:
        """Seconds of audio the statistics cover (at most ``context_seconds``)."""
        return min(self.cfg.context_seconds, self._pushed_samples / self.cfg.sample_rate)

    def push(self, samples: np.ndarray) -> None:
        """Add new audio (mono, at ``cfg.sample_rate``)."""
        self._pushed_samples += len(samples)
        self._buffer = np.concatenate([self._buffer, np.asarray(samples, dtype=np.float32)])
        n_fft, hop = self.cfg.n_fft, self.cfg.hop_length
        if len(self._buffer) < n_fft:
            return
        count = 1 + (len(self._buffer) - n_fft) // hop
        fresh = _frame_values(self._buffer, count, self.cfg)
        self._buffer = self._buffer[count * hop :]
        positions = self._ring.positions_for(count)
        new = slice(count - len(positions), count)  # the fresh frames the ring keeps
        chroma = _wants_chroma(self.cfg)
        if chroma:  # the context's peaks: the overwritten frames' leave, the kept new frames' join
            if self._ring.filled:
                self._peaks.drop(int(self._ring.arrays["pitch_count"][self._ring.occupied(positions)].sum()))
            magnitude, bins = fresh.pop("pitch_magnitude")[new], fresh.pop("pitch_bin")[new]
            found = bins >= 0
            self._peaks.push(magnitude[found], bins[found])
            fresh["pitch_count"] = np.zeros(count, dtype=np.int32)
            fresh["pitch_count"][new] = found.sum(axis=1)
        written = self._ring.add(fresh)
        mel_db = self._ring.view("mel_db")
        self._mfccs.update(mfcc_floor(mel_db), written, fresh["mel_db"][new], mel_db,
                           lambda rows, floor: mfcc_frames(rows, floor, self.cfg))
        if chroma:
            self._chroma.update(self._peaks.tuning(), written, fresh["power"][new], self._ring.view("power"),
                                lambda rows, tuning: chroma_frames(rows, tuning, self.cfg))

    def features(self) -> np.ndarray | None:
        """The current summary row (float32), or None before the first frame."""
        if not self._ring.filled:
            return None
        filled = self._ring.filled
        frames = {k: self._ring.view(k) for k in self._ring.arrays if k not in _SPAN_INPUTS}
        return summarise(frames, self.cfg, self._mfccs.rows[:filled], self._chroma.rows[:filled]).astype(np.float32)
