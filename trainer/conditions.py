"""Capture conditions as data: named, seeded transforms of mono audio.

Each :class:`Condition` maps ``(audio, sample_rate, rng)`` to audio of the same rate
(and about the same length). The same names serve training (random draws, see
:func:`random_condition`) and evaluation (fixed settings, :data:`EVALUATION`), so a
figure "under room" always means the same thing. Randomness comes only from the
``numpy.random.Generator`` passed in: a seed fixes the result (ffmpeg is run
single-threaded, so its encoders are deterministic too).

Libraries do the signal work: ffmpeg (codecs, file formats), soxr (resampling, the
daemon's resampler), pyroomacoustics (room impulse responses, Allen & Berkley's image
method; ``pip install 'genrecast[train]'``), scipy (filters, convolution).

Format conditions (:func:`capture`: sample rate, stereo, codec) write a real file with
ffmpeg and read it back through the daemon's own decoder
(:func:`genrecast.daemon.audio.load_audio`: libsndfile or ffmpeg, the mean of the
channels, soxr to the bundle's rate), so they measure what ``genrecast classify`` and
``genrecast run`` see of such a file. Noise conditions take their sounds from a folder
laid out as ``../shared/data`` (:func:`noise_data_root`): speech for babble, recorded
environment sounds.

Levels: gains in dB of amplitude (20·log10); SNR in dB is 20·log10 of the RMS of the
audio over the RMS of the added noise, both over the whole clip.

The list is meant to grow: add a function and a line in :data:`SUITE`. The first nine
(:data:`EVALUATION`, the music detector's evaluation set) and :func:`random_condition`
(its augmentation) keep their settings and samples; new kinds go into :func:`random_capture`.
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

#: ffmpeg, quiet, single-threaded and bit-exact (the same input gives the same bytes).
FFMPEG = ("ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-threads", "1")
BITEXACT = ("-fflags", "+bitexact", "-flags:a", "+bitexact")

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
    base = list(FFMPEG)
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
        y = speaker(y, sample_rate, rng, band)
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
    """Add ``colour`` noise (white, pink or brown, :func:`coloured_noise`) at ``snr_db`` (:func:`add_at_snr`)."""
    return add_at_snr(y, coloured_noise(len(y), colour, rng), snr_db)


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


def speaker(y: np.ndarray, sample_rate: int, rng: np.random.Generator, band: tuple[float, float] = (200.0, 7000.0)) -> np.ndarray:
    """A small speaker's pass band: a 4th-order Butterworth band-pass (scipy) over ``band`` Hz,
    its top capped at 0.45 × ``sample_rate``."""
    import scipy.signal

    sos = scipy.signal.butter(4, [band[0], min(band[1], 0.45 * sample_rate)], btype="bandpass", fs=sample_rate, output="sos")
    return scipy.signal.sosfilt(sos, y).astype(np.float32)


def pan_gains(pan: float) -> tuple[float, float]:
    """Left and right gains of the constant-power pan law (sine/cosine law): ``pan`` −1 is
    hard left, 0 the centre (each channel at cos(π/4) = −3.01 dB), +1 hard right; the
    two gains' squares always sum to 1. Raises ValueError outside −1..1."""
    if not -1.0 <= pan <= 1.0:
        raise ValueError(f"pan {pan} is outside -1 (left) .. +1 (right)")
    theta = (pan + 1.0) * np.pi / 4
    return float(np.cos(theta)), float(np.sin(theta))


#: The codecs :func:`capture` writes: ffmpeg encoder and file suffix.
CODECS: dict[str, tuple[str, str]] = {
    "pcm": ("pcm_s16le", ".wav"),  # a 16-bit WAV, as `ffmpeg -ac 2 out.wav` writes it
    "mp3": ("libmp3lame", ".mp3"),
    "aac": ("aac", ".m4a"),  # ffmpeg's native AAC encoder
    "opus": ("libopus", ".opus"),  # Ogg Opus; libopus codes at 48 kHz (ffmpeg resamples)
    "mulaw": ("pcm_mulaw", ".wav"),  # G.711 µ-law, the telephone's 8-bit companding
}


#: The sample rates libopus codes at (Hz).
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


def capture(y: np.ndarray, sample_rate: int, rng: np.random.Generator, *, rate: int | None = None, channels: int = 1,
            pan: float = 0.0, codec: str = "pcm", kbps: int | None = None) -> np.ndarray:
    """The audio as a file in another format, read back the way the daemon reads files.

    ffmpeg writes the file: resampled to ``rate`` Hz (ffmpeg's resampler, as
    ``ffmpeg -ar RATE`` makes such a file; default: ``sample_rate``; Opus at a rate it does not
    code at: 48 kHz), ``channels`` 1 or 2
    (2: the mono audio placed at ``pan`` with :func:`pan_gains`, the constant-power
    −3 dB law), coded with ``codec`` (a key of :data:`CODECS`) at ``kbps`` kbit/s (lossy
    codecs). :func:`genrecast.daemon.audio.load_audio` reads it back: the mean of the
    channels, soxr to ``sample_rate``. So a centred stereo file comes back 3.01 dB
    quieter, as it does in ``genrecast classify``. Returns float32 mono, ``len(y)``
    samples (a codec's delay and padding cut). Raises ValueError for an unknown codec,
    subprocess.CalledProcessError if ffmpeg fails.
    """
    from genrecast.daemon.audio import load_audio

    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; choose one of {', '.join(CODECS)}")
    if channels not in (1, 2):
        raise ValueError(f"channels must be 1 or 2 (got {channels})")
    encoder, suffix = CODECS[codec]
    rate = rate or sample_rate
    if codec == "opus" and rate not in OPUS_RATES:
        rate = 48000  # what an Opus encoder does with other rates: resample to 48 kHz
    y = np.ascontiguousarray(y, dtype=np.float32)
    frames = y if channels == 1 else np.stack([y * np.float32(g) for g in pan_gains(pan)], axis=1)
    args = ["-c:a", encoder, *(["-b:a", f"{kbps}k"] if kbps else []), "-ar", str(rate), "-ac", str(channels)]
    with tempfile.TemporaryDirectory(prefix="genrecast-capture-") as tmp:
        path = Path(tmp) / f"capture{suffix}"
        subprocess.run([*FFMPEG, "-f", "f32le", "-ac", str(channels), "-ar", str(sample_rate), "-i", "pipe:0",
                        *args, *BITEXACT, "-map_metadata", "-1", str(path)],
                       input=np.ascontiguousarray(frames).tobytes(), capture_output=True, check=True)
        out = load_audio(path, sample_rate)
    return _same_length(out, len(y))


def add_at_snr(y: np.ndarray, n: np.ndarray, snr_db: float) -> np.ndarray:
    """``y`` plus the noise ``n`` (same length) scaled so that 20·log10(RMS(y) / RMS(scaled n))
    = ``snr_db``, RMS over the whole clip. Silent ``y`` gets (almost) no noise."""
    rms_y = np.sqrt(np.mean(np.square(y, dtype=np.float64))) + 1e-12
    rms_n = np.sqrt(np.mean(np.square(n, dtype=np.float64))) + 1e-12
    return (y + n * (rms_y / rms_n / 10 ** (snr_db / 20))).astype(np.float32)


def noise_data_root() -> Path:
    """The folder laid out as ``../shared/data`` that babble and environment noise come
    from: ``$GENRECAST_TEST_DATA``, else ``../shared/data`` beside the project."""
    return Path(os.environ.get("GENRECAST_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


#: Environment recordings that are synthetic tones, not recorded sounds (left out).
SYNTHETIC_SOUNDS = ("chirp", "sine", "sawtooth", "multisines")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".au")


@functools.lru_cache(maxsize=8)
def recordings(folders: tuple[str, ...], sample_rate: int, root: str, exclude: tuple[str, ...] = ()) -> tuple[np.ndarray, ...]:
    """Every recording in ``root``/``folder`` for the ``folders``, decoded at ``sample_rate``
    (sorted by path; synthetic tones and the files whose resolved paths are in ``exclude``
    left out; cached). Raises ValueError when a folder is missing or holds no audio."""
    from genrecast.daemon.audio import load_audio

    left_out = set(exclude)
    paths: list[Path] = []
    for folder in folders:
        where = Path(root) / folder
        found = sorted(p for p in where.glob("*") if p.suffix.lower() in AUDIO_SUFFIXES
                       and not any(t in p.stem.lower() for t in SYNTHETIC_SOUNDS)
                       and str(p.resolve()) not in left_out) if where.is_dir() else []
        if not found:
            raise ValueError(f"no recordings in {where} for the noise conditions; "
                             "set GENRECAST_TEST_DATA to a folder laid out as ../shared/data")
        paths += found
    return tuple(load_audio(p, sample_rate) for p in paths)


def _loop(sound: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of ``sound`` from a random start, looped as needed."""
    start = int(rng.integers(len(sound)))
    return np.resize(np.roll(sound, -start), n)


def babble(y: np.ndarray, sample_rate: int, rng: np.random.Generator, snr_db: float, talkers: int = 6,
           folders: tuple[str, ...] = ("speech", "music-speech/speech"), exclude: tuple[str, ...] = ()) -> np.ndarray:
    """Babble at ``snr_db``: ``talkers`` voices talking at once, each a chain of random speech
    recordings (from random starts) at the same RMS level, from ``folders`` under
    :func:`noise_data_root`, never one of ``exclude`` (resolved paths: another model's held-out files)."""
    pool = recordings(tuple(folders), sample_rate, str(noise_data_root()), tuple(exclude))
    crowd = np.zeros(len(y), dtype=np.float64)
    for _ in range(talkers):
        voice: list[np.ndarray] = []
        while sum(map(len, voice)) < len(y):
            voice.append(pool[int(rng.integers(len(pool)))])
        talk = _loop(np.concatenate(voice), len(y), rng).astype(np.float64)
        crowd += talk / (np.sqrt(np.mean(talk**2)) + 1e-12)
    return add_at_snr(y, crowd, snr_db)


def environment(y: np.ndarray, sample_rate: int, rng: np.random.Generator, snr_db: float,
                folder: str = "environment", exclude: tuple[str, ...] = ()) -> np.ndarray:
    """One recorded environment sound (rain, traffic, a cafe, ...; chosen by ``rng`` from
    ``folder`` under :func:`noise_data_root`, never one of ``exclude``, looped from a random
    start) at ``snr_db``."""
    pool = recordings((folder,), sample_rate, str(noise_data_root()), tuple(exclude))
    return add_at_snr(y, _loop(pool[int(rng.integers(len(pool)))], len(y), rng), snr_db)


def condition_rng(seed: int, *names: str) -> np.random.Generator:
    """The generator of one (condition, clip, ...) pair: seeded from ``seed`` and CRC-32s of
    the names, so a clip's audio under a condition does not depend on what else is run."""
    return np.random.default_rng([seed, *(zlib.crc32(n.encode("utf-8", "surrogateescape")) for n in names)])  # a Latin-1 name too


def _same_length(y: np.ndarray, n: int) -> np.ndarray:
    """A codec's output cut or zero-padded to ``n`` samples (encoders add a little delay and padding)."""
    return y[:n] if len(y) >= n else np.pad(y, (0, n - len(y)))


def _identity(y: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    return y


CLEAN = Condition("clean", _identity)

#: The music detector's evaluation set (its trainer and report use it; kept as it is).
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

#: Every named condition: the detector's nine, then the capture conditions of the
#: robustness issue (gain, stereo, sample rate, codecs, telephone, speaker, noise).
SUITE: tuple[Condition, ...] = EVALUATION + (
    Condition("gain-3dB", gain, {"db": -3.0}),
    Condition("gain+3dB", gain, {"db": 3.0}),
    Condition("stereo", capture, {"channels": 2, "pan": 0.0}),  # a 16-bit stereo WAV, centred, -3 dB law
    Condition("rate-22.05k", capture, {"rate": 22050}),  # 16-bit WAV files at these rates
    Condition("rate-44.1k", capture, {"rate": 44100}),
    Condition("rate-48k", capture, {"rate": 48000}),
    Condition("wideband-16k", capture, {"rate": 16000}),  # speech-grade capture
    Condition("rate-8k", capture, {"rate": 8000}),
    Condition("telephone-8k", chain, {"steps": (
        Condition("telephone-band", speaker, {"band": (300.0, 3400.0)}),
        Condition("mulaw-8k", capture, {"rate": 8000, "codec": "mulaw"}),
    )}),
    Condition("mp3-128k-stereo-44.1k", capture, {"rate": 44100, "channels": 2, "codec": "mp3", "kbps": 128}),
    Condition("aac-96k-stereo-44.1k", capture, {"rate": 44100, "channels": 2, "codec": "aac", "kbps": 96}),
    Condition("opus-32k", capture, {"codec": "opus", "kbps": 32}),
    Condition("speaker", speaker, {"band": (200.0, 7000.0)}),
    Condition("pink-noise-15dB", noise, {"snr_db": 15.0, "colour": "pink"}),
    Condition("babble-10dB", babble, {"snr_db": 10.0}),
    Condition("environment-10dB", environment, {"snr_db": 10.0}),
)

BY_NAME = {c.name: c for c in SUITE}

#: The conditions of the robustness issue's target table, in its order.
TARGETS: tuple[str, ...] = (
    "clean", "gain-24dB", "gain-3dB", "gain+3dB", "gain+6dB", "stereo", "rate-22.05k", "rate-44.1k", "rate-48k",
    "mp3-128k-stereo-44.1k", "aac-96k-stereo-44.1k", "mp3-48k", "wideband-16k", "speaker-room", "speaker-room-noise15dB",
)

#: The few conditions every trained bundle's report carries by default (cheap: one of each kind).
QUICK: tuple[str, ...] = ("clean", "gain-24dB", "stereo", "mp3-128k-stereo-44.1k", "speaker-room-noise15dB")


def named(names: str | list[str] | tuple[str, ...]) -> list[Condition]:
    """The conditions called ``names``: a list, or a comma-separated string; ``all`` is
    :data:`SUITE`, ``targets`` :data:`TARGETS`, ``quick`` :data:`QUICK`. ``clean`` is
    always first (differences are counted against it). Raises ValueError naming unknown names."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    groups = {"all": [c.name for c in SUITE], "targets": list(TARGETS), "quick": list(QUICK)}
    wanted: list[str] = ["clean"]
    for name in names:
        for n in groups.get(name, [name]):
            if n not in wanted:
                wanted.append(n)
    unknown = [n for n in wanted if n not in BY_NAME]
    if unknown:
        raise ValueError(f"unknown condition(s) {', '.join(unknown)}; choose from all, targets, quick or "
                         f"{', '.join(BY_NAME)}")
    return [BY_NAME[n] for n in wanted]


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


def random_capture(rng: np.random.Generator, exclude: tuple[str, ...] = ()) -> Condition:
    """One genre-training augmentation over every kind of :data:`SUITE`, drawn from ``rng``:
    :func:`random_condition`'s steps, each with some chance a capture format first (stereo
    with a random pan, 8/16/44.1/48 kHz, MP3/AAC/Opus at 32-192 kbit/s), and babble or an
    environment sound at 5-30 dB SNR in place of coloured noise, never made from the
    recordings in ``exclude`` (resolved paths: the music detector's held-out speech and
    environment files, which must not reach its training windows even as background)."""
    base = list(random_condition(rng).kwargs["steps"])
    if rng.random() < 0.5:
        fmt: dict[str, Any] = {"rate": int(rng.choice([8000, 16000, 22050, 44100, 48000]))}
        if rng.random() < 0.5:
            fmt.update(channels=2, pan=float(rng.uniform(-0.5, 0.5)))
        if rng.random() < 0.6:
            fmt["codec"] = str(rng.choice(["mp3", "aac", "opus"]))
            fmt["kbps"] = int(rng.choice([32, 48, 64, 96, 128, 192]))
        base.insert(0, Condition("capture", capture, fmt))
    if rng.random() < 0.3:
        kind = babble if rng.random() < 0.5 else environment
        base = [s for s in base if s.name != "noise"]
        kwargs: dict[str, Any] = {"snr_db": float(rng.uniform(5, 30))}
        if exclude:
            kwargs["exclude"] = tuple(exclude)
        base.insert(len(base) - 1, Condition(kind.__name__, kind, kwargs))
    return Condition("+".join(s.name for s in base), chain, {"steps": tuple(base)})


def _drawn(y: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A :func:`random_capture` drawn from ``rng``, applied with the same ``rng``."""
    return random_capture(rng).apply(y, sample_rate, rng)


def random_draws(k: int) -> list[Condition]:
    """``k`` conditions ``random-0`` .. ``random-{k-1}``, each a :func:`random_capture` drawn
    afresh from the generator it is applied with (so every clip gets its own draw when
    seeded per clip with :func:`condition_rng`): accuracy under many random conditions."""
    return [Condition(f"random-{i}", _drawn) for i in range(k)]
