"""Decode whole audio files to mono float32 at a given rate (files, classify, trainer)."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: The resampler used everywhere a rate differs from the bundle's (soxr, high quality).
RESAMPLER = "soxr_hq"


class AudioDecodeError(ValueError):
    """A file could not be decoded as audio."""


def resample(y: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """Resample mono float32 audio from ``rate`` to ``target_rate`` with :data:`RESAMPLER`."""
    if rate == target_rate or len(y) == 0:
        return np.asarray(y, dtype=np.float32)
    import soxr

    return soxr.resample(np.asarray(y, dtype=np.float32), rate, target_rate, quality="HQ").astype(np.float32)


def _decode_soundfile(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return data.mean(axis=1), int(rate)


def _decode_ffmpeg(path: Path, rate: int) -> np.ndarray:
    if shutil.which("ffmpeg") is None:
        raise AudioDecodeError(f"{path}: cannot decode this format without ffmpeg; install it (apt-get install ffmpeg)")
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path),
           "-f", "f32le", "-ac", "1", "-ar", str(rate), "-"]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        reason = proc.stderr.decode(errors="replace").strip().splitlines()
        raise AudioDecodeError(f"{path}: not decodable audio ({reason[-1] if reason else 'ffmpeg failed'})")
    return np.frombuffer(proc.stdout, dtype=np.float32).copy()


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Decode ``path`` (any format soundfile or ffmpeg reads), downmix to mono and
    resample to ``sample_rate``. Raises :class:`AudioDecodeError` with a clear reason."""
    path = Path(path)
    if not path.is_file():
        raise AudioDecodeError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioDecodeError(f"{path}: the file is empty (0 bytes)")
    try:
        y, rate = _decode_soundfile(path)
        y = resample(y, rate, sample_rate)
    except (RuntimeError, OSError, ValueError, TypeError) as exc:  # formats libsndfile lacks
        log.debug("soundfile could not read %s (%s); trying ffmpeg", path, exc)
        y = _decode_ffmpeg(path, sample_rate)
    if y.size == 0:
        raise AudioDecodeError(f"{path}: decoded to no audio samples")
    return y
