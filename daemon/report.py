"""``genrecast report``: each genre's share of the listening time, by source and by hour, from event logs.

The logs are the logfile sink's JSON lines (:mod:`genrecast.plugins.logfile_sink`), one daemon's
or a whole fleet's (each member writes its own; their sources are disjoint, so they add up).
Logs are read as a stream (memory grows with sources and hours, not with events), in the order
given; lines that are not genre events are counted and skipped.

What an event stands for: the audio from its window's start to the next window's start on the
same source (the hop), and the whole window (``audio_end_seconds - audio_start_seconds``, 3 s by
default) when no next window follows (the last one, or a restart). So overlapping windows
(``hop_seconds`` < the window) are not counted twice. Its category is the window's ``genre`` when
its state is ``music``, else its state: ``not_music`` (the music detector's gate), ``silence``
or ``uncertain``. Hours are UTC hours of the event's ``utc`` (when it was made).
"""

from __future__ import annotations

import gzip
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator

from genrecast.daemon.events import GenreEvent

#: Categories that are states, not genres, in the order the table shows them after the genres.
STATE_CATEGORIES = ("not_music", "silence", "uncertain")
_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
#: Beyond this many hours the table and the chart show days (``--json`` keeps every hour).
MAX_HOUR_ROWS = 72
#: Beyond this many sources the chart shows those with the most audio (the table shows all).
MAX_PLOT_SOURCES = 40
#: The chart's size: inches at :data:`PLOT_DPI` dots per inch (1200 x 800 pixels).
PLOT_INCHES = (12.0, 8.0)
PLOT_DPI = 100


#: The longest window an event may stand for (seconds); a line with a longer (or negative) one is
#: not a genre event of genrecast's (windows are seconds long; a sum of 1e308-s ones printed Infinity).
MAX_WINDOW_SECONDS = 3600.0


class ReportError(Exception):
    """A user-facing problem: an unreadable log, a bad ``--since``, matplotlib missing."""


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``24h``, ``90m``, ``7d``, ``2w``, ``30s`` (before ``now``, default the current time) or an ISO 8601
    time (``2026-11-30T12:00:00Z``; without a zone, UTC) → an aware UTC datetime.

    Raises:
        ReportError: anything else.
    """
    now = now or datetime.now(timezone.utc)
    match = _SINCE.match(text)
    if match:
        try:
            return now - timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2]])
        except OverflowError:
            raise ReportError(f"--since {text!r} reaches back before the year 1: give a shorter duration or an ISO time") from None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ReportError(f"--since {text!r} is neither a duration (24h, 90m, 7d) nor an ISO time (2026-11-30T12:00:00Z)") from None
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


def event_time(event: GenreEvent) -> datetime:
    """The event's ``utc`` as an aware datetime (a time without a zone is UTC, as for ``--since``).
    Raises ``ValueError`` for a ``utc`` that is no ISO time."""
    when = datetime.fromisoformat(event.utc.replace("Z", "+00:00"))
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when


def category(event: GenreEvent) -> str:
    """The event's genre when its state is music, else its state."""
    return (event.genre or "uncertain") if event.state == "music" else event.state


@dataclass
class Summary:
    """Seconds of audio per category: ``by_source[source][category]`` and ``by_hour[hour][category]``
    (``hour``: an aware UTC datetime on the hour), with the events and skipped lines counted."""

    by_source: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(float)))
    by_hour: dict[datetime, dict[str, float]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(float)))
    events: int = 0
    events_by_category: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    skipped_lines: int = 0
    """Lines that are not genre events (a cut line, another program's output)."""
    older: int = 0
    """Events left out because they are older than ``since``."""

    def add(self, event: GenreEvent, seconds: float) -> None:
        name = category(event)
        hour = event_time(event).replace(minute=0, second=0, microsecond=0)
        self.by_source[event.source][name] += seconds
        self.by_hour[hour][name] += seconds
        self.events += 1
        self.events_by_category[name] += 1

    def categories(self) -> list[str]:
        """Genres by total time (most first), then the states, each only if it occurs."""
        totals: dict[str, float] = defaultdict(float)
        for row in self.by_source.values():
            for name, seconds in row.items():
                totals[name] += seconds
        genres = sorted((c for c in totals if c not in STATE_CATEGORIES), key=lambda c: (-totals[c], c))
        return genres + [c for c in STATE_CATEGORIES if c in totals]

    def by_time(self) -> tuple[str, dict[datetime, dict[str, float]], str]:
        """(unit, table, strftime format): ``by_hour``, or its sums per UTC day when it has more than
        :data:`MAX_HOUR_ROWS` hours."""
        if len(self.by_hour) <= MAX_HOUR_ROWS:
            return "hour", self.by_hour, "%Y-%m-%d %H:00"
        days: dict[datetime, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for hour, row in self.by_hour.items():
            for name, seconds in row.items():
                days[hour.replace(hour=0)][name] += seconds
        return "day", days, "%Y-%m-%d"

    def to_dict(self) -> dict:
        """JSON form: seconds per category, by source and by hour (ISO times)."""
        def rows(table):
            return {str(k if not isinstance(k, datetime) else k.isoformat().replace("+00:00", "Z")):
                    {c: round(s, 3) for c, s in sorted(v.items())} for k, v in sorted(table.items())}
        return {"events": self.events, "skipped_lines": self.skipped_lines, "older": self.older,
                "events_by_category": dict(sorted(self.events_by_category.items())),
                "seconds_by_source": rows(self.by_source), "seconds_by_hour": rows(self.by_hour)}


def read_lines(paths: Iterable[Path], progress: bool = False,
               warn: Callable[[str], None] = lambda message: None) -> Iterator[bytes]:
    """Every line of every file in order (with a progress bar by bytes on a terminal); gzip
    files (a rotated log that logrotate compressed) are read through gzip. A gzip file cut
    short (still being compressed, or a copy broken off) gives the lines before the cut, and
    ``warn`` is told, as a plain log's partial last line is only skipped.

    Raises:
        ReportError: a file cannot be read.
    """
    from genrecast.daemon.progress import Progress

    paths, repeats = _distinct(Path(p) for p in paths)
    try:
        total = sum(p.stat().st_size for p in paths)
    except OSError as exc:
        raise ReportError(f"cannot read {exc.filename}: {exc.strerror} (give the logfile sink's event logs)") from None
    for path, first in repeats:
        warn(f"{path} is {first} again (given twice, e.g. by a glob and by name, or through a link); read once")
    with Progress(progress, total, "reading event logs", lines=False) as advance:
        for path in paths:
            compressed = _is_gzip(path)
            try:
                with (gzip.open(path, "rb") if compressed else open(path, "rb")) as f:
                    for line in f:
                        if not compressed:
                            advance(len(line))
                        yield line
            except EOFError:  # a gzip file cut short: what it held before the cut is read
                warn(f"{path} is cut short (a compressed log still being written, or a broken copy); "
                     "its events up to the cut are counted")
            except OSError as exc:
                raise ReportError(f"cannot read {path}: {exc.strerror or exc}") from None
            if compressed:
                advance(path.stat().st_size)


def _distinct(paths: Iterable[Path]) -> tuple[list[Path], list[tuple[Path, Path]]]:
    """Each file once, first mention kept, by device and inode (a link or another spelling of a
    path is the same file): (the paths to read, [(a repeat, the earlier path of its file)]). A path
    that cannot be stat'ed is kept, for the reader to report."""
    kept, repeats, seen = [], [], {}
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            kept.append(path)
            continue
        first = seen.setdefault((st.st_dev, st.st_ino), path)
        (kept.append(path) if first is path else repeats.append((path, first)))
    return kept, repeats


def _is_gzip(path: Path) -> bool:
    """Whether ``path`` starts with gzip's magic bytes (logrotate's ``compress``: ``*.jsonl.1.gz``)."""
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"\x1f\x8b"
    except OSError:
        return False


def summarise(lines: Iterable[bytes], since: datetime | None = None) -> Summary:
    """Add up the events in ``lines`` (JSON lines) made at or after ``since`` (see the module docstring)."""
    summary = Summary()
    previous: dict[str, GenreEvent] = {}

    def close(event: GenreEvent, following: GenreEvent | None) -> None:
        seconds = event.audio_end_seconds - event.audio_start_seconds
        if (following is not None and following.seq == event.seq + 1
                and event.audio_start_seconds < following.audio_start_seconds < event.audio_end_seconds):
            seconds = following.audio_start_seconds - event.audio_start_seconds
        summary.add(event, max(0.0, seconds))

    for line in lines:
        if not line.strip():
            continue
        try:
            event = GenreEvent.from_json(line)
            made = event_time(event)
        except ValueError:
            summary.skipped_lines += 1
            continue
        if not 0 <= event.audio_end_seconds - event.audio_start_seconds <= MAX_WINDOW_SECONDS:
            summary.skipped_lines += 1  # no window of genrecast's: its sums would run to inf hours
            continue
        if since is not None and made < since:
            summary.older += 1
            continue
        if event.source in previous:
            close(previous[event.source], event)
        previous[event.source] = event
    for event in previous.values():
        close(event, None)
    return summary


def _percent_table(title: str, rows: dict, categories: list[str], label) -> list[str]:
    width = max([len(title)] + [len(label(k)) for k in rows])
    columns = [max(6, len(c)) for c in categories]
    lines = [f"{title:<{width}}  {'hours':>7}  " + "  ".join(f"{c:>{w}}" for c, w in zip(categories, columns))]
    for key in sorted(rows):
        total = sum(rows[key].values())
        cells = [f"{100 * rows[key].get(c, 0.0) / total:>{w - 1}.1f}%" if total else f"{'-':>{w}}" for c, w in zip(categories, columns)]
        lines.append(f"{label(key):<{width}}  {total / 3600:>7.3f}  " + "  ".join(cells))
    return lines


def render_table(summary: Summary) -> list[str]:
    """The terminal table: per source, then per UTC hour (per day beyond :data:`MAX_HOUR_ROWS` hours),
    each category's share of the time (%)."""
    if not summary.events:
        why = [f"{summary.older} older than --since"] if summary.older else []
        why += [f"{_not_events(summary.skipped_lines)} skipped: give the JSON-lines event logs "
                "of the logfile sink"] if summary.skipped_lines else []
        return ["no genre events in these logs" + (f" ({'; '.join(why)})" if why else "")]
    categories = summary.categories()
    lines = _percent_table("SOURCE", summary.by_source, categories, str)
    lines.append("")
    unit, table, fmt = summary.by_time()
    lines += _percent_table(f"{unit.upper()} (UTC)", table, categories, lambda t: t.strftime(fmt))
    lines.append("")
    if unit == "day":
        lines.append(f"({len(summary.by_hour)} hours, shown by day; --json has every hour)")
    lines.append(f"{summary.events} event{'s' if summary.events != 1 else ''}"
                 + (f", {summary.older} older than --since left out" if summary.older else "")
                 + (f", {_not_events(summary.skipped_lines)} skipped"
                    if summary.skipped_lines else ""))
    return lines


def _not_events(n: int) -> str:
    """``1 line that is not a genre event`` / ``3 lines that are not genre events``."""
    return "1 line that is not a genre event" if n == 1 else f"{n} lines that are not genre events"


def plot(summary: Summary, path: Path, empty: str = "no genre events in these logs") -> None:
    """A PNG of :data:`PLOT_INCHES` at :data:`PLOT_DPI` (1200 x 800 pixels): each category's share of
    the time as stacked bars, one bar per source (top; the :data:`MAX_PLOT_SOURCES` with the most
    audio) and per UTC hour (bottom; per day beyond :data:`MAX_HOUR_ROWS` hours), on a time axis.
    A summary without events gets a chart of the same size that says ``empty`` (a quiet day's
    chart must not be yesterday's left in place).

    Raises:
        ReportError: matplotlib is not installed, or the file cannot be written.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ReportError("--plot needs matplotlib: pip install 'genrecast[plot]'") from None
    if not summary.events:
        fig = plt.figure(figsize=PLOT_INCHES, dpi=PLOT_DPI)
        fig.text(0.5, 0.5, empty, ha="center", va="center", fontsize=16)
        _save(fig, path)
        return
    categories = summary.categories()
    colours = dict(zip(categories, plt.get_cmap("tab20").colors))
    colours.update({"not_music": "#8c8c8c", "silence": "#d9d9d9", "uncertain": "#f2e6c9"})
    fig, (top, bottom) = plt.subplots(2, 1, figsize=PLOT_INCHES, dpi=PLOT_DPI)
    sources = sorted(summary.by_source, key=lambda k: -sum(summary.by_source[k].values()))[:MAX_PLOT_SOURCES]
    unit, by_time, _ = summary.by_time()
    shown = "" if len(sources) == len(summary.by_source) else f" ({len(sources)} of {len(summary.by_source)} with the most audio)"
    for axis, table, keys, xs, width, title in (
        (top, summary.by_source, sorted(sources), sorted(sources), 0.8, f"share of the time by source{shown}"),
        (bottom, by_time, sorted(by_time), sorted(by_time), 0.9 / (24 if unit == "hour" else 1), f"share of the time by {unit} (UTC)"),
    ):
        base = [0.0] * len(keys)
        for name in categories:
            shares = [100 * table[k].get(name, 0.0) / (sum(table[k].values()) or 1) for k in keys]
            axis.bar(xs, shares, width=width, bottom=base, color=colours[name], label=name, align="edge" if axis is bottom else "center")
            base = [b + s for b, s in zip(base, shares)]
        axis.set_ylim(0, 100)
        axis.set_ylabel("% of the time")
        axis.set_title(title)
        axis.tick_params(axis="x", labelrotation=30, labelsize=8)
    top.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    fig.subplots_adjust(left=0.07, right=0.86, top=0.95, bottom=0.12, hspace=0.55)
    _save(fig, path)


def _save(fig, path: Path) -> None:
    """Write ``fig`` to ``path`` at :data:`PLOT_DPI` and close it; raises :class:`ReportError`."""
    import matplotlib.pyplot as plt

    try:
        fig.savefig(path, dpi=PLOT_DPI)  # no bbox_inches="tight": the size stays PLOT_INCHES x PLOT_DPI
    except OSError as exc:
        raise ReportError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
