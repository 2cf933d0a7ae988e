"""The ``stdout`` sink (the default): one readable line per window, or JSON lines.

Settings (``[stdout]``): ``json`` (bool, default false).
"""

from __future__ import annotations

import logging
import sys
import unicodedata
from dataclasses import dataclass
from typing import Any, TextIO

from genrecast.daemon.events import GenreEvent
from genrecast.plugins import SinkConfigError, hookimpl
from genrecast.plugins.settings import settings_from_dict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StdoutSettings:
    """Settings of the stdout sink."""

    json: bool = False
    """Print ``event.to_json()`` lines instead of readable lines."""


#: Widths of the audio clock (``@604800.0s``: a week) and window columns, so the columns line up.
CLOCK_WIDTH = 10
WINDOW_WIDTH = 27  # `uncertain  (classical 0.77)`, the widest with GTZAN's labels


def display_width(text: str) -> int:
    """Terminal columns ``text`` takes: East Asian wide and fullwidth characters take two
    (Unicode Standard Annex #11), combining marks none."""
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def format_line(event: GenreEvent, source_width: int = 0) -> str:
    """One readable line: time, source, audio clock, this window's result, smoothed genre.

    ``2024-05-01T12:00:03.000Z  radio  @3.0s       rock       0.83          smoothed rock 0.74``;
    a silent window shows ``silence    (-63 dBFS)``, an uncertain one ``uncertain  (rock 0.21)``,
    talk or noise ``not_music  (music 0.03)`` (its P(music)); `` *changed*`` marks the event
    where the smoothed genre changed. The clock and window columns have fixed widths
    (:data:`CLOCK_WIDTH`, :data:`WINDOW_WIDTH`), so a source's lines stay aligned; ``source_width``
    pads the source name to that many terminal columns (:func:`display_width`), so several
    sources' lines do too."""
    if event.state == "silence":
        window = f"{'silence':<10} ({event.level_dbfs:.0f} dBFS)"
    elif event.state == "uncertain":
        window = f"{'uncertain':<10} ({event.genre or '-'} {event.probability:.2f})"
    elif event.state == "not_music":
        shown = f" (music {event.music_probability:.2f})" if event.music_probability is not None else ""
        window = f"{'not_music':<10}{shown}"
    else:
        window = f"{event.genre or '-':<10} {event.probability:.2f}"
    smoothed = f"smoothed {event.smoothed_genre} {event.smoothed_probability:.2f}" if event.smoothed_genre else "smoothed -"
    changed = "  *changed*" if event.changed else ""
    clock = f"@{event.audio_start_seconds:.1f}s"
    source = event.source + " " * max(0, source_width - display_width(event.source))
    return f"{event.utc}  {source}  {clock:<{CLOCK_WIDTH}}  {window:<{WINDOW_WIDTH}}  {smoothed}{changed}"


class StdoutSink:
    """Prints each event on standard output (or ``stream``), flushing every line."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.settings = StdoutSettings()
        self.source_width = 0
        self.not_printed = 0
        """Events that came after the reader went away (``genrecast run | head``; the one whose write
        met the broken pipe included): once there is one, nothing more is printed."""

    @hookimpl
    def genrecast_sink_check(self, config: dict[str, Any]) -> None:
        settings_from_dict(StdoutSettings, config, "stdout")

    @hookimpl
    def genrecast_sink_start(self, config: dict[str, Any], labels: list[str], sources: list[str]) -> None:
        self.settings = settings_from_dict(StdoutSettings, config, "stdout")
        if self.stream is None and sys.stdout is None:  # started with stdout closed (`>&-`)
            raise SinkConfigError("stdout: the standard output is closed; give it somewhere to go (> events.txt, or "
                                  "> /dev/null to drop them), or choose other sinks (--sink logfile)")
        self.source_width = max(map(display_width, sources), default=0)

    @hookimpl
    def genrecast_sink_event(self, event: GenreEvent) -> None:
        if self.not_printed:  # the reader went away
            self.not_printed += 1
            return
        stream = self.stream or sys.stdout
        try:
            stream.write((event.to_json() if self.settings.json else format_line(event, self.source_width)) + "\n")
            stream.flush()
        except BrokenPipeError:  # the reader went away, as `head` does: a wish, not a failure
            self.not_printed += 1
            log.info("stdout: the reader went away (broken pipe); events go on to the other sinks only")
            if stream is sys.stdout:
                from genrecast.daemon.stderr import stdout_to_devnull

                stdout_to_devnull()

    @hookimpl
    def genrecast_sink_stats(self) -> dict[str, Any]:
        """``not_printed``: events after the reader went away (not counted as dropped: the reader
        chose to stop, so a run that ends this way is not a failure)."""
        return {"not_printed": self.not_printed}

    @hookimpl
    def genrecast_sink_stop(self, deadline_seconds: float) -> None:
        if self.not_printed:
            log.info("stdout: %d events were not printed after the reader went away", self.not_printed)
