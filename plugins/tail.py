"""``genrecast tail``: watch genre events live, from the broker or from an event log file.

The live view redraws with plain ANSI codes (no curses) and fits 80 columns: per
source the window's genre with a probability bar, the top three, the smoothed genre
and a strip of the recent windows' genres. When stdout is not a terminal the view is
written as plain frames, one after another, with no screen-control codes. ``--json``
prints each event's JSON line instead. Payloads that are not genre events are skipped
and counted.

From the broker it follows every daemon under the prefix (a whole fleet: topics are
``<prefix>/<daemon_id>/<source>/event``), or one with ``daemon_id``; the view names each
source with the member it came from (``radio @ genrecast-1``).
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import select
import shutil
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, TextIO

from genrecast.daemon.events import GenreEvent

log = logging.getLogger(__name__)

WIDTH_COLUMNS = 80
HISTORY_WINDOWS = 24
BAR_COLUMNS = 30
REDRAW_SECONDS = 0.1
POLL_SECONDS = 0.2
CLEAR = "\x1b[H\x1b[2J"
NOTICE_PREFIX = "genrecast: "


class TailError(Exception):
    """A user-facing problem (bad broker address, broker refused us, unreadable file)."""


@dataclass
class SourceView:
    """What the view remembers of one source."""

    last: GenreEvent
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=HISTORY_WINDOWS))


class TailView:
    """The live terminal view: state per source, rendered as lines of at most ``width`` columns."""

    def __init__(self, title: str, width: int = WIDTH_COLUMNS) -> None:
        self.title, self.width = title, width
        self.sources: dict[str, SourceView] = {}
        self.codes: dict[str, str] = {"silence": "..", "uncertain": "??", "not_music": "--"}
        self.events = 0
        self.skipped = 0
        self.members: set[str] = set()
        self.status = "connecting"

    def code(self, genre: str) -> str:
        """A unique two-character code for a genre (``ro`` rock, ``re`` reggae, ...)."""
        if genre not in self.codes:
            used = set(self.codes.values())
            word = (genre.lower() + "__")
            candidates = [word[:2]] + [word[0] + c for c in word[2:] if c.isalnum()] + [word[0] + str(d) for d in range(10)]
            self.codes[genre] = next((c for c in candidates if c not in used), "**")
        return self.codes[genre]

    def update(self, event: GenreEvent, member: str | None = None) -> None:
        """Take in ``event``; ``member`` is the daemon id it came from (None from a file)."""
        self.events += 1
        key = f"{event.source} @ {member}" if member else event.source
        if member:
            self.members.add(member)
        view = self.sources.get(key)
        if view is None:
            view = self.sources[key] = SourceView(event)
        view.last = event
        view.recent.append(self.code(event.state if event.state != "music" else event.genre or "uncertain"))

    def render(self) -> list[str]:
        w = self.width
        lines = [f"genrecast tail  {self.title}", self.status,
                 f"events {self.events}  skipped {self.skipped}"
                 + (f"  members {len(self.members)}" if self.members else "") + "  (Ctrl-C quits)", ""]
        if not self.sources:
            lines.append("waiting for events ...")
        for name, view in sorted(self.sources.items()):
            e = view.last
            limited = f"  band-limited to {e.bandwidth_hz / 1000:.1f} kHz" if e.band_limited and e.bandwidth_hz else ""
            lines.append(f"{name}  #{e.seq}  {e.utc}  @{e.audio_start_seconds:.1f}s  {e.level_dbfs:.0f} dBFS{limited}")
            if e.state in ("silence", "not_music"):
                now = e.state if e.music_probability is None else f"{e.state} (music {e.music_probability:.2f})"
                bar = ""
            else:
                filled = round(max(0.0, min(1.0, e.probability)) * BAR_COLUMNS)
                bar = f"[{'#' * filled}{'-' * (BAR_COLUMNS - filled)}] {e.probability * 100:3.0f}%"
                now = (e.genre or "-") if e.state == "music" else f"uncertain ({e.genre or '-'})"
            lines.append(f"  now       {now:<18} {bar}")
            top = sorted(e.probabilities.items(), key=lambda kv: -kv[1])[:3]
            lines.append("  top 3     " + ("  ".join(f"{g} {p:.2f}" for g, p in top) or "-"))
            smoothed = f"{e.smoothed_genre} {e.smoothed_probability:.2f}" if e.smoothed_genre else "-"
            lines.append(f"  smoothed  {smoothed}{'  (changed)' if e.changed else ''}")
            lines.append("  recent    " + " ".join(view.recent))
            lines.append("")
        if self.sources:
            legend = "  ".join(f"{c}={g}" for g, c in self.codes.items() if any(c in v.recent for v in self.sources.values()))
            lines.append("legend    " + legend)
        return [_printable(line)[:w] for line in lines]


def _printable(text: str) -> str:
    """``text`` with every character a terminal would act on (ESC, BEL, ...) written as an escape
    (``\\x1b``): a source name or genre in a payload must not clear or retitle the operator's terminal."""
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _is_ip_address(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def parse_broker(spec: str) -> tuple[str, int | None]:
    """``HOST``, ``HOST:PORT`` or ``[V6ADDR]:PORT`` → (host, port or None)."""
    spec = spec.strip()
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif spec.count(":") == 1:
        host, _, port = spec.partition(":")
    elif ":" in spec and not _is_ip_address(spec):  # two colons or more: only a bare IPv6 address
        raise TailError(f"broker {spec!r} is not HOST, HOST:PORT or [V6ADDR]:PORT")
    else:
        host, port = spec, ""
    if not host:
        raise TailError(f"broker {spec!r} has no host (expected HOST[:PORT])")
    if port and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise TailError(f"broker {spec!r} has a bad port (expected HOST[:PORT] with PORT 1-65535)")
    return host, int(port) if port else None


def follow_file(path: Path, stop: Callable[[], bool], last_lines: int = 10) -> Iterator[bytes | None]:
    """Yield complete lines of ``path`` as they are appended (starting with its last
    ``last_lines`` lines, all of them when negative; a file that does not exist yet, from its first line once it
    appears), following rotation and truncation; yields None when idle.
    A final line without its newline is held back until it is completed."""
    handle = None
    inode = None
    buffer = b""
    while not stop():
        if handle is None:
            try:
                handle = open(path, "rb")
            except FileNotFoundError:
                last_lines = -1  # a log that appears later is read from its start, as `tail -F` does
                yield None
                time.sleep(POLL_SECONDS)
                continue
            except OSError as exc:
                raise TailError(f"cannot read {path}: {exc.strerror or exc}") from None
            stat = os.fstat(handle.fileno())
            inode, size = stat.st_ino, stat.st_size
            if last_lines >= 0 and size > 0:
                start = max(0, size - 1_000_000)
                handle.seek(start)
                data = handle.read(size - start)
                complete = data[: data.rfind(b"\n") + 1]
                lines = complete.split(b"\n")[:-1]
                if start:
                    lines = lines[1:]
                for line in lines[-last_lines:] if last_lines else []:
                    yield line
                buffer = data[len(complete):]
                handle.seek(size)
        chunk = handle.read(65536)
        if chunk:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            yield from lines
            continue
        try:
            st = path.stat()
            rotated = st.st_ino != inode or st.st_size < handle.tell()
        except FileNotFoundError:
            rotated = True
        if rotated:
            handle.close()
            handle, buffer, last_lines = None, b"", -1
            continue
        yield None
        time.sleep(POLL_SECONDS)
    if handle is not None:
        handle.close()


class Tail:
    """Turns payloads into output: JSON lines (``json_output``) or the redrawn view."""

    def __init__(self, view: TailView, json_output: bool, out: TextIO) -> None:
        self.view, self.json_output, self.out = view, json_output, out
        try:
            self._clear = CLEAR if out.isatty() else ""  # a pipe or a file gets plain frames
        except (AttributeError, ValueError):
            self._clear = ""
        self._dirty = True
        self._last_draw = 0.0

    def handle(self, payload: bytes, member: str | None = None) -> None:
        try:
            event = GenreEvent.from_json(payload)
        except ValueError as exc:
            self.view.skipped += 1
            self._dirty = True  # the view's counter changed
            log.debug("skipped a payload that is not a genre event: %s", exc)
            return
        if self.json_output:
            self.out.write(payload.decode("utf-8").strip() + "\n")
            self.out.flush()
            self.view.events += 1
        else:
            self.view.update(event, member)
            self._dirty = True

    def set_status(self, status: str) -> None:
        if status != self.view.status:
            self.view.status, self._dirty = status, True
            if self.json_output:
                print(NOTICE_PREFIX + status, file=sys.stderr, flush=True)

    def idle(self) -> None:
        """Nothing new came: redraw what changed, and raise ``BrokenPipeError`` when the reader of
        a pipe has gone, as the next write would (``tail --json | head`` hung while no event came)."""
        self.draw(force=True)
        if _reader_gone(self.out):
            raise BrokenPipeError(errno.EPIPE, "the reader of the output has gone")

    def draw(self, force: bool = False) -> None:
        if self.json_output or not self._dirty:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < REDRAW_SECONDS:
            return
        self.out.write(self._clear + "\n".join(self.view.render()) + "\n" + ("" if self._clear else "\n"))
        self.out.flush()
        self._dirty, self._last_draw = False, now


def _reader_gone(out: TextIO) -> bool:
    """Whether ``out`` is a pipe whose reading end is closed (``poll`` reports an error on it)."""
    try:
        fd = out.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    poller = select.poll()
    poller.register(fd, 0)  # no events asked: POLLERR and POLLHUP are reported anyway
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def _new_tail(title: str, json_output: bool, out: TextIO, tail_box: list | None) -> Tail:
    """A Tail as wide as the terminal (at most WIDTH_COLUMNS; a pipe or file: lines uncut), put in
    ``tail_box`` for the caller."""
    tty = getattr(out, "isatty", lambda: False)()
    width = min(WIDTH_COLUMNS, shutil.get_terminal_size((WIDTH_COLUMNS, 24)).columns) if tty else 1_000_000
    tail = Tail(TailView(title, width), json_output, out)
    if tail_box is not None:
        tail_box.append(tail)
    return tail


def run_tail_file(path: Path, json_output: bool, out: TextIO = sys.stdout, tail_box: list | None = None) -> None:
    """Follow an event log until Ctrl-C (KeyboardInterrupt propagates to the caller; the Tail
    is in ``tail_box`` for its counts).

    A file that does not exist yet is waited for, and the status says so (on stderr with
    ``--json``); a folder that does not exist raises :class:`TailError`.
    """
    path = Path(path)
    if not path.exists() and not path.parent.is_dir():
        raise TailError(f"cannot follow {path}: the folder {path.parent} does not exist (check the path, "
                        "or the logfile sink's [logfile] path)")
    tail = _new_tail(f"file {path}", json_output, out, tail_box)
    waiting = not path.exists()
    if waiting:
        tail.set_status(f"waiting for {path} to appear (it does not exist yet; Ctrl-C quits)")
    else:
        tail.set_status(f"following {path}")
    # a file missing when we said so is read from its start, even if it appears before the first read
    for line in follow_file(path, stop=lambda: False, last_lines=-1 if waiting else 10):
        if waiting and path.exists():
            waiting = False
            tail.set_status(f"following {path}")
        if line is None:
            tail.idle()
            continue
        if line.strip():
            tail.handle(line)
        tail.draw()


def member_of(topic: str) -> str | None:
    """The daemon id in an event topic ``<prefix>/<daemon_id>/<source>/event`` (None for another shape)."""
    levels = topic.split("/")
    return levels[-3] if len(levels) >= 4 and levels[-1] == "event" else None


def run_tail_mqtt(settings, json_output: bool, out: TextIO = sys.stdout, tail_box: list | None = None,
                  daemon_id: str | None = None) -> None:
    """Subscribe to ``<prefix>/+/+/event`` (every daemon's sources: a whole fleet), or to
    ``<prefix>/<daemon_id>/+/event`` (one member), and show events until Ctrl-C (KeyboardInterrupt
    propagates; the client is stopped first). Raises :class:`TailError` if the broker
    cannot be reached or refuses us."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    where = f"{settings.host}:{settings.port}"
    topic = f"{settings.prefix}/{daemon_id or '+'}/+/event"
    tail = _new_tail(f"broker {where}  {topic}", json_output, out, tail_box)
    inbox: queue.Queue[tuple[str, object]] = queue.Queue()

    def on_connect(client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            inbox.put(("refused", str(reason_code)))
            return
        client.subscribe(topic, qos=1)

    def on_subscribe(client, userdata, mid, reason_codes, properties) -> None:
        inbox.put(("status", f"subscribed to {topic} on {where}"))

    def on_disconnect(client, userdata, flags, reason_code, properties) -> None:
        why = "the connection was lost" if str(reason_code) == "Unspecified error" else str(reason_code)  # paho's words for it
        inbox.put(("status", f"disconnected from {where} ({why}); reconnecting"))

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"genrecast-tail-{os.getpid()}", clean_session=True)
    client.on_connect, client.on_subscribe, client.on_disconnect = on_connect, on_subscribe, on_disconnect
    client.on_message = lambda c, u, message: inbox.put(("message", (message.payload, member_of(message.topic))))
    client.reconnect_delay_set(1, 10)
    try:
        settings.configure_tls(client)
        settings.connect(client)
    except (OSError, ValueError) as exc:
        hint = ("; is a broker running there? give its address with --broker HOST:PORT (or [mqtt] host and port), "
                "or follow the event log with --file") if isinstance(exc, ConnectionRefusedError) else ""
        raise TailError(f"cannot connect to MQTT broker {where}: {exc}{hint}") from None
    client.loop_start()
    try:
        tail.draw(force=True)
        while True:
            try:
                kind, value = inbox.get(timeout=POLL_SECONDS)
            except queue.Empty:
                tail.idle()
                continue
            if kind == "message":
                tail.handle(*value)  # type: ignore[misc]
            elif kind == "status":
                tail.set_status(str(value))
            elif kind == "refused":
                raise TailError(f"MQTT broker {where} refused the connection: {value}")
            tail.draw()
    finally:
        client.disconnect()
        client.loop_stop()
