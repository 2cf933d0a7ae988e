"""The ``logmel`` feature kind: one window's log-compressed mel spectrogram, the input of the
musicnn-based genre model (:mod:`genrecast.trainer.musicnn`).

Per window of ``cfg.window_samples`` samples at ``cfg.sample_rate`` (the pipeline's rate,
22.05 kHz for the default bundle, whose music detector works at that rate; 3 s):

1. **To 16 kHz** (:data:`~genrecast.daemon.feature_config.LOGMEL_RATE`, musicnn's rate), with
   soxr's HQ resampler, as the daemon resamples sources.
2. **Level out** (why a gain, a pan law or a quieter microphone does not move a verdict):
   the resampled window is scaled to an RMS of :data:`REFERENCE_DBFS` dBFS before its spectrum, so
   any gain ``g`` is undone exactly: ``g·y`` and ``y`` give the same samples up to float32
   rounding. Windows so quiet that this would lift the noise floor never get here: the
   pipeline leaves windows under ``silence_dbfs`` unclassified, and the music detector keeps
   room tone and talk out before the genre model is asked.
3. **Mel power**: |STFT|² with a periodic Hann window of ``cfg.n_fft`` samples, hop
   ``cfg.hop_length``, centred zero-padded frames, through librosa's Slaney mel filterbank of
   ``cfg.n_mels`` bands (``librosa.feature.melspectrogram``'s values;
   :mod:`genrecast.daemon.spectral`).
4. **Log compression** ``log10(10000·mel + 1)``: musicnn's (Pons & Serra, "musicnn:
   pre-trained convolutional neural networks for music audio tagging", ISMIR LBD 2019,
   https://github.com/jordipons/musicnn, ``extractor.py``), on which its weights were trained.

The result is ``cfg.input_shape``: 3 s × 16000 // ``cfg.hop_length`` frames (187 with hop
256, musicnn's input) × ``cfg.n_mels`` bands, float32.
"""

from __future__ import annotations

import numpy as np

from genrecast.daemon.feature_config import LOGMEL_RATE, FeatureConfig
from genrecast.daemon.spectral import _mel_basis, power_spectrogram

#: The RMS level every window is scaled to, dBFS (a full-scale sine is −3 dBFS).
REFERENCE_DBFS = -20.0


def level_out(window: np.ndarray) -> np.ndarray:
    """``window`` (float32 samples) scaled to an RMS of :data:`REFERENCE_DBFS` dBFS; all-zero
    audio is returned as it is."""
    w = np.asarray(window, dtype=np.float32)
    rms = float(np.sqrt(np.mean(np.square(w, dtype=np.float64)))) if len(w) else 0.0
    if not rms > 1e-9:
        return w
    return w * np.float32(10.0 ** (REFERENCE_DBFS / 20.0) / rms)


def logmel_window(window: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Model input for one ``logmel``-kind window: ``cfg.input_shape`` = (frames, n_mels), float32.

    A window shorter than ``cfg.window_samples`` is zero-padded (its real audio sets the level);
    a longer one is cut, so the shape always matches the model."""
    import soxr

    w = np.asarray(window, dtype=np.float32)[: cfg.window_samples]
    if cfg.sample_rate != LOGMEL_RATE:
        w = soxr.resample(w, cfg.sample_rate, LOGMEL_RATE, quality="HQ").astype(np.float32)
    n = int(round(cfg.window_seconds * LOGMEL_RATE))
    w = level_out(w[:n])
    if len(w) < n:
        w = np.pad(w, (0, n - len(w)))
    mel = _mel_basis(LOGMEL_RATE, cfg.n_fft, cfg.n_mels) @ power_spectrogram(w, cfg)
    frames = cfg.input_shape[0]
    return np.log10(np.float32(10000.0) * mel[:, :frames].T + np.float32(1.0)).astype(np.float32)
