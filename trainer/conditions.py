"""Capture conditions as data: named, seeded transforms of mono audio.

Each :class:`Condition` maps ``(audio, sample_rate, rng)`` to audio of the same rate
(and about the same length). The same names serve training (random draws, see
:func:`random_condition`) and evaluation (fixed settings, :data:`EVALUATION`), so a
figure "under room" always means the same thing. Randomness comes only from the
``numpy.random.Generator`` passed in: a seed fixes the result (ffmpeg is run
single-threaded, so its encoders are deterministic too).

Libraries do the signal work: ffmpeg (codecs), pyroomacoustics (room impulse
responses, Allen & Berkley's image method; ``pip install 'genrecast[train]'``),
scipy (filters, convolution).

The list is meant to grow (the robustness issue adds stereo, sample rates, Opus,
babble noise, ...): add a function and a line in :data:`EVALUATION`.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

Transform = Callable[..., np.ndarray]


@dataclass(frozen=True)
class Condition:
    """A named transform with fixed keyword arguments."""

    name: str
    transform: Transform
    kwargs: dict[str, Any] = field(default_factory=dict)

    def apply(self, y: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
        """The audio under this condition: float32 mono at ``sample_rate``."""
        return np.asarray(self.transform(np.asarray(y, dtype=np.float32), sample_rate, rng, **self.kwargs), dtype=np.float32)


def gain(y: np.ndarray, sample_rate: int, rng: np.random.Generator, db: float) -> np.ndarray:
    """Multiply by ``db`` decibels, clipping at full scale (as a sound card would)."""
    return np.clip(y * np.float32(10 ** (db / 20)), -1.0, 1.0)


def codec(y: np.ndarray, sample_rate: int, rng: np.random.Generator, codec: str, kbps: int) -> np.ndarray:
    """Encode with ffmpeg (``mp3``: libmp3lame, ``aac``: ffmpeg's AAC encoder) and decode back."""
    encoders = {"mp3": ("libmp3lame", "mp3", "mp3"), "aac": ("aac", "adts", "aac")}  # encoder, muxer, demuxer
    encoder, fmt, demuxer = encoders[codec]
    base = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-threads", "1"]
    raw = ["-f", "f32le", "-ac", "1", "-ar", str(sample_rate)]
    encoded = subprocess.run([*base, *raw, "-i", "pipe:0", "-c:a", encoder, "-b:a", f"{kbps}k", "-f", fmt, "pipe:1"],
                             input=np.ascontiguousarray(y, dtype=np.float32).tobytes(), capture_output=True, check=True).stdout
    decoded = subprocess.run([*base, "-f", demuxer, "-i", "pipe:0", *raw, "pipe:1"],
                             input=encoded, capture_output=True, check=True).stdout
    out = np.frombuffer(decoded, dtype=np.float32)
    return _same_length(out, len(y))


def room(y: np.ndarray, sample_rate: int, rng: np.random.Generator, rt60: tuple[float, float] = (0.2, 0.8),
         band: tuple[float, float] | None = None) -> np.ndarray:
    """A seeded shoebox room (pyroomacoustics image method, ``rt60`` seconds drawn from the range),
    source and microphone at random places; ``band``: a small speaker's pass band in Hz first."""
    import pyroomacoustics as pra
    import scipy.signal

    if band is not None:
        sos = scipy.signal.butter(4, [band[0], min(band[1], 0.45 * sample_rate)], btype="bandpass", fs=sample_rate, output="sos")
        y = scipy.signal.sosfilt(sos, y).astype(np.float32)
    dims = np.array([rng.uniform(3, 8), rng.uniform(3, 6), rng.uniform(2.4, 3.2)])
    target = rng.uniform(*rt60)
    absorption, max_order = pra.inverse_sabine(target, dims)
    shoebox = pra.ShoeBox(dims, fs=sample_rate, materials=pra.Material(absorption), max_order=min(max_order, 12))
    margin = 0.5
    shoebox.add_source(rng.uniform(margin, dims - margin))
    shoebox.add_microphone(rng.uniform(margin, dims - margin))
    shoebox.compute_rir()
    rir = np.asarray(shoebox.rir[0][0], dtype=np.float64)
    rir /= np.max(np.abs(rir))
    wet = scipy.signal.fftconvolve(y, rir)[: len(y)]
    peak_in, peak_out = np.max(np.abs(y)) + 1e-12, np.max(np.abs(wet)) + 1e-12
    return (wet * (peak_in / peak_out)).astype(np.float32)  # the same peak level as before


def noise(y: np.ndarray, sample_rate: int, rng: np.random.Generator, snr_db: float, colour: str = "pink") -> np.ndarray:
    """Add ``colour`` noise (white, pink or brown) at ``snr_db`` dB under the audio's RMS level."""
    n = coloured_noise(len(y), colour, rng)
    rms_y = np.sqrt(np.mean(np.square(y, dtype=np.float64))) + 1e-12
    rms_n = np.sqrt(np.mean(np.square(n, dtype=np.float64))) + 1e-12
    return (y + n * (rms_y / rms_n / 10 ** (snr_db / 20))).astype(np.float32)


def coloured_noise(n: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of white, pink (1/f) or brown (1/f²) noise, unit RMS, shaped in the frequency domain."""
    exponent = {"white": 0.0, "pink": 1.0, "brown": 2.0}[colour]
    spectrum = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    f = np.arange(n // 2 + 1, dtype=np.float64)
    f[0] = 1.0
    out = np.fft.irfft(spectrum / f ** (exponent / 2), n)
    return (out / (np.sqrt(np.mean(out**2)) + 1e-12)).astype(np.float32)


def chain(y: np.ndarray, sample_rate: int, rng: np.random.Generator, steps: tuple[Condition, ...]) -> np.ndarray:
    """Apply conditions one after another."""
    for step in steps:
        y = step.apply(y, sample_rate, rng)
    return y


def _same_length(y: np.ndarray, n: int) -> np.ndarray:
    """A codec's output cut or zero-padded to ``n`` samples (encoders add a little delay and padding)."""
    return y[:n] if len(y) >= n else np.pad(y, (0, n - len(y)))


def _identity(y: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    return y


CLEAN = Condition("clean", _identity)

#: The fixed conditions every evaluation reports (the robustness issue's room, codec, gain and noise).
EVALUATION: tuple[Condition, ...] = (
    CLEAN,
    Condition("gain-24dB", gain, {"db": -24.0}),
    Condition("gain+6dB", gain, {"db": 6.0}),
    Condition("mp3-128k", codec, {"codec": "mp3", "kbps": 128}),
    Condition("mp3-48k", codec, {"codec": "mp3", "kbps": 48}),
    Condition("aac-96k", codec, {"codec": "aac", "kbps": 96}),
    Condition("room", room, {"rt60": (0.3, 0.6)}),
    Condition("speaker-room", room, {"rt60": (0.3, 0.6), "band": (200.0, 7000.0)}),
    Condition("speaker-room-noise15dB", chain, {"steps": (
        Condition("speaker-room", room, {"rt60": (0.3, 0.6), "band": (200.0, 7000.0)}),
        Condition("noise15dB", noise, {"snr_db": 15.0}),
    )}),
)

BY_NAME = {c.name: c for c in EVALUATION}


def random_condition(rng: np.random.Generator) -> Condition:
    """One training augmentation drawn from ``rng``: a gain (−30..+12 dB) and, each with some
    chance, a room (with or without a small speaker), a codec (MP3 32-192 kbps or AAC 64-128 kbps)
    and pink/white/brown noise at 5-30 dB SNR."""
    steps: list[Condition] = []
    if rng.random() < 0.5:
        band = (float(rng.uniform(100, 400)), float(rng.uniform(4000, 9000))) if rng.random() < 0.5 else None
        steps.append(Condition("room", room, {"rt60": (0.15, 1.0), "band": band}))
    if rng.random() < 0.4:
        if rng.random() < 0.6:
            steps.append(Condition("mp3", codec, {"codec": "mp3", "kbps": int(rng.choice([32, 48, 64, 96, 128, 192]))}))
        else:
            steps.append(Condition("aac", codec, {"codec": "aac", "kbps": int(rng.choice([64, 96, 128]))}))
    if rng.random() < 0.4:
        steps.append(Condition("noise", noise, {"snr_db": float(rng.uniform(5, 30)),
                                                "colour": str(rng.choice(["white", "pink", "brown"]))}))
    steps.append(Condition("gain", gain, {"db": float(rng.uniform(-30, 12))}))
    return Condition("+".join(s.name for s in steps), chain, {"steps": tuple(steps)})
