"""Local audio files: the one decoder behind ``run --source file:``, ``classify``,
``evaluate`` and training, so all four see the same samples of a file.

It reads a file with libsndfile (``soundfile``) only where libsndfile's samples are
exactly ffmpeg's: uncompressed PCM or float in WAV, AIFF, AU, W64, RF64 or CAF, and
FLAC, when the header's length agrees with the file's size. Everything else (MP3, AAC,
Opus, video containers, a WAV whose recorder died before writing the header sizes)
goes through ffmpeg. libsndfile saves the ~0.2 s that starting ffprobe and ffmpeg costs
per file, which dominates training on thousands of 30-s clips.
tests/daemon/test_file_inputs.py checks the two give the same samples on every file of
``music/mirdata``.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from genrecast.daemon.sources.base import POLL_SECONDS, Deliver, SampleSplitter, SourceError, downmix, log
from genrecast.daemon.sources.ffmpeg import FFmpegChild, local_input, probe_audio

#: libsndfile subtypes (bytes a sample) whose decoded samples equal ffmpeg's.
EXACT_SUBTYPES = {"PCM_S8": 1, "PCM_U8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8}
#: Containers read with libsndfile when their subtype is one of :data:`EXACT_SUBTYPES`.
EXACT_FORMATS = {"WAV", "WAVEX", "AIFF", "AU", "W64", "RF64", "CAF", "FLAC"}
#: Most bytes an uncompressed file may hold beyond its samples (headers, tags, cover art).
_MAX_EXTRA_BYTES = 4 << 20


class FileDecodeError(SourceError):
    """A file probed as audio but could not be decoded, or it decoded to nothing."""


@dataclass(frozen=True)
class FileInfo:
    """What decoding a file needs: its own rate (Hz), channels, duration (seconds, None
    if unknown) and whether libsndfile reads it (else ffmpeg)."""

    rate: int
    channels: int
    duration_seconds: float | None
    soundfile: bool


#: Suffixes libsndfile would hand to mpg123 (never exact, see above), which prints "Note: Illegal
#: Audio-MPEG-Header" lines to fd 2 for a file that is not MPEG: ffmpeg alone judges them.
_MPEG_SUFFIXES = frozenset({".mp3", ".mp2", ".mp1", ".mpga"})


def _soundfile_info(path: Path) -> FileInfo | None:
    """:class:`FileInfo` when libsndfile reads ``path`` exactly as ffmpeg would, else None."""
    if path.suffix.lower() in _MPEG_SUFFIXES:
        return None
    try:
        import soundfile as sf

        info = sf.info(str(path))
    except Exception:  # not a format libsndfile knows (or no libsndfile): ffmpeg decides
        return None
    width = EXACT_SUBTYPES.get(info.subtype)
    if info.format not in EXACT_FORMATS or width is None or info.frames <= 0 or info.samplerate <= 0:
        return None
    if info.format != "FLAC":
        samples = info.frames * info.channels * width
        size = path.stat().st_size
        if samples > size or size - samples > _MAX_EXTRA_BYTES:  # header sizes that do not match the file
            return None
    return FileInfo(int(info.samplerate), int(info.channels), info.frames / info.samplerate, True)


def probe_file(path: Path, label: str | None = None) -> FileInfo:
    """How to decode ``path``: libsndfile where it is exact, else ffmpeg (probed with
    ffprobe). Raises :class:`SourceError` for a missing, empty or non-audio file, or one in a
    folder this user may not enter (:func:`probe_audio` says which)."""
    from genrecast.daemon.install import path_problem

    if path_problem(path) is None and path.is_file() and path.stat().st_size > 0 and (info := _soundfile_info(path)) is not None:
        return info
    rate, channels, duration = probe_audio(path, label)
    return FileInfo(rate, channels, duration, False)


class TruncatedFile(OSError):
    """The file ended before the frames its header promises (cut short, or shrinking while read)."""


#: libsndfile's log line for a WAV/AIFF data chunk that the file does not hold in full:
#: ``data : 1323588 (should be 99956)`` (declared bytes, bytes there).
_SHORT_DATA = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


def _declared_frames(f) -> int:
    """The frames the header of the open ``soundfile.SoundFile`` ``f`` declares, where libsndfile
    found fewer in the file (it then reads what is there, as if nothing were missing); else 0.
    A size of 0 or about 4 GiB is a streamed file's placeholder, not a promise."""
    match = _SHORT_DATA.search(f.extra_info or "")
    if not match:
        return 0
    declared, there = int(match.group(1)), int(match.group(2))
    if declared <= there or declared == 0 or declared >= 0xFFFFFF00 or not there:
        return 0
    return int(f.frames * declared / there)


def _soundfile_blocks(path: Path, block_frames: int, stop: threading.Event | None) -> Iterator[np.ndarray]:
    """The file's blocks as libsndfile reads them, each a fresh array of the frames really read.
    (``SoundFile.blocks`` trusts the header's frame count and yields its reused buffer even when a
    read comes back short, so a file cut while being read repeated its last block's samples.)
    Raises :class:`TruncatedFile` after the last frame there is, when the header promised more."""
    import soundfile as sf

    with sf.SoundFile(str(path)) as f:
        promised, read = max(f.frames, _declared_frames(f)), 0
        while stop is None or not stop.is_set():
            block = f.read(block_frames, dtype="float32", always_2d=True)
            if not len(block):
                break
            read += len(block)
            yield downmix(block)
        else:
            return
        if read < promised:
            raise TruncatedFile(f"the file ends after {read / f.samplerate:.1f} s, though its header promises "
                                f"{promised / f.samplerate:.1f} s (cut short, or changed while being read)")


def decode_blocks(path: Path, info: FileInfo, block_frames: int, *, label: str | None = None,
                  stop: threading.Event | None = None,
                  on_child: Callable[[int], None] | None = None) -> Iterator[np.ndarray]:
    """Mono float32 blocks of ``block_frames`` samples (the last may be shorter) of the
    file at ``path`` (probed by :func:`probe_file` into ``info``), at its own rate and
    downmixed as the mean of its channels. Memory stays at one block whatever the
    file's length.

    Raises :class:`FileDecodeError` (message starting with ``label``, default
    ``file:PATH``) when decoding fails or the file holds no samples. Ends early, without
    error, when ``stop`` is set. ``on_child`` is told the ffmpeg child's PID (if any).
    """
    label = label or f"file:{path}"
    if info.soundfile:
        produced = 0
        try:
            for block in _soundfile_blocks(path, block_frames, stop):
                produced += len(block)
                yield block
        except TruncatedFile as exc:
            raise FileDecodeError(f"{label}: {exc}") from exc
        except (RuntimeError, OSError) as exc:  # soundfile.LibsndfileError is a RuntimeError
            if not path.exists():
                raise FileDecodeError(f"{label}: no such file any more (deleted or moved while genrecast read it); "
                                      "put it back, or give the file where it is now") from exc
            raise FileDecodeError(f"{label}: could not decode it ({exc})") from exc
        if produced == 0 and (stop is None or not stop.is_set()):
            raise FileDecodeError(f"{label}: decoded to no audio samples")
        return
    rate, channels = info.rate, info.channels
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-i", local_input(path),
           "-map", "0:a:0", "-f", "f32le", "-ar", str(rate), "-"]
    child = FFmpegChild(cmd)
    if on_child is not None:
        on_child(child.pid)
    splitter = SampleSplitter(np.dtype("<f4"), channels)
    parts: list[np.ndarray] = []
    held = produced = 0
    try:
        while stop is None or not stop.is_set():
            chunk = child.read(POLL_SECONDS)
            if chunk is None:
                continue
            if chunk:
                block = splitter.feed(chunk)
                parts.append(block)
                held += len(block)
            while held >= block_frames or (not chunk and held):
                audio = np.concatenate(parts) if len(parts) > 1 else parts[0]
                out, rest = audio[:block_frames], audio[block_frames:]
                parts, held = ([rest] if len(rest) else []), len(rest)
                produced += len(out)
                yield out
            if not chunk:
                break
        else:
            return
        code = child.finish()
        if code != 0:
            raise FileDecodeError(f"{label}: ffmpeg could not decode it ({child.reason()})")
        if produced == 0:
            raise FileDecodeError(f"{label}: decoded to no audio samples")
    finally:
        child.close()


class FileSource:
    """A file decoded at its native rate by :func:`decode_blocks`; finite unless ``loop``.

    ``realtime`` paces delivery at the audio's own speed. The file is probed when the
    source is made (:class:`SourceError` for a missing, empty or non-audio file).
    ``ffmpeg_pid`` is the PID of the last ffmpeg child (None while libsndfile reads it).
    """

    def __init__(self, path: str | Path, *, name: str | None = None, realtime: bool = False,
                 loop: bool = False, block_seconds: float = 0.1) -> None:
        self.path = Path(path)
        self.name = name or f"file-{self.path.stem}"
        self.realtime, self.loop = realtime, loop
        self.finite = not loop
        self.info = probe_file(self.path)
        self.rate, self.channels, self.duration_seconds = self.info.rate, self.info.channels, self.info.duration_seconds
        self.block_frames = max(1, int(self.rate * block_seconds))
        self.restarts = 0  # for the metrics; a file never reconnects
        self.loops = 0
        self.ffmpeg_pid: int | None = None

    def run(self, deliver: Deliver, stop: threading.Event) -> None:
        while not stop.is_set():
            self._play_once(deliver, stop)
            if not self.loop:
                return
            self.loops += 1
            log.debug("%s: looping %s (pass %d)", self.name, self.path, self.loops + 1)

    def _play_once(self, deliver: Deliver, stop: threading.Event) -> None:
        delivered = 0
        started = time.monotonic()
        blocks = decode_blocks(self.path, self.info, self.block_frames, stop=stop,
                               on_child=lambda pid: setattr(self, "ffmpeg_pid", pid))
        try:
            for part in blocks:
                if self.realtime:
                    due = started + (delivered + len(part)) / self.rate
                    if stop.wait(max(0.0, due - time.monotonic())):
                        return
                deliver(part, self.rate)
                delivered += len(part)
        finally:
            blocks.close()
        if not stop.is_set():
            log.info("%s: end of %s (%.1f s of audio)", self.name, self.path, delivered / self.rate)
