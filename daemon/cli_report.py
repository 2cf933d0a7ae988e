"""The ``genrecast report`` command (its logic is in :mod:`genrecast.daemon.report`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

REPORT_HELP = """Summarise event logs: each genre's share of the time (and not_music, silence, uncertain), by source and by UTC hour.

LOG... are the logfile sink's JSON-lines event logs: one daemon's, or every member's of a fleet (their sources add up).
An event counts for the audio from its window's start to the next window's start (the whole window when none follows).

\bExamples:
  genrecast report /var/log/genrecast/genrecast-events.jsonl
  # a whole fleet's logs, rotated ones too, the last day, as a chart
  genrecast report /var/log/genrecast/genrecast-events*.jsonl* \\
      --since 24h --plot today.png

--since takes a duration before now (30m, 24h, 7d) or an ISO time (2026-11-30T12:00:00Z).
Exit status: 0 (an empty log, e.g. just rotated, or a quiet day, reports that it holds no events, and a --plot chart says so); 2 for a bad option, or a log that cannot be read or holds only lines that are not genre events.
"""


#: The chart formats ``--plot`` writes (matplotlib's, by the file's suffix).
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def register(app: typer.Typer) -> None:
    """Add ``report`` to the ``genrecast`` app."""

    @app.command(help=REPORT_HELP)
    def report(
        logs: list[Path] = typer.Argument(..., metavar="LOG...", help="Event logs (JSON lines from the logfile sink)."),
        since: Optional[str] = typer.Option(None, "--since", metavar="WHEN", help="Only events made since then: 24h, 90m, 7d, or an ISO time. \\[default: every event]"),
        plot_path: Optional[Path] = typer.Option(None, "--plot", metavar="FILE.png", help="Also draw the shares as a chart: PNG (1200 x 800 pixels), or SVG or PDF by the name's suffix; needs matplotlib: genrecast\\[plot]."),
        json_output: bool = typer.Option(False, "--json", metavar="", help="Print the seconds per category as JSON instead of the table."),
    ) -> None:
        from genrecast.daemon.cli import fail
        from genrecast.daemon.report import ReportError, parse_since, plot, read_lines, render_table, summarise

        if plot_path is not None and plot_path.suffix.lower() not in PLOT_SUFFIXES:
            fail(f"--plot {plot_path}: name a {', '.join(PLOT_SUFFIXES)} file, e.g. today.png")
        if plot_path is not None and not plot_path.parent.is_dir():
            fail(f"--plot {plot_path}: the folder {plot_path.parent} does not exist; create it or choose another file")
        try:
            start = parse_since(since) if since else None
            summary = summarise(read_lines(logs, progress=True,
                                           warn=lambda message: typer.echo(f"genrecast: warning: {message}", err=True)), start)
            if not summary.events and summary.skipped_lines and not summary.older:
                fail(render_table(summary)[0])  # not an event log at all: a log that cannot be read
            if plot_path is not None:
                plot(summary, plot_path, "no genre events" + (f" since {since}" if since else " in these logs"))
        except ReportError as exc:
            fail(str(exc))
        if json_output:
            typer.echo(json.dumps(summary.to_dict()))
        else:
            typer.echo("\n".join(render_table(summary)))
        if plot_path is not None:
            typer.echo(f"wrote {plot_path}", err=True)
