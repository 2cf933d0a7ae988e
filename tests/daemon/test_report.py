"""``genrecast report``: the share of the time per category from a real run's event log, the chart, --since."""

from __future__ import annotations

import json
import math
import os
import struct
import sys
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from helpers import need, run_cli

from genrecast.daemon.events import GenreEvent
from genrecast.daemon.report import PLOT_DPI, PLOT_INCHES, ReportError, parse_since, plot, summarise

HOP_SECONDS = 1.5
"""Half the 3-s window: overlapping windows, so each event stands for 1.5 s, not 3."""


@pytest.fixture(scope="module")
def real_log(tmp_path_factory, data_dir: Path) -> Path:
    """The logfile sink's log of a real run: a GTZAN jazz clip and a spoken-word clip (30 s each)."""
    jazz = need(data_dir / "gtzan-sample" / "jazz" / "jazz.00000.wav")
    talk = need(data_dir / "music-speech" / "speech" / "acomic2.flac")
    log = tmp_path_factory.mktemp("report") / "events.jsonl"
    proc = run_cli("run", "--source", f"jazz=file:{jazz}", "--source", f"talk=file:{talk}", "--sink", "logfile",
                   "--hop-seconds", str(HOP_SECONDS), env={**os.environ, "GENRECAST_LOGFILE_PATH": str(log)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return log


def _event(seq: int, start: float, genre: str = "jazz") -> GenreEvent:
    return GenreEvent(source="radio", seq=seq, utc="2026-11-30T12:00:00.000Z", audio_start_seconds=start,
                      audio_end_seconds=start + 3.0, state="music", genre=genre, probability=0.9,
                      probabilities={genre: 0.9}, smoothed_genre=genre, smoothed_probability=0.9, changed=False,
                      level_dbfs=-20.0, model_id="test-model")


def _events(log: Path) -> list[GenreEvent]:
    return [GenreEvent.from_json(line) for line in log.read_text().splitlines()]


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_report_numbers_match_the_events(real_log: Path, tmp_path: Path) -> None:
    events = _events(real_log)
    expected: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for e in events:  # each window stands for one hop, the last of its source for its whole length
        name = e.genre if e.state == "music" else e.state
        last = e.seq == max(x.seq for x in events if x.source == e.source)
        expected[e.source][name] += (e.audio_end_seconds - e.audio_start_seconds) if last else HOP_SECONDS
    assert expected["talk"].get("not_music", 0) > 0  # the detector gates the talk, so the states show up

    png = tmp_path / "report.png"
    proc = run_cli("report", str(real_log), "--json", "--plot", str(png))
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["events"] == len(events) and got["skipped_lines"] == 0
    for source in ("jazz", "talk"):
        assert got["seconds_by_source"][source] == pytest.approx(expected[source], abs=1e-3)
        covered = max(e.audio_end_seconds for e in events if e.source == source)
        assert sum(got["seconds_by_source"][source].values()) == pytest.approx(covered, abs=1e-3)  # no overlap counted twice
    assert _png_size(png) == (PLOT_INCHES[0] * PLOT_DPI, PLOT_INCHES[1] * PLOT_DPI) == (1200, 800)

    table = run_cli("report", str(real_log))
    assert table.returncode == 0, table.stderr
    talk_row = next(line for line in table.stdout.splitlines() if line.startswith("talk "))
    share = 100 * expected["talk"]["not_music"] / sum(expected["talk"].values())
    header = table.stdout.splitlines()[0].split()
    assert talk_row.split()[header.index("not_music")] == f"{share:.1f}%"
    assert f"{len(events)} events" in table.stdout


def test_since_leaves_out_older_events(real_log: Path, tmp_path: Path) -> None:
    """A copy of the real log with its first half made three days older: --since 24h counts only the rest."""
    lines = real_log.read_text().splitlines()
    half = len(lines) // 2
    shifted = []
    for i, line in enumerate(lines):
        data = json.loads(line)
        if i < half:
            made = datetime.fromisoformat(data["utc"].replace("Z", "+00:00")) - timedelta(days=3)
            data["utc"] = made.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        shifted.append(json.dumps(data))
    log = tmp_path / "older.jsonl"
    log.write_text("\n".join(shifted) + "\nnot an event\n")
    every = json.loads(run_cli("report", str(log), "--json").stdout)
    recent = json.loads(run_cli("report", str(log), "--json", "--since", "24h").stdout)
    assert every["events"] == len(lines) and every["skipped_lines"] == 1
    assert recent["events"] == len(lines) - half and recent["older"] == half
    assert len(every["seconds_by_hour"]) == len(recent["seconds_by_hour"]) + 1  # the older hour is gone
    table = run_cli("report", str(log)).stdout.strip().splitlines()
    assert table[-1] == f"{len(lines)} events, 1 line that is not a genre event skipped"


def test_overlapping_windows_count_once_and_a_restart_counts_whole() -> None:
    events = [_event(i, 1.5 * i) for i in range(4)] + [_event(0, 0.0)]  # the last one: after a restart
    summary = summarise(e.to_json().encode() for e in events)
    assert summary.by_source["radio"]["jazz"] == pytest.approx(3 * 1.5 + 3 + 3)


def test_parse_since() -> None:
    now = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
    assert parse_since("24h", now) == now - timedelta(hours=24)
    assert parse_since("90m", now) == now - timedelta(minutes=90)
    assert parse_since("2026-11-29T08:00:00Z", now) == datetime(2026, 11, 29, 8, tzinfo=timezone.utc)
    assert parse_since("2026-11-29T08:00", now) == datetime(2026, 11, 29, 8, tzinfo=timezone.utc)
    with pytest.raises(ReportError, match="neither a duration"):
        parse_since("yesterday", now)


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    for args, message in ((["report", str(tmp_path / "missing.jsonl")], "cannot read"),
                          (["report", str(tmp_path), "--since", "soon"], "--since 'soon' is neither"),
                          (["report", str(tmp_path), "--since", "99999999d"], "reaches back before the year 1"),
                          (["report", str(tmp_path), "--plot", str(tmp_path / "out.txt")], "name a .png, .svg, .pdf file"),
                          (["report", str(tmp_path), "--plot", str(tmp_path / "no" / "x.png")], "does not exist; create it")):
        proc = run_cli(*args)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr


def test_a_file_of_no_events_says_what_it_skipped(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not\nan event\nlog\n")
    proc = run_cli("report", str(notes))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == ("genrecast: error: no genre events in these logs (3 lines that are not genre events skipped: "
                                   "give the JSON-lines event logs of the logfile sink)")
    empty = tmp_path / "fresh.jsonl"
    empty.write_text("")  # a daemon that has not logged yet: nothing wrong
    proc = run_cli("report", str(empty))
    assert proc.returncode == 0 and proc.stdout.strip() == "no genre events in these logs"


def test_plot_without_matplotlib_says_what_to_install(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    with pytest.raises(ReportError, match=r"pip install 'genrecast\[plot\]'"):
        plot(summarise([_event(0, 0.0).to_json().encode()]), tmp_path / "x.png")


def test_long_logs_show_days_and_the_busiest_sources(tmp_path: Path) -> None:
    """Beyond MAX_HOUR_ROWS hours the table and chart go by day (the JSON keeps hours); beyond
    MAX_PLOT_SOURCES sources the chart shows the busiest; the chart keeps its size."""
    import dataclasses

    from genrecast.daemon.report import MAX_HOUR_ROWS, MAX_PLOT_SOURCES, render_table

    start = datetime(2026, 11, 20, tzinfo=timezone.utc)
    hours = MAX_HOUR_ROWS + 28
    events = [dataclasses.replace(_event(0, 0.0, genre="jazz" if h % 2 else "metal"), source=f"radio-{h % (MAX_PLOT_SOURCES + 5)}",
                                  utc=(start + timedelta(hours=h)).isoformat(timespec="milliseconds").replace("+00:00", "Z"))
              for h in range(hours)]
    summary = summarise(e.to_json().encode() for e in events)
    assert len(summary.to_dict()["seconds_by_hour"]) == hours
    unit, days, _ = summary.by_time()
    assert unit == "day" and len(days) == math.ceil(hours / 24)
    assert sum(sum(row.values()) for row in days.values()) == pytest.approx(3.0 * hours)
    text = "\n".join(render_table(summary))
    assert "DAY (UTC)" in text and f"({hours} hours, shown by day; --json has every hour)" in text
    png = tmp_path / "long.png"
    plot(summary, png)
    assert _png_size(png) == (1200, 800)


def test_a_rotated_log_that_logrotate_compressed_is_read(real_log: Path, tmp_path: Path) -> None:
    """logrotate's `compress` leaves events-....jsonl.1.gz: report reads it as the plain log; a
    gzip file cut short (one still being compressed) gives its events up to the cut and a warning
    (it ended the whole report in an error, the other logs unread)."""
    import gzip
    import shutil

    rotated = tmp_path / "events.jsonl.1.gz"
    with open(real_log, "rb") as src, gzip.open(rotated, "wb") as dst:
        shutil.copyfileobj(src, dst)
    plain = json.loads(run_cli("report", str(real_log), "--json").stdout)
    both = run_cli("report", str(real_log), str(rotated), "--json")
    assert both.returncode == 0, both.stderr
    assert json.loads(both.stdout)["events"] == 2 * plain["events"]
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(rotated.read_bytes()[: rotated.stat().st_size // 2])
    proc = run_cli("report", str(real_log), str(cut), "--json")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [f"genrecast: warning: {cut} is cut short (a compressed log still being "
                                                "written, or a broken copy); its events up to the cut are counted"]
    assert plain["events"] < json.loads(proc.stdout)["events"] < 2 * plain["events"]


def test_a_log_given_twice_counts_once(real_log: Path, tmp_path: Path) -> None:
    """A glob and a name (or a link) that name one file: its events count once, with a warning
    (they counted twice, doubling every share's seconds)."""
    link = tmp_path / "current.jsonl"
    link.symlink_to(real_log)
    plain = json.loads(run_cli("report", str(real_log), "--json").stdout)
    proc = run_cli("report", str(real_log), str(link), str(real_log), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == plain
    assert proc.stderr.strip().splitlines() == [
        f"genrecast: warning: {path} is {real_log} again (given twice, e.g. by a glob and by name, or through a link); "
        "read once" for path in (link, real_log)]


def test_a_quiet_day_a_time_without_a_zone_and_an_infinite_window(tmp_path: Path) -> None:
    """`--plot` on a log without events exited 2 (a cron job's false alarm on a quiet day, and
    yesterday's chart left in place); an event whose `utc` had no zone was a traceback; one whose
    window ended at Infinity made the table say `inf` hours and `--json` print Infinity."""
    empty = tmp_path / "fresh.jsonl"
    empty.write_text("")
    chart = tmp_path / "today.png"
    chart.write_bytes(b"yesterday's chart")
    proc = run_cli("report", str(empty), "--plot", str(chart), "--since", "24h")
    assert proc.returncode == 0 and proc.stdout.strip() == "no genre events in these logs", proc.stderr
    assert _png_size(chart) == (PLOT_INCHES[0] * PLOT_DPI, PLOT_INCHES[1] * PLOT_DPI)

    naive = _event(0, 0.0).to_dict() | {"utc": "2026-11-30T12:00:00"}
    endless = _event(1, 3.0).to_json().replace('"audio_end_seconds":6.0', '"audio_end_seconds":Infinity')
    assert "Infinity" in endless
    log = tmp_path / "odd.jsonl"
    log.write_text(json.dumps(naive) + "\n" + endless + "\n")
    proc = run_cli("report", str(log), "--json", "--since", "2026-11-30T11:00:00Z")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    report = json.loads(proc.stdout)  # valid JSON: no Infinity
    assert report["events"] == 1 and report["skipped_lines"] == 1, report
    huge = _event(2, 9.0).to_json().replace('"level_dbfs":-20.0', '"level_dbfs":1' + "0" * 400)  # no float holds it
    vast = [_event(k, 0.0).to_dict() | {"audio_end_seconds": 1.7e308} for k in (3, 4)]  # finite, but sums to inf
    assert "0" * 400 in huge
    log.write_text(huge + "\n" + "".join(json.dumps(v) + "\n" for v in vast) + _event(5, 12.0).to_json() + "\n")
    proc = run_cli("report", str(log), "--json")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["events"] == 1 and report["skipped_lines"] == 3, report
