"""Sources of the sound server (PulseAudio, or PipeWire through pipewire-pulse), listed
through libpulse (``pulsectl``), so that ``mic:NAME`` can name a microphone the way
``pactl list sources`` and the desktop's sound settings do.

PortAudio sees the whole sound server as one device, ``pulse`` (ALSA's pulse plugin),
which records from the server's default source. To record from another source, the
microphone source opens ``pulse`` with ``PULSE_SOURCE`` set to that source's name
(libpulse reads it when the plugin connects): :func:`recording_from`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from typing import Iterator

from genrecast.daemon.sources.base import log

#: The PortAudio device that records from the sound server.
PULSE_DEVICE = "pulse"
_env_lock = threading.Lock()


@dataclass(frozen=True)
class ServerSource:
    """One source of the sound server, as ``pactl list sources`` shows it."""

    name: str
    """The server's name for it, e.g. ``alsa_input.usb-0d8c_USB_PnP-00.mono-fallback``."""
    description: str
    """What desktops show, e.g. ``USB PnP Sound Device Mono``."""
    channels: int
    sample_rate: int
    """Hz."""
    is_default: bool
    is_monitor: bool
    """A sink's monitor (what is playing), not a microphone."""


def list_server_sources() -> list[ServerSource]:
    """The sound server's sources, or ``[]`` when there is no server (or no libpulse).
    Never starts a server."""
    try:
        import pulsectl
    except (ImportError, OSError) as exc:  # libpulse missing
        log.debug("cannot list sound-server sources: %s", exc)
        return []
    try:
        with pulsectl.Pulse("genrecast", connect=False) as pulse:
            pulse.connect(autospawn=False, timeout=2.0)
            default = pulse.server_info().default_source_name
            return [
                ServerSource(name=s.name, description=s.description, channels=int(s.channel_count),
                             sample_rate=int(s.sample_spec.rate), is_default=s.name == default,
                             is_monitor=s.monitor_of_sink != 0xFFFFFFFF)
                for s in pulse.source_list()
            ]
    except Exception as exc:  # pulsectl raises PulseError and others for an absent or odd server
        log.debug("cannot list sound-server sources: %s", exc)
        return []


def find_server_source(wanted: str, sources: list[ServerSource], *, exact: bool) -> ServerSource | None:
    """The source whose name or description is ``wanted`` (``exact``) or contains it
    (case-insensitive); the first in the server's order wins."""
    wanted = wanted.lower()
    for source in sources:
        names = (source.name.lower(), source.description.lower())
        if (wanted in names) if exact else any(wanted in n for n in names):
            return source
    return None


@contextlib.contextmanager
def recording_from(source_name: str | None) -> Iterator[None]:
    """While in this block, a PortAudio ``pulse`` stream opened in it records from
    ``source_name`` (``PULSE_SOURCE``); None changes nothing. Serialised with a lock, and
    the variable is restored afterwards."""
    if source_name is None:
        yield
        return
    with _env_lock:
        saved = os.environ.get("PULSE_SOURCE")
        os.environ["PULSE_SOURCE"] = source_name
        try:
            yield
        finally:
            if saved is None:
                os.environ.pop("PULSE_SOURCE", None)
            else:
                os.environ["PULSE_SOURCE"] = saved
