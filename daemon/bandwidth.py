"""Effective audio bandwidth of a source, to tell band-limited audio (telephone, wideband speech
capture, a low-bit-rate codec) from the full-band audio the model was trained on.

Resampling a source up from a lower rate (8 kHz telephone audio, 16 kHz "wideband") leaves
nothing above the old Nyquist frequency: its long-term spectrum falls off a cliff there, 100 dB
or more below the mid band. Music recorded at full band rolls off gently instead. Measured with
this estimator over 3-s windows of the 110 full-band music files in ``../shared/data`` (the 69
full GTZAN clips, music-speech's music, bensound, mirdata, musicnn's 22-kHz MP3): never below
9.69 kHz; the same files through ``ffmpeg -ar 16000``: 7.71-7.92 kHz; through ``-ar 8000``:
3.92-4.09 kHz; musicnn's 16-kHz MP3: 7.71-7.84 kHz.

The estimate (:class:`BandwidthMonitor`):

1. each window's mean power spectrum (Hann-windowed ``FRAME``-sample frames, every other one),
   divided by its own mid-band power (median over :data:`MID_BAND_HZ`), so that a quiet window
   counts as much as a loud one;
2. the linear mean of these over the last :data:`HISTORY_WINDOWS` windows: a bright window
   lifts the high band of the mean, so a dark passage (a solo bass, a quiet string section)
   between bright ones does not make the source look band-limited, while audio that was
   resampled has no energy up there in any window;
3. the bandwidth: the highest frequency where that mean is within :data:`DROP_DB` of the mid
   band (the -60 dB bandwidth of the long-term average spectrum, relative to the mid band).

A source is *band-limited* when its bandwidth is below :data:`LIMIT_FRACTION` of the model's
Nyquist frequency, judged once :data:`MIN_WINDOWS` audible windows were heard.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

FRAME = 512
"""Samples per FFT frame of the estimate (43 Hz bins at 22050 Hz)."""
MID_BAND_HZ = (300.0, 3000.0)
"""The reference band (Hz): inside even a telephone channel (300-3400 Hz, ITU-T G.712)."""
DROP_DB = 60.0
"""How far below the mid band the long-term spectrum must fall to end the band (dB)."""
HISTORY_WINDOWS = 10
"""Windows whose spectra are averaged (30 s at 3-s windows)."""
MIN_WINDOWS = 5
"""Audible windows heard before a source is judged (15 s at 3-s windows: a dark intro alone
does not judge it)."""
LIMIT_FRACTION = 0.8
"""A bandwidth below this fraction of the model's Nyquist frequency is band-limited
(8820 Hz at 22050 Hz: below every full-band GTZAN clip measured, above 16-kHz audio's 8 kHz)."""


@lru_cache(maxsize=None)
def _hann(frame: int) -> np.ndarray:
    return np.hanning(frame).astype(np.float32)


@lru_cache(maxsize=8)
def _mid_band(sample_rate: int) -> np.ndarray:
    freqs = np.fft.rfftfreq(FRAME, 1.0 / sample_rate)
    return (freqs >= MID_BAND_HZ[0]) & (freqs <= MID_BAND_HZ[1])


def window_spectrum(samples: np.ndarray, sample_rate: int) -> np.ndarray | None:
    """Mean power spectrum of ``samples`` (mono float audio at ``sample_rate`` Hz) over every
    other ``FRAME``-sample frame (half the audio is plenty for a long-term average, at half the
    cost: about 0.2 ms for a 3-s window at 22050 Hz), divided by its median over
    :data:`MID_BAND_HZ`: shape ``(FRAME // 2 + 1,)``, float64, unitless.
    None when ``samples`` is shorter than one frame or its mid band holds no power (digital silence)."""
    import scipy.fft

    count = len(samples) // FRAME
    if count == 0:
        return None
    frames = np.asarray(samples[: count * FRAME], dtype=np.float32).reshape(count, FRAME)[::2] * _hann(FRAME)
    spectrum = scipy.fft.rfft(frames, axis=1)
    power = np.mean(spectrum.real**2 + spectrum.imag**2, axis=0, dtype=np.float64)
    mid = float(np.median(power[_mid_band(sample_rate)]))
    if not np.isfinite(mid) or mid <= 0.0:
        return None
    return power / mid


def bandwidth_hz(spectrum: np.ndarray, sample_rate: int, drop_db: float = DROP_DB) -> float:
    """The highest frequency (Hz) where ``spectrum`` (relative to its mid band, as made by
    :func:`window_spectrum`) is within ``drop_db`` dB of the mid band; 0 if nowhere."""
    freqs = np.fft.rfftfreq(2 * (len(spectrum) - 1), 1.0 / sample_rate)
    inside = np.nonzero(spectrum >= 10.0 ** (-drop_db / 10.0))[0]
    return float(freqs[inside[-1]]) if len(inside) else 0.0


@dataclass(frozen=True)
class BandwidthState:
    """One source's bandwidth after a window."""

    bandwidth_hz: float | None
    """Estimated effective bandwidth (Hz); None before :data:`MIN_WINDOWS` audible windows."""
    band_limited: bool | None
    """``bandwidth_hz`` is below :data:`LIMIT_FRACTION` of the model's Nyquist frequency; None when unknown."""
    newly_limited: bool = False
    """This window made the source band-limited for the first time (log it once)."""


class BandwidthMonitor:
    """The running bandwidth estimate of one source (see the module docstring).

    ``sample_rate`` is the model's rate (Hz): every window is at this rate, and the band the model
    was trained on reaches its Nyquist frequency."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.limit_hz = LIMIT_FRACTION * sample_rate / 2.0
        self._spectra: deque[np.ndarray] = deque(maxlen=HISTORY_WINDOWS)
        self._heard = 0
        self.reported = False
        self.state = BandwidthState(None, None)

    def update(self, samples: np.ndarray | None) -> BandwidthState:
        """Take one audible window (``None`` for a silent or invalid one, which leaves the
        estimate as it was) and return the source's state after it."""
        spectrum = window_spectrum(samples, self.sample_rate) if samples is not None else None
        if spectrum is None:
            self.state = BandwidthState(self.state.bandwidth_hz, self.state.band_limited)
            return self.state
        self._spectra.append(spectrum)
        self._heard += 1
        if self._heard < MIN_WINDOWS:
            return self.state
        width = round(bandwidth_hz(np.mean(self._spectra, axis=0), self.sample_rate), 0)
        limited = width < self.limit_hz
        newly = limited and not self.reported
        self.reported = self.reported or limited
        self.state = BandwidthState(width, limited, newly)
        return self.state
