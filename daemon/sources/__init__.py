"""Audio sources: microphones (PortAudio, or the sound server's sources by name), files
and URLs (ffmpeg), and raw PCM on stdin.

Every source delivers mono float32 blocks at the audio's *own* sample rate (the
windower resamples). A source never raises for device or network trouble: it logs
why in words (``connection refused``, ``unauthorised``, ``no audio stream``, ...),
waits with capped exponential backoff (the waits end at once when ``stop`` is set)
and tries again, counting ``restarts``. :class:`SourceError` is raised only for
configuration errors that are clear at once, and then by :func:`parse_source`:
a missing, empty or undecodable file (probed with ffprobe), an unknown spec, a
bad stdin format, ffmpeg not installed. A file that probes fine but fails while
decoding raises :class:`FileDecodeError` (a :class:`SourceError`) from ``run()``.
Files are decoded by :func:`decode_blocks` (libsndfile where exact, else ffmpeg), the
decoder ``classify`` and training use too.

Modules: ``base`` (the protocol, errors, downmixing), ``ffmpeg`` (children, local
paths, probing), ``ffmpeg_errors`` (failure reasons), ``files``, ``stream``, ``mic``
and ``pulse`` (sound-server sources), ``stdin``, ``reconnect`` (the retry loop) and
``spec`` (``--source SPEC``). Every one logs to ``genrecast.daemon.sources``.
"""

from genrecast.daemon.sources.base import AudioSource, Deliver, SourceError, downmix
from genrecast.daemon.sources.ffmpeg import local_input, probe_audio
from genrecast.daemon.sources.files import FileDecodeError, FileInfo, FileSource, decode_blocks, probe_file
from genrecast.daemon.sources.mic import MicSource, list_input_devices
from genrecast.daemon.sources.pulse import ServerSource, list_server_sources
from genrecast.daemon.sources.reconnect import _Reconnecting
from genrecast.daemon.sources.spec import SPEC_HELP, parse_source
from genrecast.daemon.sources.stdin import STDIN_FORMATS, StdinSource
from genrecast.daemon.sources.stream import StreamSource

__all__ = [
    "AudioSource", "Deliver", "FileDecodeError", "FileInfo", "FileSource", "MicSource", "SPEC_HELP", "STDIN_FORMATS",
    "ServerSource", "SourceError", "StdinSource", "StreamSource", "decode_blocks", "downmix",
    "list_input_devices", "list_server_sources", "local_input", "parse_source", "probe_audio", "probe_file",
]
