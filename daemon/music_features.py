"""Level-invariant features of one window for the music detector.

Built only from the shared feature module's building blocks
(:func:`genrecast.daemon.features.power_spectrogram`, its mel filterbank and DCT), so
the trainer and the daemon compute the same values. Every feature is a ratio, a
shape or a dB *difference*, so a gain on the input moves none of them (while the
audio is above the 1e-10 mel power floor and below clipping): the 0th MFCC and
the RMS level are left out on purpose.

Columns (:data:`DETECTOR_COLUMNS`), over the STFT frames of one window:

* ``mfccK_mean`` / ``mfccK_std`` for K = 1..12: MFCCs of the mel dB spectrum with
  librosa's 80-dB floor under the window's loudest value (timbre).
* ``dmfccK_std``: spread of the frame-to-frame MFCC change (how fast timbre moves;
  syllables move it much more than sustained notes).
* ``flatness_mean`` / ``flatness_std``: spectral flatness (geometric over
  arithmetic mean of the mel power spectrum; Dubnov 2004): tonal → 0, noise → 1.
* ``flux_mean`` / ``flux_std``: spectral flux between unit-sum mel magnitude spectra
  (Scheirer & Slaney 1997).
* ``zcr_mean`` / ``zcr_std``: zero-crossing rate per frame.
* ``centroid_mean`` / ``centroid_std``: spectral centroid (of the mel bands' centres) over the Nyquist frequency.
* ``low_energy``: share of frames whose energy is under half the window's mean
  frame energy (Scheirer & Slaney 1997; speech pauses raise it).
* ``pause``: share of frames 30 dB or more under the window's loudest frame.
* ``energy_db_std``: spread of the frame energy in dB.
* ``modulation_4hz``: share of the frame-energy envelope's modulation power in
  2-8 Hz, the syllable rate of speech (Houtgast & Steeneken 1985).
* ``chroma_entropy_mean`` / ``_std``, ``chroma_peak_mean``, ``chroma_stability``: from the
  shared chroma filterbank (as :func:`genrecast.daemon.features.chroma_frames`, A440 tuning): the entropy
  of each frame's pitch-class distribution (noise spreads it), the strongest class's share,
  and the correlation of consecutive frames' chroma (held notes and chords keep it high).
* ``onset_periodicity``, ``fine_stability``, ``peak_moves`` (since 2026-12-01; see
  :func:`_harmonic_motion`): how strongly the onsets repeat at a beat's lags, how well the partials
  at 200-2000 Hz hold from frame to frame, and how often the strongest low partial moves. They are
  columns that still tell speech from music in a reverberant room.
* ``log_tuning_concentration``, ``log_tuning_consistency`` (since 2026-12-01; see :func:`_tuning`): how
  closely the window's spectral peaks sit on one semitone grid. Notes of tuned instruments and
  singers do, whatever the tuning reference; a speaking voice's pitch glides over every
  position, and a room's reverberation does not change a frequency.

Detectors trained before the last columns use a prefix (:data:`DETECTOR_COLUMNS_52`,
:data:`DETECTOR_COLUMNS_55`), which :func:`music_features` still gives for their config.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from genrecast.daemon.features import FeatureConfig, _chroma_basis, _dct_matrix32, _mel_basis, power_spectrogram

N_MFCC = 12

DETECTOR_COLUMNS_52: tuple[str, ...] = (
    tuple(f"mfcc{k}_{stat}" for k in range(1, N_MFCC + 1) for stat in ("mean", "std"))
    + tuple(f"dmfcc{k}_std" for k in range(1, N_MFCC + 1))
    + ("flatness_mean", "flatness_std", "flux_mean", "flux_std", "zcr_mean", "zcr_std",
       "centroid_mean", "centroid_std", "low_energy", "pause", "energy_db_std", "modulation_4hz",
       "chroma_entropy_mean", "chroma_entropy_std", "chroma_peak_mean", "chroma_stability")
)
"""The first detectors' input columns, in model order (52): a prefix of :data:`DETECTOR_COLUMNS`."""

DETECTOR_COLUMNS_55: tuple[str, ...] = DETECTOR_COLUMNS_52 + ("onset_periodicity", "fine_stability", "peak_moves")
"""The second detectors' input columns (55): a prefix of :data:`DETECTOR_COLUMNS`."""

DETECTOR_COLUMNS: tuple[str, ...] = DETECTOR_COLUMNS_55 + ("log_tuning_concentration", "log_tuning_consistency")
"""The detector's input columns, in model order (57)."""

#: Every column list a detector may have been trained on, oldest first (each a prefix of the next).
DETECTOR_COLUMN_SETS: tuple[tuple[str, ...], ...] = (DETECTOR_COLUMNS_52, DETECTOR_COLUMNS_55, DETECTOR_COLUMNS)

#: Shortest audio (seconds) that gets detector features; shorter windows are too short to judge.
MIN_SECONDS = 0.25

_TINY = 1e-10


@functools.lru_cache(maxsize=8)
def _mel_centres(cfg: FeatureConfig) -> np.ndarray:
    """Centre frequency (Hz) of each mel band: its filter's weighted mean frequency."""
    weights = np.asarray(_mel_basis(cfg.sample_rate, cfg.n_fft, cfg.n_mels).todense())
    freqs = np.fft.rfftfreq(cfg.n_fft, d=1.0 / cfg.sample_rate)
    return (weights @ freqs) / np.maximum(weights.sum(axis=1), _TINY)


@functools.lru_cache(maxsize=8)
def _chroma_basis_t(cfg: FeatureConfig) -> np.ndarray:
    """The shared chroma filterbank (A440 tuning) as 12 x bins, contiguous."""
    return np.ascontiguousarray(_chroma_basis(cfg.sample_rate, cfg.n_fft, 0.0).T)


#: STFT hop (samples) of the detector's frames: 2048-sample frames every 1024 samples (46 ms;
#: 21.5 frames a second, enough for the 2-8 Hz modulation). Against the genre path's 512, the
#: validation cross-entropy of the shipped settings was lower (0.259 vs 0.269; the test files
#: were not looked at) and the features cost about a third less.
DETECTOR_HOP = 1024


def detector_config(sample_rate: int = 22050, window_seconds: float = 3.0) -> FeatureConfig:
    """The FeatureConfig a detector is trained and run with (kept in the bundle; a bundle's
    detector always runs with its own, so older detectors keep their hop of 512)."""
    return FeatureConfig(kind="detector", sample_rate=sample_rate, window_seconds=window_seconds,
                         n_mfcc=N_MFCC + 1, hop_length=DETECTOR_HOP, columns=DETECTOR_COLUMNS)


def music_features(samples: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Detector features of one window of mono audio at ``cfg.sample_rate``.

    ``samples``: the window's real audio (any length from :data:`MIN_SECONDS`; not
    zero-padded, since padding would read as a pause). Returns float32 of shape
    ``(len(cfg.columns),)``: :data:`DETECTOR_COLUMNS`, or its first 52 or 55 for an older
    detector's config. Raises ``ValueError`` for audio shorter than :data:`MIN_SECONDS` or one FFT frame.
    """
    y = np.asarray(samples, dtype=np.float32)
    if len(y) < max(cfg.n_fft, MIN_SECONDS * cfg.sample_rate):
        raise ValueError(f"music_features needs at least {MIN_SECONDS} s and one FFT frame of audio, got {len(y)} samples")
    power = power_spectrogram(y, cfg)  # bins x frames
    mel = _mel_basis(cfg.sample_rate, cfg.n_fft, cfg.n_mels) @ power
    mel_db = 10.0 * np.log10(np.maximum(mel, _TINY))
    mel_db = np.maximum(mel_db, mel_db.max() - 80.0)
    mfcc = (_dct_matrix32(cfg.n_mels, N_MFCC + 1) @ mel_db)[1:]  # 12 x frames, the 0th (level) dropped
    delta = np.diff(mfcc, axis=1)

    p = mel.astype(np.float64) + _TINY  # on the 128 mel bands: ~10x cheaper than on the FFT bins
    flatness = np.exp(np.mean(np.log(p), axis=0)) / np.mean(p, axis=0)
    mag = np.sqrt(p)
    unit = mag / mag.sum(axis=0, keepdims=True)
    flux = np.sqrt(np.sum(np.diff(unit, axis=1) ** 2, axis=0))
    centroid = (_mel_centres(cfg) @ unit) / (cfg.sample_rate / 2)

    zcr = _zero_crossing_rate(y, cfg)

    energy = power.sum(axis=0, dtype=np.float64) + _TINY
    energy_db = 10.0 * np.log10(energy)
    frames = len(energy)  # (float64 sums over an int count: the values np.mean gives, without its overhead)
    low_energy = np.count_nonzero(energy < 0.5 * (energy.sum() / frames)) / frames
    pause = np.count_nonzero(energy_db < energy_db.max() - 30.0) / frames
    envelope = energy_db - energy_db.sum() / frames
    spectrum = np.abs(np.fft.rfft(envelope)) ** 2
    modulation = spectrum[_syllable_rates(cfg, len(envelope))].sum() / max(spectrum[1:].sum(), _TINY)

    # the shared chroma filterbank (as chroma_frames, A440), applied bins-first: power is bins x frames
    chroma = (_chroma_basis_t(cfg) @ power).T.astype(np.float64)  # frames x 12
    share = chroma / np.maximum(chroma.sum(axis=1, keepdims=True), _TINY)
    entropy = -np.sum(share * np.log(np.maximum(share, _TINY)), axis=1) / np.log(12)
    centred = chroma - chroma.mean(axis=1, keepdims=True)
    norms = np.maximum(np.linalg.norm(centred, axis=1), _TINY)
    stability = np.sum(centred[1:] * centred[:-1], axis=1) / (norms[1:] * norms[:-1])

    # the per-frame series' means and spreads in one pass (each row reduced as alone)
    series = np.stack([flatness, zcr, centroid, entropy, share.max(axis=1), energy_db])
    means, spreads = _mean_std(series)
    flux_mean, flux_spread = _mean_std(flux[None])
    mfcc_means, mfcc_spreads = _mean_std(mfcc)
    columns = [np.stack([mfcc_means, mfcc_spreads], axis=1).ravel(), _mean_std(delta)[1],
               [means[0], spreads[0], flux_mean[0], flux_spread[0], means[1], spreads[1],
                means[2], spreads[2], low_energy, pause, spreads[5], modulation,
                means[3], spreads[3], means[4], stability.sum() / len(stability)]]
    wanted = len(cfg.columns) if cfg.columns else len(DETECTOR_COLUMNS)
    if wanted > len(DETECTOR_COLUMNS_52):  # an older detector's config: skip the columns it does not use
        columns.append(_harmonic_motion(power, mel_db, cfg))
    if wanted > len(DETECTOR_COLUMNS_55):
        columns.append(_tuning(power, cfg))
    return np.concatenate([np.asarray(c, dtype=np.float64) for c in columns]).astype(np.float32)


def _mean_std(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's mean and standard deviation, computed as numpy's ``rows.mean(axis=1)`` and
    ``rows.std(axis=1)`` do (the same ufuncs in the same order, so the same values), without
    their Python wrappers' overhead (a few microseconds a call)."""
    count = np.intp(rows.shape[1])  # numpy divides by an intp: float32 sums are divided in float64
    mean = np.add.reduce(rows, axis=1, keepdims=True)
    np.true_divide(mean, count, out=mean, casting="unsafe")
    spread = np.subtract(rows, mean)
    np.square(spread, out=spread)
    var = np.add.reduce(spread, axis=1)
    np.true_divide(var, count, out=var, casting="unsafe")
    return mean[:, 0], np.sqrt(var, out=var)


def _zero_crossing_rate(y: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Sign changes within each centred frame (zero padding, as the STFT's frames) over the frame's
    ``n_fft - 1`` sample pairs, shape (frames,). Counted per block of ``gcd(n_fft, hop)`` samples
    (every frame spans whole blocks) and summed per frame: the same counts as a running sum over
    every sample pair, at a fraction of the cost on noisy audio."""
    n, hop = cfg.n_fft, cfg.hop_length
    size = math.gcd(n, hop)
    signs = np.zeros(len(y) + 2 * (n // 2), dtype=bool)  # the zero padding's signs
    np.signbit(y, out=signs[n // 2 : n // 2 + len(y)])
    starts = np.arange(0, len(signs) - n + 1, hop)
    blocks = len(signs) // size + 1
    changes = np.zeros(blocks * size, dtype=bool)  # changes[j]: between samples j and j + 1
    np.not_equal(signs[1:], signs[:-1], out=changes[:len(signs) - 1])
    before = np.concatenate(([0], np.cumsum(np.count_nonzero(changes.reshape(blocks, size), axis=1))))
    first = starts // size
    # a frame starting at s holds the changes s .. s + n - 2: its blocks, less the change at s + n - 1
    return (before[first + n // size] - before[first] - changes[starts + n - 1]) / (n - 1)


@functools.lru_cache(maxsize=8)
def _syllable_rates(cfg: FeatureConfig, frames: int) -> np.ndarray:
    """Which bins of the rfft of a ``frames``-long frame-energy envelope are 2-8 Hz (the syllable rates)."""
    rates = np.fft.rfftfreq(frames, d=cfg.hop_length / cfg.sample_rate)
    return (rates >= 2) & (rates <= 8)


@functools.lru_cache(maxsize=8)
def _band(cfg: FeatureConfig, low: float, high: float) -> slice:
    """The FFT bins strictly between ``low`` and ``high`` Hz, as a slice of the bin axis."""
    freqs = np.fft.rfftfreq(cfg.n_fft, d=1.0 / cfg.sample_rate)
    inside = np.flatnonzero((freqs > low) & (freqs < high))
    return slice(int(inside[0]), int(inside[-1]) + 1)


def _harmonic_motion(power: np.ndarray, mel_db: np.ndarray, cfg: FeatureConfig) -> list[float]:
    """The three columns added for reverberant rooms, from the window's power spectrogram (bins x
    frames) and its mel dB spectrogram. Chosen on the validation files (never the test files): under
    the small-speaker room each alone separated their speech from music with a ROC AUC of 0.79-0.83,
    and with them the detector's validation cross-entropy fell from 0.295 to 0.262:

    * ``onset_periodicity``: the highest normalised autocorrelation of the onset strength (the
      positive mel dB flux, averaged over bands) at lags of 0.3-1.0 s: a beat repeats, syllables do not.
    * ``fine_stability``: mean correlation of the log power spectrum at 200-2000 Hz, at full FFT
      resolution, between frames two hops apart: held notes keep their partials, a speaking
      voice's pitch glides move them. Its logarithms are float32 since the tuning columns (they are
      most of its cost), which moves the value by at most one float32 step (1.2e-7) from what a
      55-column detector was trained on.
    * ``peak_moves``: share of frames whose strongest bin in 80-1000 Hz differs from the last frame's.
    """
    onset = np.maximum(np.diff(mel_db, axis=1), 0.0).mean(axis=0).astype(np.float64)
    onset -= onset.mean()
    ac = np.correlate(onset, onset, "full")[len(onset) - 1:]
    fps = cfg.sample_rate / cfg.hop_length
    low, high = int(0.3 * fps), min(int(1.0 * fps), len(ac) - 1)
    periodicity = float(ac[low:high + 1].max() / ac[0]) if high >= low and ac[0] > _TINY else 0.0
    band = np.log(power[_band(cfg, 200.0, 2000.0)] + np.float32(_TINY))  # float32: the cost is in these logarithms
    band -= band.mean(axis=0, keepdims=True)
    norms = np.sqrt(np.einsum("ij,ij->j", band, band)) + np.float32(_TINY)
    stability = float(np.mean(np.einsum("ij,ij->j", band[:, 2:], band[:, :-2]) / (norms[2:] * norms[:-2]))) \
        if band.shape[1] > 2 else 1.0
    peaks = np.argmax(power[_band(cfg, 80.0, 1000.0)], axis=0)
    moves = np.count_nonzero(np.diff(peaks)) / (len(peaks) - 1) if len(peaks) > 1 else 0.0
    return [periodicity, stability, moves]


#: Band (Hz) whose spectral peaks :func:`_tuning` places on the semitone grid: a voice's and most
#: instruments' fundamentals and first partials (a 2048-point FFT bin is 1.2 semitones at 150 Hz,
#: and parabolic interpolation places a held partial to a fraction of a bin).
TUNING_BAND_HZ = (150.0, 2000.0)
#: Peaks count within this many dB under the band's loudest bin of their frame; their weight is
#: their height above that floor.
TUNING_RANGE_DB = 30.0
#: Added before the logarithm of both tuning columns: keeps a window without peaks finite.
TUNING_LOG_OFFSET = 0.01


def _tuning(power: np.ndarray, cfg: FeatureConfig) -> list[float]:
    """How well the window's spectral peaks fit one semitone grid (equal temperament, any reference).

    Each local maximum of a frame's log power spectrum in :data:`TUNING_BAND_HZ`, within
    :data:`TUNING_RANGE_DB` of the frame's band maximum, is located to a fraction of a bin by
    parabolic interpolation of the dB values (Smith & Serra 1987), and its frequency becomes a phase,
    ``exp(2 pi i * 12 log2(f / 440))``: one turn per semitone, so every note of one tuning has
    the same phase. Weighted by height above the floor:

    * concentration: length of the mean phase vector over all peaks of the window
      (0: peaks anywhere between the semitones, 1: all on one grid).
    * consistency: length of the mean of the unit phase vectors of the frames that have peaks
      (do the frames agree on the grid, however many peaks each has; a window with one such
      frame scores 1).

    Both are 0 for a window without peaks, and enter the model as ``ln(TUNING_LOG_OFFSET + value)``:
    the logarithm spreads the low values where speech (median 0.03 on the clean validation files)
    and music (5th percentile 0.12) part. On the validation files (never the test files) the
    concentration alone tells speech from music with a ROC AUC of 0.996 clean, 0.952 in a room and
    0.949 through a small speaker into a room (the columns before it: 0.79-0.83 in the rooms). The
    band and the range were chosen there too, against their cost: 250-4000 Hz and 40 dB gave 0.997 /
    0.954 / 0.954 at twice the time. With both columns the detector's validation cross-entropy fell
    from 0.262 to 0.214, and to 0.191 with the logarithm. Reading every second frame only would
    halve the cost (0.11 ms a window, against 0.07-0.09), but gave 0.991 / 0.945 / 0.934, and a
    detector trained on it a validation cross-entropy of 0.221 against 0.214, with validation speech
    in a room kept out 95 % of the time against 99 %; a numba loop kept every frame at 0.06 ms, but
    its compiler took the daemon from about 100 to 200 MB.

    Returns ``[log_tuning_concentration, log_tuning_consistency]``.
    """
    bins = _band(cfg, *TUNING_BAND_HZ)
    band = power[bins.start - 1:bins.stop + 1]  # the band and a bin either side, bins x frames
    centre, left, right = band[1:-1], band[:-2], band[2:]
    floor = centre.max(axis=0) * 10.0 ** (-TUNING_RANGE_DB / 10.0)
    peak = np.greater(centre, left)
    peak &= centre >= right
    peak &= centre > floor
    rows, frames = np.divmod(np.flatnonzero(peak), band.shape[1])  # np.nonzero's order, at half its cost
    if not len(rows):
        return [float(np.log(TUNING_LOG_OFFSET))] * 2
    # dB only at the peaks and their neighbours: the same peaks, a fraction of the logarithms
    l, c, r = 10.0 * np.log10(np.stack([v[rows, frames] for v in (left, centre, right)]).astype(np.float64) + _TINY)
    curvature = l - 2.0 * c + r  # of the dB spectrum around the peak: < 0 at a true maximum
    offset = np.where(curvature < 0, 0.5 * (l - r) / np.where(curvature < 0, curvature, -1.0), 0.0)
    hz = (bins.start + rows + offset) * (cfg.sample_rate / cfg.n_fft)
    weight = c - 10.0 * np.log10(floor[frames].astype(np.float64) + _TINY)  # dB above the frame's floor
    angle = 2.0 * np.pi * 12.0 * np.log2(hz / 440.0)  # the phase, weight * exp(i angle), as two real parts
    cos, sin = weight * np.cos(angle), weight * np.sin(angle)
    concentration = float(math.hypot(cos.sum(), sin.sum()) / weight.sum())
    per_cos = np.bincount(frames, weights=cos, minlength=band.shape[1])
    per_sin = np.bincount(frames, weights=sin, minlength=band.shape[1])
    size = np.hypot(per_cos, per_sin)
    kept = size > _TINY  # the frames with peaks
    consistency = float(math.hypot(np.mean(per_cos[kept] / size[kept]), np.mean(per_sin[kept] / size[kept]))) \
        if kept.any() else 0.0
    return [float(np.log(TUNING_LOG_OFFSET + concentration)), float(np.log(TUNING_LOG_OFFSET + consistency))]

