"""Audio sources: microphone (PortAudio), files and URLs (ffmpeg), and raw PCM on stdin.

Every source delivers mono float32 blocks at the audio's *own* sample rate (the
windower resamples). A source never raises for device or network trouble: it logs,
waits with capped exponential backoff (the waits end at once when ``stop`` is set)
and tries again, counting ``restarts``. :class:`SourceError` is raised only for
configuration errors that are clear at once, and then by :func:`parse_source`:
a missing, empty or undecodable file (probed with ffprobe), an unknown spec, a
bad stdin format, ffmpeg not installed. A file that probes fine but fails while
decoding raises :class:`SourceError` from ``run()`` with ffmpeg's reason.
"""

from __future__ import annotations

import collections
import ctypes
import itertools
import json
import logging
import os
import queue
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, Callable, Protocol, runtime_checkable

import numpy as np

from genrecast.daemon.backoff import Backoff

log = logging.getLogger(__name__)

Deliver = Callable[[np.ndarray, int], None]

SPEC_HELP = "use mic, mic:NAME_OR_INDEX, file:PATH, - (raw PCM on stdin) or a URL such as http://host/stream"
STDIN_FORMATS = {"s16le": np.dtype("<i2"), "f32le": np.dtype("<f4")}
_READ_BYTES = 65536
_POLL_SECONDS = 0.25


class SourceError(ValueError):
    """A source is misconfigured in a way no retry can fix; the message names the fix."""


@runtime_checkable
class AudioSource(Protocol):
    """What the pipeline runs, one thread per source."""

    name: str
    finite: bool

    def run(self, deliver: Deliver, stop: threading.Event) -> None:
        """Call ``deliver(block, sample_rate)`` with mono float32 blocks until the audio
        ends (finite sources) or ``stop`` is set."""


def downmix(frames: np.ndarray) -> np.ndarray:
    """Mono float32 from ``(frames, channels)`` (mean over channels) or from 1-D audio."""
    frames = np.asarray(frames)
    if frames.ndim == 2:
        frames = frames.mean(axis=1, dtype=np.float32) if frames.shape[1] > 1 else frames[:, 0]
    return np.ascontiguousarray(frames, dtype=np.float32)


# -- ffmpeg children ------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
_prctl: Any = None
if sys.platform.startswith("linux"):
    try:
        _prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - exotic libc
        _prctl = None


def _child_setup(parent_pid: int) -> Callable[[], None]:
    """A ``preexec_fn`` that makes the kernel SIGKILL the child when its parent dies."""

    def setup() -> None:
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
            if os.getppid() != parent_pid:  # the parent died before prctl took effect
                os._exit(1)

    return setup


def _require_ffmpeg(what: str) -> None:
    for tool in ("ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            raise SourceError(f"{what} needs {tool}, which is not installed: apt-get install ffmpeg")


class _FFmpeg:
    """One ffmpeg child writing raw audio to a pipe; stderr kept (last lines) and
    optionally parsed line by line. :meth:`close` always kills and reaps it."""

    def __init__(self, args: list[str], on_line: Callable[[str], None] | None = None) -> None:
        self.on_line = on_line
        self.lines: collections.deque[str] = collections.deque(maxlen=40)
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            close_fds=True, start_new_session=False, preexec_fn=_child_setup(os.getpid()),
        )
        self._fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        self._stderr_thread = threading.Thread(target=self._read_stderr, name="ffmpeg-stderr", daemon=True)
        self._stderr_thread.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode(errors="replace").rstrip()
            if not line:
                continue
            self.lines.append(line)
            if self.on_line is not None:
                self.on_line(line)

    def read(self, timeout: float) -> bytes | None:
        """Up to 64 KiB of stdout; ``b""`` at end of output; None when nothing came within ``timeout``."""
        ready, _, _ = select.select([self._fd], [], [], timeout)
        if not ready:
            return None
        return os.read(self._fd, _READ_BYTES)

    def finish(self, timeout: float = 5.0) -> int | None:
        """Wait for the exit after end of output; returns the exit code (None if it hangs)."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._stderr_thread.join(timeout)
        return code

    def last_error(self) -> str:
        """ffmpeg's last meaningful stderr line (or a placeholder)."""
        for line in reversed(self.lines):
            if not line.startswith(("size=", "video:", "  ")):
                return line.strip()
        return "no message from ffmpeg"

    def close(self) -> None:
        """Kill (if still running) and reap the child, then close its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._stderr_thread.join(5)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


class _SampleSplitter:
    """Turns a byte stream into whole frames, carrying a partial frame to the next chunk."""

    def __init__(self, dtype: np.dtype, channels: int) -> None:
        self.dtype, self.channels = dtype, channels
        self.frame_bytes = dtype.itemsize * channels
        self.pending = b""

    def feed(self, chunk: bytes) -> np.ndarray:
        data = self.pending + chunk if self.pending else chunk
        usable = len(data) - len(data) % self.frame_bytes
        self.pending = data[usable:]
        samples = np.frombuffer(data[:usable], dtype=self.dtype).reshape(-1, self.channels)
        if self.dtype.kind == "i":
            return downmix(samples.astype(np.float32) / float(np.iinfo(self.dtype).max + 1))
        return downmix(samples) if self.channels > 1 else samples[:, 0].copy()


def probe_audio(path: Path) -> tuple[int, int]:
    """``(sample_rate, channels)`` of the first audio stream of ``path``; raises
    :class:`SourceError` when the file is missing, empty or not audio."""
    if not path.exists():
        raise SourceError(f"file:{path}: no such file; give the path of an audio file")
    if not path.is_file():
        raise SourceError(f"file:{path}: not a regular file; give the path of an audio file")
    if path.stat().st_size == 0:
        raise SourceError(f"file:{path}: the file is empty (0 bytes); give a non-empty audio file")
    _require_ffmpeg(f"file:{path}")
    cmd = ["ffprobe", "-v", "error", "-select_streams", "a:0",
           "-show_entries", "stream=sample_rate,channels", "-of", "json", str(path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired as exc:
        raise SourceError(f"file:{path}: ffprobe did not finish reading it; is it a regular audio file?") from exc
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["ffprobe failed"])[-1]
        reason = reason.removeprefix(f"{path}: ")
        raise SourceError(f"file:{path}: not an audio file ffmpeg can decode ({reason})")
    try:
        streams = json.loads(proc.stdout or "{}").get("streams") or []
        rate, channels = int(streams[0]["sample_rate"]), int(streams[0]["channels"])
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise SourceError(f"file:{path}: contains no audio stream; give an audio file") from exc
    if rate <= 0 or channels <= 0:
        raise SourceError(f"file:{path}: reports {rate} Hz and {channels} channels; not usable audio")
    return rate, channels


# -- file ---------------------------------------------------------------------------

class FileSource:
    """A file decoded by ffmpeg at its native rate; finite unless ``loop``.

    ``realtime`` paces delivery at the audio's own speed. The file is probed when the
    source is made (:class:`SourceError` for a missing, empty or non-audio file).
    """

    def __init__(self, path: str | Path, *, name: str | None = None, realtime: bool = False,
                 loop: bool = False, block_seconds: float = 0.1) -> None:
        self.path = Path(path)
        self.name = name or f"file-{self.path.stem}"
        self.realtime, self.loop = realtime, loop
        self.finite = not loop
        self.rate, self.channels = probe_audio(self.path)
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
        cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-i", str(self.path),
               "-map", "0:a:0", "-f", "f32le", "-ar", str(self.rate), "-"]
        child = _FFmpeg(cmd)
        self.ffmpeg_pid = child.pid
        splitter = _SampleSplitter(np.dtype("<f4"), self.channels)
        buffer: list[np.ndarray] = []
        buffered = delivered = 0
        started = time.monotonic()
        try:
            while not stop.is_set():
                chunk = child.read(_POLL_SECONDS)
                if chunk is None:
                    continue
                if chunk:
                    block = splitter.feed(chunk)
                    buffer.append(block)
                    buffered += len(block)
                    if buffered < self.block_frames:
                        continue
                if buffered:
                    audio = np.concatenate(buffer) if len(buffer) > 1 else buffer[0]
                    buffer, buffered = [], 0
                    for i in range(0, len(audio), self.block_frames):
                        part = audio[i : i + self.block_frames]
                        if self.realtime:
                            due = started + (delivered + len(part)) / self.rate
                            if stop.wait(max(0.0, due - time.monotonic())):
                                return
                        deliver(part, self.rate)
                        delivered += len(part)
                if not chunk:
                    break
            else:
                return
            code = child.finish()
            if code != 0:
                raise SourceError(f"file:{self.path}: ffmpeg could not decode it ({child.last_error()})")
            if delivered == 0:
                raise SourceError(f"file:{self.path}: decoded to no audio samples")
            log.info("%s: end of %s (%.1f s of audio)", self.name, self.path, delivered / self.rate)
        finally:
            child.close()


# -- reconnecting sources ------------------------------------------------------------

class _Reconnecting:
    """The retry loop of the stream and microphone sources: :meth:`run` calls
    ``_attempt(deliver, stop, first)`` until ``stop`` is set, logging why each attempt
    ended (``NAME: REASON; <_retry_verb> in X s (failure N)``) and waiting with backoff.
    ``restarts`` counts attempts after the first; :meth:`loop_alive` tells the watchdog
    that the loop is working although no audio flows (a missing device, a server down)."""

    name: str
    _retry_verb = "retrying"

    def __init__(self, backoff_initial_seconds: float, backoff_max_seconds: float) -> None:
        self.backoff = Backoff(backoff_initial_seconds, backoff_max_seconds)
        self.restarts = 0
        self.stalls = 0
        self.rate: int | None = None
        self.connected = False
        self._phase: tuple[str, float] = ("idle", time.monotonic())  # idle, attempt or waiting; since when

    @property
    def waiting_to_retry(self) -> bool:
        """Between two attempts: the last one failed and the backoff wait runs."""
        return self._phase[0] == "waiting"

    def loop_alive(self, within_seconds: float) -> bool:
        """True while waiting to retry (a wait cannot hang) or when the current attempt
        began less than ``within_seconds`` ago."""
        phase, since = self._phase
        return phase == "waiting" or (phase == "attempt" and time.monotonic() - since < within_seconds)

    def _attempt(self, deliver: Deliver, stop: threading.Event, first: bool) -> str:
        """Deliver audio until it fails or ``stop`` is set; returns why it ended."""
        raise NotImplementedError

    def run(self, deliver: Deliver, stop: threading.Event) -> None:
        self.backoff.reset()
        failures = 0
        first = True
        while not stop.is_set():
            if not first:
                self.restarts += 1
            self._phase = ("attempt", time.monotonic())
            reason = self._attempt(deliver, stop, first)
            first = False
            self.connected = False
            if stop.is_set():
                return
            failures += 1
            delay = self.backoff.next_delay()
            log.warning("%s: %s; %s in %.1f s (failure %d)", self.name, reason, self._retry_verb, delay, failures)
            self._phase = ("waiting", time.monotonic())
            if self.backoff.wait(stop, delay):
                return

    def _now_receiving(self, rate: int) -> str:
        """Mark the source connected at ``rate`` (warning when the rate changed); returns
        `` (recovered after N restarts)`` after a restart, else ``""``, for the caller's log."""
        if self.rate is not None and rate != self.rate:
            log.warning("%s: rate changed from %d to %d Hz", self.name, self.rate, rate)
        self.rate = rate
        self.connected = True
        return f" (recovered after {self.restarts} restarts)" if self.restarts else ""


# -- stream (URL) -------------------------------------------------------------------

_OUTPUT_RATE = re.compile(r"Stream #\d+:\d+.*?: Audio: pcm_f32le\b.*?(\d+) Hz")
_stream_numbers = itertools.count(1)


class StreamSource(_Reconnecting):
    """A network stream (any URL ffmpeg opens) decoded to mono float32 at the stream's
    own rate. Never finite: end of stream, errors and stalls (no bytes for
    ``stall_seconds``) restart ffmpeg after a capped exponential backoff.

    Counters: ``restarts`` (ffmpeg starts after the first), ``stalls``. ``rate`` is the
    rate of the current (or last) connection; a change on reconnect is logged.
    """

    finite = False
    _retry_verb = "reconnecting"

    def __init__(self, url: str, *, name: str | None = None, stall_seconds: float = 10.0,
                 backoff_initial_seconds: float = 0.5, backoff_max_seconds: float = 30.0) -> None:
        if stall_seconds <= 0:
            raise SourceError(f"{url}: stall_seconds must be > 0 (got {stall_seconds})")
        _require_ffmpeg(url)
        super().__init__(backoff_initial_seconds, backoff_max_seconds)
        self.url = url
        self.name = name or f"stream-{next(_stream_numbers)}"
        self.stall_seconds = stall_seconds
        self.ffmpeg_pid: int | None = None

    def _command(self) -> list[str]:
        # No -reconnect: this loop owns reconnection, so every outage is logged and counted.
        return ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info",
                "-i", self.url, "-map", "0:a:0", "-vn", "-f", "f32le", "-ac", "1", "-"]

    def _attempt(self, deliver: Deliver, stop: threading.Event, first: bool) -> str:
        """One ffmpeg run; returns why it ended."""
        rate_found = threading.Event()
        found: list[int] = []

        def on_line(line: str) -> None:
            match = _OUTPUT_RATE.search(line)
            if match and not found:
                found.append(int(match.group(1)))
                rate_found.set()

        try:
            child = _FFmpeg(self._command(), on_line)
        except OSError as exc:
            return f"cannot start ffmpeg ({exc})"
        self.ffmpeg_pid = child.pid
        splitter = _SampleSplitter(np.dtype("<f4"), 1)
        delivered = 0
        rate = 0
        last_data = time.monotonic()
        try:
            while not stop.is_set():
                chunk = child.read(_POLL_SECONDS)
                if chunk is None:
                    if time.monotonic() - last_data >= self.stall_seconds:
                        self.stalls += 1
                        said = f"; ffmpeg said: {child.last_error()}" if child.lines else ""
                        return f"no audio from {self.url} for {self.stall_seconds:g} s (stalled{said})"
                    continue
                if not chunk:
                    code = child.finish()
                    return f"stream {self.url} ended (ffmpeg exit {code}: {child.last_error()})"
                last_data = time.monotonic()
                if not rate:
                    while not rate_found.wait(_POLL_SECONDS):
                        if stop.is_set():
                            return "stopped"
                        if time.monotonic() - last_data >= self.stall_seconds:
                            return f"could not learn the sample rate of {self.url} from ffmpeg"
                    rate = found[0]
                    recovered = self._now_receiving(rate)
                    log.info("%s: receiving %s at %d Hz%s", self.name, self.url, rate, recovered)
                block = splitter.feed(chunk)
                if len(block):
                    deliver(block, rate)
                    if delivered < rate <= delivered + len(block):
                        self.backoff.reset()  # a second of audio: healthy again
                    delivered += len(block)
            return "stopped"
        finally:
            child.close()


# -- microphone ---------------------------------------------------------------------

_pa_lock = threading.Lock()
_pa_open_streams = 0


def _reinit_portaudio(sd: Any) -> None:
    """Make PortAudio list devices afresh (it caches them), unless a stream is open."""
    with _pa_lock:
        if _pa_open_streams:
            return
        try:
            sd._terminate()
            sd._initialize()
        except (sd.PortAudioError, OSError) as exc:
            log.debug("re-initialising PortAudio failed: %s", exc)


def _import_sounddevice() -> Any:
    try:
        import sounddevice as sd
    except OSError as exc:  # libportaudio2 missing
        raise RuntimeError(f"PortAudio is not available ({exc}); install libportaudio2") from exc
    return sd


def _passed_report_point(before: int, now: int) -> bool:
    """True when a counter that went from ``before`` to ``now`` reached 1 or a multiple of 100."""
    return before < 1 <= now or now // 100 > before // 100


class MicSource(_Reconnecting):
    """An input device through PortAudio (sounddevice) at its native default rate.

    ``device`` None is the default input; a string of digits is an index; other strings
    match a substring of the device name (case-insensitive; an exact name wins). A
    missing device, a stream error or no callbacks for ``stall_seconds`` is logged and
    retried with capped exponential backoff; the source never gives up by itself.

    Counters: ``restarts``, ``stalls``, ``overflows`` (PortAudio input overflows) and
    ``dropped_blocks`` (blocks lost because delivery fell ``queue_blocks`` behind); the
    last two are logged the first time and every 100th, from the reading loop.
    """

    finite = False

    def __init__(self, device: str | int | None = None, *, name: str | None = None,
                 stall_seconds: float = 10.0, backoff_initial_seconds: float = 0.5,
                 backoff_max_seconds: float = 30.0, channels: int | None = None,
                 queue_blocks: int = 256) -> None:
        if isinstance(device, str) and device.strip().isdigit():
            device = int(device)
        super().__init__(backoff_initial_seconds, backoff_max_seconds)
        self.device = device
        self.name = name or ("mic" if device is None else f"mic-{device}")
        self.stall_seconds = stall_seconds
        self.requested_channels = channels
        self.queue_blocks = queue_blocks
        self.overflows = 0  # incremented by the PortAudio callback
        self.dropped_blocks = 0  # likewise
        self._reported = (0, 0)  # (overflows, dropped_blocks) when last checked

    def _describe(self) -> str:
        return "the default input device" if self.device is None else f"input device {self.device!r}"

    def _resolve(self, sd: Any) -> tuple[int, dict]:
        devices = [dict(d, index=i) for i, d in enumerate(sd.query_devices())]
        inputs = [d for d in devices if d["max_input_channels"] > 0]
        names = ", ".join(f"{d['index']}: {d['name']}" for d in inputs) or "none"
        if self.device is None:
            index = sd.default.device[0]
            if index is None or index < 0 or index >= len(devices) or devices[index]["max_input_channels"] <= 0:
                raise LookupError(f"no default input device (inputs: {names})")
            return index, devices[index]
        if isinstance(self.device, int):
            if 0 <= self.device < len(devices) and devices[self.device]["max_input_channels"] > 0:
                return self.device, devices[self.device]
            raise LookupError(f"no input device with index {self.device} (inputs: {names})")
        wanted = self.device.lower()
        exact = [d for d in inputs if d["name"].lower() == wanted]
        partial = [d for d in inputs if wanted in d["name"].lower()]
        if exact or partial:
            d = (exact or partial)[0]
            return d["index"], d
        raise LookupError(f"no input device matching {self.device!r} (inputs: {names})")

    def _report_losses(self) -> None:
        """Warn about input overflows and dropped blocks counted since the last call, the
        first time and every 100th; called from the reading loop (not from the PortAudio
        callback, where logging is unsafe)."""
        overflows, dropped = self.overflows, self.dropped_blocks
        before_overflows, before_dropped = self._reported
        self._reported = (overflows, dropped)
        if _passed_report_point(before_overflows, overflows):
            log.warning("%s: input overflow, PortAudio lost audio before it was read (%d so far)",
                        self.name, overflows)
        if _passed_report_point(before_dropped, dropped):
            log.warning("%s: dropped audio, delivery is %d blocks behind (%d blocks dropped so far)",
                        self.name, self.queue_blocks, dropped)

    def _attempt(self, deliver: Deliver, stop: threading.Event, first: bool) -> str:
        global _pa_open_streams
        try:
            sd = _import_sounddevice()
        except RuntimeError as exc:
            return str(exc)
        if not first:  # a device may have come or gone since the last attempt
            _reinit_portaudio(sd)
        try:
            index, info = self._resolve(sd)
        except LookupError as exc:
            return str(exc)
        except sd.PortAudioError as exc:
            return f"cannot list audio devices ({exc})"
        rate = int(round(info["default_samplerate"]))
        channels = self.requested_channels or min(2, int(info["max_input_channels"]))
        blocks: queue.Queue[np.ndarray] = queue.Queue(maxsize=self.queue_blocks)
        finished = threading.Event()

        def callback(indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
            if status.input_overflow:
                self.overflows += 1
            try:
                blocks.put_nowait(indata.copy())
            except queue.Full:
                self.dropped_blocks += 1

        try:
            stream = sd.InputStream(device=index, samplerate=rate, channels=channels, dtype="float32",
                                    callback=callback, finished_callback=finished.set)
        except (sd.PortAudioError, ValueError) as exc:
            return f"cannot open {self._describe()} ({info['name']}): {exc}"
        with _pa_lock:
            _pa_open_streams += 1
        delivered = 0
        try:
            try:
                stream.start()
            except sd.PortAudioError as exc:
                return f"cannot start {self._describe()} ({info['name']}): {exc}"
            recovered = self._now_receiving(rate)
            log.info("%s: capturing from %r (index %d) at %d Hz, %d ch%s", self.name, info["name"], index,
                     rate, channels, recovered)
            last_data = time.monotonic()
            while not stop.is_set():
                if (self.overflows, self.dropped_blocks) != self._reported:
                    self._report_losses()
                try:
                    data = blocks.get(timeout=_POLL_SECONDS)
                except queue.Empty:
                    if finished.is_set() or not stream.active:
                        return f"the stream from {info['name']!r} ended (device gone?)"
                    if time.monotonic() - last_data >= self.stall_seconds:
                        self.stalls += 1
                        return f"no audio from {info['name']!r} for {self.stall_seconds:g} s (stalled)"
                    continue
                last_data = time.monotonic()
                block = downmix(data)
                deliver(block, rate)
                if delivered < rate <= delivered + len(block):
                    self.backoff.reset()
                delivered += len(block)
            return "stopped"
        finally:
            try:
                stream.abort(ignore_errors=True)
                stream.close(ignore_errors=True)
            except sd.PortAudioError as exc:  # pragma: no cover - device already gone
                log.debug("%s: closing the stream: %s", self.name, exc)
            with _pa_lock:
                _pa_open_streams -= 1


def list_input_devices() -> list[dict]:
    """Input devices as dicts: index, name, channels, default_samplerate, is_default
    (empty when PortAudio is missing or lists nothing)."""
    try:
        sd = _import_sounddevice()
    except RuntimeError as exc:
        log.warning("%s", exc)
        return []
    _reinit_portaudio(sd)
    try:
        devices = sd.query_devices()
        default = sd.default.device[0]
    except sd.PortAudioError as exc:
        log.warning("cannot list audio devices: %s", exc)
        return []
    return [
        {"index": i, "name": d["name"], "channels": int(d["max_input_channels"]),
         "default_samplerate": float(d["default_samplerate"]), "is_default": i == default}
        for i, d in enumerate(devices) if d["max_input_channels"] > 0
    ]


# -- stdin --------------------------------------------------------------------------

class StdinSource:
    """Raw interleaved PCM (s16le or f32le) at a given rate and channel count, from
    ``stream`` (default ``sys.stdin.buffer``); finite: ends at end of input. A partial
    trailing frame is dropped with a warning."""

    finite = True

    def __init__(self, *, name: str | None = None, format: str = "f32le", rate: int = 22050,
                 channels: int = 1, stream: IO[bytes] | None = None, block_frames: int = 4096) -> None:
        if format not in STDIN_FORMATS:
            raise SourceError(f"stdin format {format!r} is not supported; use one of {', '.join(STDIN_FORMATS)}")
        if int(rate) <= 0:
            raise SourceError(f"stdin rate must be a positive number of Hz (got {rate})")
        if int(channels) <= 0:
            raise SourceError(f"stdin channels must be 1 or more (got {channels})")
        self.name = name or "stdin"
        self.format, self.rate, self.channels = format, int(rate), int(channels)
        self.stream = stream
        self.block_frames = block_frames
        self.restarts = 0

    def _reader(self, stream: IO[bytes]) -> Callable[[int, threading.Event], bytes | None]:
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            fd = None
        if fd is None:
            read = getattr(stream, "read1", stream.read)
            return lambda n, stop: read(n)

        def read_fd(n: int, stop: threading.Event) -> bytes | None:
            ready, _, _ = select.select([fd], [], [], _POLL_SECONDS)
            return os.read(fd, n) if ready else None

        return read_fd

    def run(self, deliver: Deliver, stop: threading.Event) -> None:
        stream = self.stream if self.stream is not None else sys.stdin.buffer
        splitter = _SampleSplitter(STDIN_FORMATS[self.format], self.channels)
        read = self._reader(stream)
        want = self.block_frames * splitter.frame_bytes
        delivered = 0
        while not stop.is_set():
            chunk = read(want, stop)
            if chunk is None:
                continue
            if not chunk:
                break
            block = splitter.feed(chunk)
            if len(block):
                deliver(block, self.rate)
                delivered += len(block)
        if splitter.pending and not stop.is_set():
            log.warning("%s: dropped a partial trailing frame of %d bytes (frames are %d bytes)",
                        self.name, len(splitter.pending), splitter.frame_bytes)
        log.info("%s: end of input (%.1f s of audio)", self.name, delivered / self.rate)


# -- specs --------------------------------------------------------------------------

def parse_source(spec: str, *, name: str | None = None, realtime: bool = False, loop: bool = False,
                 stdin_format: str = "f32le", stdin_rate: int = 22050, stdin_channels: int = 1,
                 stall_seconds: float = 10.0, backoff_max_seconds: float = 30.0) -> AudioSource:
    """Make a source from a SPEC: ``mic`` | ``mic:NAME_OR_INDEX`` | ``file:PATH`` | ``-`` |
    a URL (anything with ``://``; ``file://PATH`` is a file) | a bare existing path.

    Default names: ``mic``, ``mic-NAME``, ``file-STEM``, ``stdin``, ``stream-N`` (N counts
    URLs parsed in this process). Raises :class:`SourceError` for a spec that can never work.
    """
    spec = spec.strip()
    if not spec:
        raise SourceError(f"empty source spec; {SPEC_HELP}")
    if spec == "-":
        return StdinSource(name=name, format=stdin_format, rate=stdin_rate, channels=stdin_channels)
    if spec == "mic" or spec.startswith("mic:"):
        device = spec[4:].strip() or None
        return MicSource(device, name=name, stall_seconds=stall_seconds, backoff_max_seconds=backoff_max_seconds)
    if spec.startswith("file://"):
        return FileSource(spec[len("file://"):], name=name, realtime=realtime, loop=loop)
    if spec.startswith("file:"):
        path = spec[len("file:"):]
        if not path:
            raise SourceError(f"file: needs a path, e.g. file:/music/clip.wav; {SPEC_HELP}")
        return FileSource(path, name=name, realtime=realtime, loop=loop)
    if "://" in spec:
        return StreamSource(spec, name=name, stall_seconds=stall_seconds, backoff_max_seconds=backoff_max_seconds)
    if Path(spec).exists():
        return FileSource(spec, name=name, realtime=realtime, loop=loop)
    raise SourceError(f"unknown source {spec!r}: {SPEC_HELP}")
