"""The spectral building blocks of every feature: Hann window, STFT power, mel and chroma
filterbanks, DCT, and the MFCC window path (``librosa.feature.mfcc``'s values, parity tested).
"""

from __future__ import annotations

import functools
import threading

import numpy as np


from genrecast.daemon.feature_config import FeatureConfig

# --------------------------------------------------------------------------- #
# Precomputed building blocks (one set per config, cached)


# These reproduce scipy's and librosa's constructions (same formulas, same order of
# operations; equality is tested) so that the daemon imports neither scipy.signal nor
# librosa: together they cost ~0.9 s and ~110 MB of RSS in a fresh process.


@functools.lru_cache(maxsize=16)
def _hann(n_fft: int) -> np.ndarray:
    """Periodic Hann window, as ``scipy.signal.get_window("hann", n_fft, fftbins=True)``."""
    fac = np.linspace(-np.pi, np.pi, n_fft + 1)[:-1]
    return 0.5 + 0.5 * np.cos(fac)


@functools.lru_cache(maxsize=16)
def _hann32(n_fft: int) -> np.ndarray:
    return _hann(n_fft).astype(np.float32)


def _hz_to_mel(frequencies: np.ndarray) -> np.ndarray:
    """Slaney mel scale (librosa's default, ``htk=False``)."""
    f_sp = 200.0 / 3
    mels = frequencies / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    log_t = frequencies >= min_log_hz
    mels[log_t] = min_log_mel + np.log(frequencies[log_t] / min_log_hz) / logstep
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    f_sp = 200.0 / 3
    freqs = f_sp * mels
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    log_t = mels >= min_log_mel
    freqs[log_t] = min_log_hz * np.exp(logstep * (mels[log_t] - min_log_mel))
    return freqs


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """``librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)`` (Slaney scale and norm, float32)."""
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    edges = _hz_to_mel(np.array([0.0, float(sample_rate) / 2]))
    mel_f = _mel_to_hz(np.linspace(edges[0], edges[1], n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((n_mels, 1 + n_fft // 2), dtype=np.float32)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, np.newaxis]
    return weights


def chroma_filterbank(sample_rate: int, n_fft: int, n_chroma: int = 12, tuning: float = 0.0) -> np.ndarray:
    """``librosa.filters.chroma(sr=sample_rate, n_fft=n_fft, tuning=tuning)`` (ctroct 5, octwidth 2,
    L2-normalised columns, base C), float32. ``tuning``: the reference's offset from A440 in
    fractions of a chroma bin."""
    frequencies = np.linspace(0, sample_rate, n_fft, endpoint=False)[1:]
    frqbins = n_chroma * np.log2(frequencies / (float(440.0 * 2.0 ** (tuning / n_chroma)) / 16))
    frqbins = np.concatenate(([frqbins[0] - 1.5 * n_chroma], frqbins))
    binwidthbins = np.concatenate((np.maximum(frqbins[1:] - frqbins[:-1], 1.0), [1]))
    d = np.subtract.outer(frqbins, np.arange(0, n_chroma, dtype="d")).T
    n_chroma2 = np.round(float(n_chroma) / 2)
    d = np.remainder(d + n_chroma2 + 10 * n_chroma, n_chroma) - n_chroma2
    wts = np.exp(-0.5 * (2 * d / np.tile(binwidthbins, (n_chroma, 1))) ** 2)
    length = np.sum(np.abs(wts) ** 2, axis=0, keepdims=True) ** (1.0 / 2)  # librosa.util.normalize(norm=2, axis=0)
    length[length < np.finfo(wts.dtype).tiny] = 1.0
    wts = wts / length
    wts *= np.tile(np.exp(-0.5 * (((frqbins / n_chroma - 5.0) / 2) ** 2)), (n_chroma, 1))
    wts = np.roll(wts, -3 * (n_chroma // 12), axis=0)
    return np.ascontiguousarray(wts[:, : int(1 + n_fft / 2)], dtype=np.float32)


@functools.lru_cache(maxsize=16)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int):
    """librosa's mel filterbank as a sparse matrix (each filter spans a few bins)."""
    import scipy.sparse

    return scipy.sparse.csr_matrix(mel_filterbank(sample_rate, n_fft, n_mels))


@functools.lru_cache(maxsize=16)
def _dct_matrix(n_mels: int, n_mfcc: int) -> np.ndarray:
    import scipy.fft

    return scipy.fft.dct(np.eye(n_mels), type=2, norm="ortho", axis=0)[:n_mfcc]


@functools.lru_cache(maxsize=16)
def _dct_matrix32(n_mels: int, n_mfcc: int) -> np.ndarray:
    return _dct_matrix(n_mels, n_mfcc).astype(np.float32)


@functools.lru_cache(maxsize=128)  # a tuning is one of 100 steps
def _chroma_basis(sample_rate: int, n_fft: int, tuning: float = 0.0) -> np.ndarray:
    """librosa's chroma filterbank, transposed for ``frames x bins`` spectra: bins x 12."""
    return np.ascontiguousarray(chroma_filterbank(sample_rate, n_fft, tuning=tuning).T)


@functools.lru_cache(maxsize=16)
def _fft_freqs(sample_rate: int, n_fft: int) -> np.ndarray:
    return np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)


def _frames(y: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Centred frames (librosa's ``center=True``, zero padding) as a view: frames x n_fft."""
    padded = np.zeros(len(y) + 2 * (n_fft // 2), dtype=y.dtype)  # as np.pad, without its overhead
    padded[n_fft // 2 : n_fft // 2 + len(y)] = y
    return np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]


_scratch = threading.local()


#: Buffer shapes kept per thread: a source's window alternates between the genre path's frames
#: and the music detector's (another hop, so another shape), and each must keep its own buffer.
_SCRATCH_SHAPES = 4
#: Larger buffers (a whole clip's frames) are not kept: each clip length would hold its own.
_SCRATCH_MAX_BYTES = 4 << 20


def _windowed(frames: np.ndarray) -> np.ndarray:
    """``frames`` times the Hann window, in a per-thread buffer reused for each shape seen lately
    (up to :data:`_SCRATCH_MAX_BYTES`): a fresh 1-MB array every window costs more in page faults
    than the FFT itself."""
    buffers = getattr(_scratch, "windowed", None)
    if buffers is None:
        buffers = _scratch.windowed = {}
    buffer = buffers.pop(frames.shape, None)
    if buffer is None:
        buffer = np.empty(frames.shape, dtype=np.float32)
        while len(buffers) >= _SCRATCH_SHAPES:  # forget the least recently used shape
            buffers.pop(next(iter(buffers)))
    if buffer.nbytes <= _SCRATCH_MAX_BYTES:
        buffers[frames.shape] = buffer  # most recently used last
    return np.multiply(frames, _hann32(frames.shape[1]), out=buffer)


def power_spectrogram(y: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """|STFT|^2 as frequencies x frames (float32, as librosa's), centred frames, zero padding."""
    import scipy.fft

    spec = scipy.fft.rfft(_windowed(_frames(np.asarray(y, dtype=np.float32), cfg.n_fft, cfg.hop_length)), axis=1)
    power = np.square(spec.real)  # re² + im² with one temporary fewer than spec.real**2 + spec.imag**2
    power += np.square(spec.imag)
    return power.T


def _mfcc_from_power(power: np.ndarray, cfg: FeatureConfig, n_mfcc: int) -> np.ndarray:
    mel = _mel_basis(cfg.sample_rate, cfg.n_fft, cfg.n_mels) @ power
    db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    db = np.maximum(db, db.max() - 80.0)
    return _dct_matrix32(cfg.n_mels, n_mfcc) @ db  # n_mfcc x frames


def mfcc(y: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """MFCCs of ``y`` as n_mfcc x frames, equal to ``librosa.feature.mfcc`` for ``cfg`` (to 1e-3)."""
    return _mfcc_from_power(power_spectrogram(y, cfg), cfg, cfg.n_mfcc)


def window_features(window: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Model input for one window of a window-kind bundle: for ``mfcc``, frames x n_mfcc,
    float32; for ``logmel``, :func:`genrecast.daemon.logmel.logmel_window`.

    A window shorter than ``cfg.window_samples`` is zero-padded; a longer one
    is cut, so the shape always matches the model.
    """
    if cfg.kind == "logmel":
        from genrecast.daemon.logmel import logmel_window

        return logmel_window(window, cfg)
    n = cfg.window_samples
    w = np.asarray(window, dtype=np.float32)
    if len(w) < n:
        w = np.pad(w, (0, n - len(w)))
    return mfcc(w[:n], cfg).T.astype(np.float32)


# --------------------------------------------------------------------------- #
# Summary (feature-table) statistics
