"""The stdout and log-file sinks."""

from __future__ import annotations

import dataclasses
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from genrecast.daemon.events import GenreEvent
from genrecast.plugins import SinkConfigError
from genrecast.plugins.dispatcher import Dispatcher
from genrecast.plugins.logfile_sink import LogfileSink
from genrecast.plugins.sinks import build_sinks
from genrecast.plugins.stdout_sink import StdoutSink, format_line

from helpers import GTZAN_LABELS as LABELS, file_lines

HERE = Path(__file__).parent


def test_stdout_readable_lines(event_factory):
    music = format_line(event_factory(1, genre="rock", probability=0.83, smoothed_genre="rock", changed=True))
    assert music.startswith("2024-05-01T12:00:03.000Z  radio  @3.0s       rock")
    assert "0.83" in music and "smoothed rock" in music and "*changed*" in music
    silence = format_line(event_factory(2, state="silence"))
    assert "silence" in silence and "dBFS" in silence and "None" not in silence
    uncertain = format_line(event_factory(3, state="uncertain", genre="jazz", probability=0.2))
    assert "uncertain" in uncertain and "jazz 0.20" in uncertain
    talk = dataclasses.replace(event_factory(4, genre=None, probability=0.0, smoothed_genre=""), state="not_music",
                               music_probability=0.03)
    not_music = format_line(talk)
    assert "not_music  (music 0.03)" in not_music and "smoothed -" in not_music, not_music
    late = format_line(event_factory(1200, genre="rock", probability=0.83))  # @3600.0s
    widest = format_line(event_factory(5, state="uncertain", genre="classical", probability=0.77))
    lines = [music, silence, uncertain, not_music, late, widest]
    assert len({line.index("smoothed") for line in lines}) == 1, "\n".join(lines)  # the columns line up
    # several sources: the names are padded to the longest configured one, so they line up too
    stream = io.StringIO()
    sink = StdoutSink(stream)
    sink.genrecast_sink_start({}, LABELS, ["radio", "file-silentstart"])
    for source in ("radio", "file-silentstart"):
        sink.genrecast_sink_event(dataclasses.replace(event_factory(1, genre="rock"), source=source))
    assert len({line.index("@3.0s") for line in stream.getvalue().splitlines()}) == 1, stream.getvalue()
    # wide characters take two columns: the clock still lines up on a terminal (it was shifted by one per character)
    from genrecast.plugins.stdout_sink import display_width

    stream = io.StringIO()
    sink = StdoutSink(stream)
    sink.genrecast_sink_start({}, LABELS, ["ラジオ", "radio"])
    for source in ("ラジオ", "radio"):
        sink.genrecast_sink_event(dataclasses.replace(event_factory(1, genre="rock"), source=source))
    columns = {display_width(line[: line.index("@3.0s")]) for line in stream.getvalue().splitlines()}
    assert len(columns) == 1, stream.getvalue()
    assert display_width("ラジオ") == 6 and display_width("café") == 4 and display_width("cafe\u0301") == 4


def test_stdout_json_lines_parse_back(event_factory):
    stream = io.StringIO()
    sink = StdoutSink(stream)
    sink.genrecast_sink_start({"json": True}, LABELS, ["radio"])
    events = [event_factory(i) for i in range(3)] + [event_factory(3, state="silence")]
    for event in events:
        sink.genrecast_sink_event(event)
    assert [GenreEvent.from_json(line) for line in stream.getvalue().splitlines()] == events
    with pytest.raises(SinkConfigError, match="json must be bool"):
        sink.genrecast_sink_start({"json": "yes"}, LABELS, ["radio"])


def test_logfile_rotation_keeps_count_and_every_line_parses(tmp_path, event_factory):
    path = tmp_path / "events.jsonl"
    sinks = build_sinks(["logfile"], {"logfile": {"path": str(path), "max_bytes": 4000, "backups": 2}}, LABELS)
    dispatcher = Dispatcher(sinks)
    dispatcher.start()
    n = 60
    for seq in range(n):
        dispatcher.publish(event_factory(seq))
    dispatcher.stop(10.0)
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == ["events.jsonl", "events.jsonl.1", "events.jsonl.2"]
    seqs = []
    for f in [path.with_name("events.jsonl.2"), path.with_name("events.jsonl.1"), path]:
        assert f.stat().st_size <= 4000
        seqs += [GenreEvent.from_json(line).seq for line in file_lines(f)]
    assert seqs == list(range(seqs[0], n)) and seqs[0] > 0  # the oldest rotated away, the rest in order
    assert dispatcher.stats()["logfile"]["rotations"] >= 3


def test_logfile_reopen_after_logrotate_move(tmp_path, event_factory, waiter):
    path = tmp_path / "events.jsonl"
    dispatcher = Dispatcher(build_sinks(["logfile"], {"logfile": {"path": str(path)}}, LABELS))
    dispatcher.start()
    dispatcher.publish(event_factory(0))
    waiter(lambda: len(file_lines(path)) == 1)
    moved = tmp_path / "events.jsonl.old"
    path.rename(moved)  # what logrotate does, before it sends SIGHUP
    dispatcher.reopen()
    waiter(path.exists, what="the log file to be reopened")
    dispatcher.publish(event_factory(1))
    dispatcher.stop(5.0)
    assert [GenreEvent.from_json(x).seq for x in file_lines(moved)] == [0]
    assert [GenreEvent.from_json(x).seq for x in file_lines(path)] == [1]


def test_logfile_killed_writer_leaves_parseable_lines(tmp_path, waiter, event_factory):
    path = tmp_path / "events.jsonl"
    child = subprocess.Popen([sys.executable, str(HERE / "child_sink.py"), "logfile", str(path)])
    try:
        waiter(lambda: path.exists() and path.stat().st_size > 200_000, what="the child to write")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    data = path.read_bytes()
    lines = data.split(b"\n")
    complete = lines[:-1]  # the last may be cut by the kill
    assert len(complete) > 100
    assert [GenreEvent.from_json(line).seq for line in complete] == list(range(len(complete)))
    # A partial final line (a power cut) is ended by the next writer, so later lines parse.
    with open(path, "ab") as f:
        f.write(b'{"schema_version":1,"source":"cut')
    sink = LogfileSink()
    sink.genrecast_sink_start({"path": str(path)}, LABELS)
    sink.genrecast_sink_event(event_factory(7))
    sink.genrecast_sink_stop(1.0)
    tail = path.read_bytes().split(b"\n")
    assert tail[-1] == b"" and GenreEvent.from_json(tail[-2]).seq == 7
    assert tail[-3].endswith(b'"source":"cut')


def test_logfile_settings_errors(tmp_path, monkeypatch):
    with pytest.raises(SinkConfigError, match="backups must be 0 or more"):
        LogfileSink().genrecast_sink_start({"path": str(tmp_path / "x"), "backups": -1}, LABELS)
    with pytest.raises(SinkConfigError, match="cannot open"):
        LogfileSink().genrecast_sink_start({"path": str(tmp_path / "missing-dir" / "x")}, LABELS)
    monkeypatch.chdir(tmp_path)  # a relative path where the working folder has no such folder: say which folder
    with pytest.raises(SinkConfigError) as raised:
        LogfileSink().genrecast_sink_start({"path": "nodir/ev.jsonl"}, LABELS)
    assert str(raised.value) == (f"[logfile] cannot open nodir/ev.jsonl (relative to the working folder: {tmp_path}/nodir/"
                                 "ev.jsonl): No such file or directory; set [logfile] path (GENRECAST_LOGFILE_PATH) to a "
                                 "file in a folder this user may write")
    monkeypatch.setenv("LOGS_DIRECTORY", str(tmp_path))
    sink = LogfileSink()
    sink.genrecast_sink_start({"path": "relative.jsonl"}, LABELS)
    sink.genrecast_sink_stop(1.0)
    assert sink.path == tmp_path / "relative.jsonl" and sink.path.exists()


def test_run_with_standard_output_closed_is_one_line(data_dir):
    """`genrecast run ... >&-`: one line and exit 2 at the start (it was a traceback for every event)."""
    from helpers import EXE

    clip = data_dir / "gtzan-sample" / "jazz" / "jazz.00016.wav"
    proc = subprocess.run(["bash", "-c", f'exec "$0" run --source "file:$1" >&-', EXE, str(clip)],
                          capture_output=False, stderr=subprocess.PIPE, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "genrecast: error: stdout: the standard output is closed; give it somewhere to go (> events.txt, or > /dev/null "
        "to drop them), or choose other sinks (--sink logfile)"), proc.stderr
    assert "Traceback" not in proc.stderr
