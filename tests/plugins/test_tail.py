"""``genrecast tail``: JSON from the broker, the live view in a terminal (tmux), following a file."""

from __future__ import annotations

import contextlib
import json
import queue
import signal
import subprocess
import threading
import uuid

import pytest

from helpers import EXE, Terminal, wait_for
from mqtt_services import publish

from genrecast.daemon.events import GenreEvent
from genrecast.plugins.tail import NOTICE_PREFIX, TailView, parse_broker, TailError

pytestmark = [pytest.mark.service]



class Lines:
    """Reads a pipe line by line in a thread, so tests can wait on lines with a deadline."""

    def __init__(self, pipe) -> None:
        self.queue: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=lambda: [self.queue.put(line) for line in pipe], daemon=True).start()

    def wait_for(self, predicate, timeout_seconds: float = 20.0) -> str:
        import time

        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            try:
                line = self.queue.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(line)
            if predicate(line):
                return line
        pytest.fail(f"no matching line within {timeout_seconds} s; seen: {self.seen[-10:]}")


@contextlib.contextmanager
def _tail(*args: str):
    """A running `genrecast tail ARGS` (text pipes); Ctrl-C at the end must exit 0."""
    proc = subprocess.Popen([EXE, "tail", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield proc
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_tail_json_prints_events_and_skips_garbage(broker, event_factory):
    prefix = f"gc{uuid.uuid4().hex[:6]}"
    proc = subprocess.Popen([EXE, "tail", "--broker", f"{broker.host}:{broker.port}", "--prefix", prefix, "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        errors = Lines(proc.stderr)
        errors.wait_for(lambda line: "subscribed" in line)
        events = [event_factory(seq) for seq in range(5)]
        valid = json.loads(events[0].to_json())
        garbage = [b"not json", b'{"schema_version": 99}', b"", b"\x00\xff" * 100, b"[]", b"null",
                   b'{"schema_version": 1}', b"x" * 200_000, json.dumps({**valid, "probability": "high"}).encode(),
                   json.dumps({**valid, "state": "dancing"}).encode()]
        payloads = garbage + [e.to_json().encode() for e in events]
        publish(broker, [(f"{prefix}/kitchen/radio/event", payload, False) for payload in payloads])
        out = Lines(proc.stdout)
        for event in events:
            assert GenreEvent.from_json(out.wait_for(lambda line: True)) == event
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
        errors.wait_for(lambda line: f"5 events shown, {len(garbage)} unparseable payloads skipped" in line)
        assert not any("Traceback" in line for line in errors.seen)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_tail_file_follows_and_skips_a_partial_line(tmp_path, event_factory):
    log = tmp_path / "events.jsonl"
    log.write_text("\n".join(event_factory(seq).to_json() for seq in range(3)) + "\n" + '{"partial')
    with _tail("--file", str(log), "--json") as proc:
        out = Lines(proc.stdout)
        assert [GenreEvent.from_json(out.wait_for(lambda line: True)).seq for _ in range(3)] == [0, 1, 2]
        with open(log, "a") as f:  # the writer finishes the cut line (as the logfile sink does), then more
            f.write("\n" + event_factory(3).to_json() + "\n")
        assert GenreEvent.from_json(out.wait_for(lambda line: True)).seq == 3
    assert "1 unparseable" in proc.stderr.read()


def test_tail_json_into_head_ends_quietly(tmp_path, event_factory):
    """`genrecast tail --json | head -n 1`: once head has gone, tail ends with status 0 and no error,
    with no other event coming (it waited for the next write to find the pipe closed, for ever)."""
    log = tmp_path / "events.jsonl"
    log.write_text(event_factory(0).to_json() + "\n")
    tail = subprocess.Popen([EXE, "tail", "--file", str(log), "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    head = subprocess.Popen(["head", "-n", "1"], stdin=tail.stdout, stdout=subprocess.PIPE, text=True)
    tail.stdout.close()  # head holds the only reading end
    try:
        assert GenreEvent.from_json(head.communicate(timeout=30)[0]).seq == 0
        wait_for(lambda: tail.poll() is not None, 30, "tail to end after its reader went away")
        assert tail.returncode == 0
        assert tail.stderr.read().splitlines() == [f"{NOTICE_PREFIX}following {log}"]  # no error, no traceback
    finally:
        for proc in (tail, head):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_tail_live_view_in_a_terminal(broker, event_factory, waiter):
    prefix = f"gc{uuid.uuid4().hex[:6]}"
    with Terminal(f"{EXE} tail --broker {broker.host}:{broker.port} --prefix {prefix}", width=100, height=50) as term:
        waiter(lambda: "subscribed" in term.screen(), what="tail to subscribe")
        events = [event_factory(seq, genre="jazz" if seq % 2 else "metal", smoothed_genre="metal") for seq in range(6)]
        publish(broker, [(f"{prefix}/kitchen/radio/event", e.to_json().encode(), False) for e in events])
        text = waiter(lambda: "events 6" in term.screen() and term.screen(), what="the view to show the events")
        assert "radio" in text and "jazz" in text and "smoothed  metal" in text and "top 3" in text
        assert "recent    me ja me ja me ja" in text
        assert all(len(line) <= 80 for line in text.splitlines())
        after = term.interrupt(what="tail to exit")
        assert "EXIT=0" in after and "Traceback" not in after


def test_view_and_broker_parsing(event_factory):
    view = TailView("test")
    for genre in ["rock", "reggae", "country", "classical"]:
        view.update(event_factory(0, genre=genre))
    assert len(set(view.codes.values())) == len(view.codes)
    assert all(len(line) <= 80 for line in view.render())
    assert parse_broker("broker.lan") == ("broker.lan", None)
    assert parse_broker("127.0.0.1:1884") == ("127.0.0.1", 1884)
    assert parse_broker("[::1]:1883") == ("::1", 1883)
    assert parse_broker("fe80::1") == ("fe80::1", None)
    with pytest.raises(TailError, match="is not HOST, HOST:PORT"):
        parse_broker("a:b:c")
    with pytest.raises(TailError):
        parse_broker("host:99999")


def test_tail_errors_are_one_line(tmp_path):
    proc = subprocess.run([EXE, "tail", "--broker", "127.0.0.1:1"], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert proc.stderr.startswith("genrecast: error: cannot connect") and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "is a broker running there? give its address with --broker" in proc.stderr
    for args, says in [(["--broker", ""], "broker '' has no host"), (["--prefix", "#"], "prefix '#' must be")]:
        proc = subprocess.run([EXE, "tail", *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and says in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def test_tail_file_waits_for_a_missing_file_and_says_so(tmp_path, event_factory):
    log = tmp_path / "later.jsonl"
    with _tail("--file", str(log), "--json") as proc:
        errors, out = Lines(proc.stderr), Lines(proc.stdout)
        errors.wait_for(lambda line: f"waiting for {log} to appear" in line and "does not exist yet" in line)
        log.write_text("".join(event_factory(seq).to_json() + "\n" for seq in range(24)))
        seen = [GenreEvent.from_json(out.wait_for(lambda line: True)).seq for _ in range(24)]
        assert seen == list(range(24))  # from its first line, not its last 10: it appeared while we waited
        errors.wait_for(lambda line: f"following {log}" in line)
    deep = tmp_path / ("a-rather-long-folder-name-" * 3) / "later.jsonl"
    deep.parent.mkdir()
    with _tail("--file", str(deep)) as proc:  # the view, into a pipe: plain frames, lines uncut
        Lines(proc.stdout).wait_for(lambda line: line.rstrip().endswith("(it does not exist yet; Ctrl-C quits)"))


def test_tail_file_in_a_missing_folder_is_one_line(tmp_path):
    proc = subprocess.run([EXE, "tail", "--file", str(tmp_path / "nowhere" / "events.jsonl")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"genrecast: error: cannot follow {tmp_path / 'nowhere' / 'events.jsonl'}: the folder {tmp_path / 'nowhere'} "
        "does not exist (check the path, or the logfile sink's [logfile] path)"]


def test_tail_view_into_a_pipe_writes_no_control_codes(tmp_path, event_factory):
    log = tmp_path / "events.jsonl"
    log.write_text("".join(event_factory(seq, genre="jazz").to_json() + "\n" for seq in range(3)))
    with _tail("--file", str(log)) as proc:
        out = Lines(proc.stdout)
        out.wait_for(lambda line: line.startswith("events 3"))
    text = "".join(out.seen)
    assert "jazz" in text and "\x1b" not in text


def test_control_codes_in_a_payload_are_shown_escaped_not_sent_to_the_terminal(tmp_path, event_factory):
    """Anyone who may publish on the topics set the operator's window title, cleared the screen and
    turned the text red and blinking through a source name and a genre."""
    import dataclasses

    evil = dataclasses.replace(event_factory(0, genre="rock"), source="\x1b]0;pwned\x07\x1b[2J\x1b[31mEVIL",
                               genre="rock\x1b[5m")
    log = tmp_path / "events.jsonl"
    log.write_text(evil.to_json() + "\n")
    with _tail("--file", str(log)) as proc:
        out = Lines(proc.stdout)
        out.wait_for(lambda line: line.startswith("events 1"))
        out.wait_for(lambda line: line.startswith("legend"))
    text = "".join(out.seen)
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b]0;pwned\\x07\\x1b[2J\\x1b[31mEVIL  #0" in text and "=rock\\x1b[5m" in text


def test_view_shows_not_music_with_its_music_probability(event_factory):
    import dataclasses

    view = TailView("test")
    view.update(event_factory(0, genre="rock"))
    talk = dataclasses.replace(event_factory(1, genre="rock"), state="not_music", genre=None, probability=0.0,
                               probabilities={}, smoothed_genre=None, smoothed_probability=0.0,
                               music_probability=0.02, smoothed_music_probability=0.31)
    view.update(talk)
    text = "\n".join(view.render())
    assert "now       not_music (music 0.02)" in text
    assert "recent    ro --" in text and "--=not_music" in text
    assert all(len(line) <= 80 for line in view.render())


def test_view_keeps_fleet_members_apart(event_factory) -> None:
    """Two daemons with a source of the same name: two entries, each named with its member."""
    from genrecast.plugins.tail import member_of

    assert member_of("genrecast/box-1/radio/event") == "box-1" and member_of("genrecast/radio") is None
    view = TailView("test")
    view.update(event_factory(0, genre="jazz"), "box-1")
    view.update(event_factory(0, genre="metal"), "box-2")
    text = "\n".join(view.render())
    assert "members 2" in text
    assert [line.split()[0:3] for line in view.render() if " @ " in line] == [["radio", "@", "box-1"], ["radio", "@", "box-2"]]


def test_view_says_when_a_source_is_band_limited(event_factory):
    import dataclasses

    view = TailView("test")
    view.update(dataclasses.replace(event_factory(0, genre="rock"), bandwidth_hz=10810.0, band_limited=False))
    assert "band-limited" not in "\n".join(view.render())
    view.update(dataclasses.replace(event_factory(1, genre="rock"), bandwidth_hz=3962.0, band_limited=True))
    lines = view.render()
    assert any(line.endswith("dBFS  band-limited to 4.0 kHz") for line in lines), lines


def test_view_redraws_when_only_unparseable_payloads_arrive(event_factory):
    """The view's `skipped` counter is shown as it grows, not only at exit."""
    import io

    from genrecast.plugins.tail import Tail

    out = io.StringIO()
    tail = Tail(TailView("test"), json_output=False, out=out)
    tail.draw(force=True)
    assert "skipped 0" in out.getvalue()
    tail.handle(b"not json")
    tail.handle(b'{"no": "event"}')
    tail.draw(force=True)
    assert "skipped 2" in out.getvalue()
