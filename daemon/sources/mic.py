"""Microphones: PortAudio input devices (sounddevice), and the sound server's sources
by name (see :mod:`~genrecast.daemon.sources.pulse`)."""

from __future__ import annotations

import atexit
import queue
import threading
import time
from typing import Any

import numpy as np

from genrecast.daemon.sources.base import POLL_SECONDS, Deliver, downmix, log
from genrecast.daemon.sources.pulse import PULSE_DEVICE, ServerSource, find_server_source, list_server_sources, recording_from
from genrecast.daemon.sources.reconnect import _Reconnecting

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


#: Seconds a stream's abort and close may take before the source goes on without them: PortAudio
#: waits on the sound server there, and a frozen server (stopped, or hung) would hold the source
#: and a stop of the daemon for as long as it stays frozen.
CLOSE_TIMEOUT_SECONDS = 2.0


def _close(stream: Any, sd: Any, name: str) -> None:
    """Abort and close ``stream``, then count it closed; in a thread of its own, waited for up
    to :data:`CLOSE_TIMEOUT_SECONDS`. Past that the source goes on (the thread finishes the close
    whenever the server answers; until then PortAudio is not re-initialised, as a stream is open)."""
    def close() -> None:
        global _pa_open_streams
        try:
            stream.abort(ignore_errors=True)
            stream.close(ignore_errors=True)
        except sd.PortAudioError as exc:  # pragma: no cover - device already gone
            log.debug("%s: closing the stream: %s", name, exc)
        finally:
            with _pa_lock:
                _pa_open_streams -= 1

    closer = threading.Thread(target=close, name=f"close-{name}", daemon=True)
    closer.start()
    closer.join(CLOSE_TIMEOUT_SECONDS)
    if closer.is_alive():
        log.warning("%s: the sound server does not answer (closing the stream has taken over %g s); going on "
                    "without waiting for it", name, CLOSE_TIMEOUT_SECONDS)
        # sounddevice terminates PortAudio at exit, which closes this stream again and waits on the
        # server too: a stop of the daemon would hang for as long as the server stays frozen
        atexit.unregister(sd._exit_handler)


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
    name a PortAudio device or a sound-server (PulseAudio/PipeWire) source, exactly or
    by a part of its name or description (case-insensitive; see :meth:`_resolve`). A
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

    def _resolve(self, sd: Any) -> tuple[int, dict, str | None]:
        """``(PortAudio index, device info, sound-server source or None)`` of the device to
        open; raises LookupError listing what exists. For a name: an exact PortAudio
        device name, then an exact sound-server source name or description, then a part
        of a PortAudio name, then a part of a server source's name or description."""
        devices = [dict(d, index=i) for i, d in enumerate(sd.query_devices())]
        inputs = [d for d in devices if d["max_input_channels"] > 0]
        names = ", ".join(f"{d['index']}: {d['name']}" for d in inputs) or "none"
        if self.device is None:
            index = sd.default.device[0]
            if index is None or index < 0 or index >= len(devices) or devices[index]["max_input_channels"] <= 0:
                raise LookupError(f"no default input device (inputs: {names})")
            return index, devices[index], None
        if isinstance(self.device, int):
            if 0 <= self.device < len(devices) and devices[self.device]["max_input_channels"] > 0:
                return self.device, devices[self.device], None
            raise LookupError(f"no input device with index {self.device} (inputs: {names})")
        wanted = self.device.lower()
        exact = [d for d in inputs if d["name"].lower() == wanted]
        if exact:
            return exact[0]["index"], exact[0], None
        server = list_server_sources()
        found = find_server_source(wanted, server, exact=True)
        partial = [d for d in inputs if wanted in d["name"].lower()]
        if found is None and partial:
            return partial[0]["index"], partial[0], None
        found = found or find_server_source(wanted, server, exact=False)
        if found is not None:
            return self._through_server(found, inputs)
        sources = ", ".join(s.name for s in server if not s.is_monitor)
        listed = f"; sound-server sources: {sources}" if sources else ""
        raise LookupError(f"no input device matching {self.device!r} (inputs: {names}{listed})")

    def _through_server(self, source: ServerSource, inputs: list[dict]) -> tuple[int, dict, str]:
        pulse = [d for d in inputs if d["name"] == PULSE_DEVICE]
        if not pulse:
            raise LookupError(f"the sound server has a source {source.name!r}, but PortAudio has no {PULSE_DEVICE!r} "
                              "device to record from it: install libasound2-plugins")
        info = dict(pulse[0], name=f"{source.name} (sound server)", default_samplerate=float(source.sample_rate),
                    max_input_channels=source.channels)  # the source's own rate and channels: no resampling in the server
        return pulse[0]["index"], info, source.name

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
            index, info, server_source = self._resolve(sd)
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
            with recording_from(server_source):
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
                    data = blocks.get(timeout=POLL_SECONDS)
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
            _close(stream, sd, self.name)


def list_input_devices() -> list[dict]:
    """PortAudio input devices as dicts: index, name, channels, default_samplerate,
    is_default (empty when PortAudio is missing or lists nothing). The sound server's
    sources: :func:`~genrecast.daemon.sources.pulse.list_server_sources`."""
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
