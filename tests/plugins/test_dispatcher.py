"""The dispatcher isolates sinks: raising, blocking and slow sinks delay no one."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from genrecast.plugins import SinkConfigError
from genrecast.plugins.dispatcher import Dispatcher


class FakeSink:
    def __init__(self, name: str, behaviour: str = "ok", gate: threading.Event | None = None) -> None:
        self.name, self.behaviour, self.gate = name, behaviour, gate
        self.events: list = []
        self.started = self.stopped = False
        self.reopened_in: list[str] = []
        self.in_handle = threading.Event()

    def start(self) -> None:
        if self.behaviour == "bad-config":
            raise SinkConfigError(f"[{self.name}] bad")
        if self.behaviour == "start-crash":
            raise RuntimeError("boom")
        if self.behaviour == "start-exit":
            raise SystemExit(3)
        if self.behaviour == "start-slow":
            assert self.gate is not None
            self.gate.wait()
        self.started = True

    def handle(self, event) -> None:
        self.in_handle.set()
        if self.behaviour == "raise":
            raise RuntimeError(f"cannot handle {event.seq}")
        if self.behaviour == "exit":
            raise SystemExit(3)
        if self.behaviour == "mutate":
            event.probabilities.clear()
            event.probabilities["HACKED"] = 1.0
        if self.behaviour == "block":
            assert self.gate is not None
            self.gate.wait()
        if self.behaviour == "slow":
            time.sleep(0.02)
        self.events.append(event)

    def stop(self, deadline_seconds: float) -> None:
        self.stopped = True

    def reopen(self) -> None:
        self.reopened_in.append(threading.current_thread().name)

    def stats(self) -> dict:
        return {"own": 1}


def test_raising_blocking_and_slow_sinks_do_not_delay_others(event_factory, waiter, caplog):
    gate = threading.Event()
    good, raising = FakeSink("good"), FakeSink("raising", "raise")
    blocking, slow = FakeSink("blocking", "block", gate), FakeSink("slow", "slow")
    dispatcher = Dispatcher([raising, blocking, slow, good], queue_size=1000, error_log_interval_seconds=3600,
                            queue_sizes={"blocking": 10, "slow": 10})
    dispatcher.start()
    n = 50
    try:
        with caplog.at_level(logging.ERROR, logger="genrecast.plugins.dispatcher"):
            dispatcher.publish(event_factory(0))
            waiter(blocking.in_handle.is_set, what="the blocking sink to take the first event")
            for seq in range(1, n):
                dispatcher.publish(event_factory(seq))
            waiter(lambda: len(good.events) == n, what="the good sink to get every event")
            # the good sink is done while the blocking one still holds its first event
            assert [e.seq for e in good.events] == list(range(n))
            assert blocking.in_handle.is_set() and not blocking.events
            waiter(lambda: dispatcher.stats()["raising"]["errors"] == n, what="every error counted")
            stats = dispatcher.stats()
            assert stats["blocking"]["dropped"] == n - 1 - 10  # one in handle(), ten queued
            assert stats["good"] == {"own": 1, "delivered": n, "errors": 0, "dropped": 0, "queue_depth": 0,
                                     "lost_to_errors": 0}
            assert stats["blocking"]["queue_depth"] == 11  # one in handle(), ten queued
            error_lines = [r for r in caplog.records if "raising" in r.getMessage()]
            assert len(error_lines) == 1, "errors are logged at most once per interval"
    finally:
        gate.set()
        dispatcher.stop(5.0)
    assert [e.seq for e in blocking.events] == [0] + list(range(n - 10, n))  # the oldest were dropped
    final = dispatcher.stats()
    assert final["slow"]["delivered"] + final["slow"]["dropped"] == n  # every event accounted for
    assert [e.seq for e in slow.events] == sorted(e.seq for e in slow.events) and slow.events[-1].seq == n - 1
    assert good.stopped and slow.stopped and raising.stopped


def test_stop_drains_queues_within_the_deadline(event_factory):
    sink = FakeSink("slow", "slow")
    dispatcher = Dispatcher([sink], queue_size=100)
    dispatcher.start()
    for seq in range(20):
        dispatcher.publish(event_factory(seq))
    dispatcher.stop(30.0)
    assert [e.seq for e in sink.events] == list(range(20)) and sink.stopped


def test_stop_abandons_a_blocked_sink_at_the_deadline(event_factory, waiter, caplog):
    gate = threading.Event()
    blocked, good = FakeSink("blocked", "block", gate), FakeSink("good")
    dispatcher = Dispatcher([blocked, good])
    dispatcher.start()
    dispatcher.publish(event_factory(0))
    waiter(blocked.in_handle.is_set)
    dispatcher.publish(event_factory(1))
    with caplog.at_level(logging.WARNING):
        dispatcher.stop(0.2)
    assert good.stopped and "blocked did not stop within 0.2 s; abandoning it with 2 events undelivered" in caplog.text
    assert dispatcher.stats()["blocked"]["queue_depth"] == 2  # the one in its hands counts
    from genrecast.daemon.service import undelivered

    assert undelivered(dispatcher) == {"blocked": 2}
    gate.set()


def test_events_a_sink_raised_on_count_as_undelivered_unless_it_keeps_them(event_factory, waiter):
    """A plugin that fails on every event makes `run` exit 1 like a broker that never came; a sink
    that keeps what it failed on for a retry (and reports its own queue_depth) counts them there."""
    from genrecast.daemon.service import undelivered

    class KeepingSink(FakeSink):
        def stats(self) -> dict:
            return {"queue_depth": 0}  # it retried and delivered them

    raising, keeping, good = FakeSink("raising", "raise"), KeepingSink("keeping", "raise"), FakeSink("good")
    dispatcher = Dispatcher([raising, keeping, good], error_log_interval_seconds=3600)
    dispatcher.start()
    for seq in range(3):
        dispatcher.publish(event_factory(seq))
    dispatcher.stop(10.0)
    stats = dispatcher.stats()
    assert stats["raising"]["errors"] == stats["raising"]["lost_to_errors"] == 3
    assert stats["keeping"]["errors"] == 3 and stats["keeping"]["lost_to_errors"] == 0
    assert undelivered(dispatcher) == {"raising": 3}


def test_reopen_runs_in_the_sink_thread(event_factory, waiter):
    sink = FakeSink("file")
    dispatcher = Dispatcher([sink])
    dispatcher.start()
    dispatcher.reopen()
    waiter(lambda: sink.reopened_in, what="reopen")
    assert sink.reopened_in == ["sink-file"]
    dispatcher.stop(1.0)


def test_start_errors_stop_the_started_sinks():
    first = FakeSink("first")
    with pytest.raises(SinkConfigError, match=r"\[bad\] bad"):
        Dispatcher([first, FakeSink("bad", "bad-config")]).start()
    assert first.stopped
    with pytest.raises(SinkConfigError, match="sink crash failed to start: RuntimeError: boom"):
        Dispatcher([FakeSink("crash", "start-crash")]).start()
    # a plugin that refuses its settings stops the start before a built-in sink (MQTT) does anything
    builtin = FakeSink("mqtt")
    builtin.builtin = True
    with pytest.raises(SinkConfigError, match=r"\[badcfg\] bad"):
        Dispatcher([builtin, FakeSink("badcfg", "bad-config")]).start()
    assert not builtin.started


def test_every_sinks_settings_are_checked_before_any_sink_starts(tmp_path):
    """The MQTT sink (started first: the user's order) announced the device to Home Assistant, then
    the log file's folder turned out missing and the run ended; the real built-in sinks' checks now
    come before any start, and a check that crashes is named."""
    from genrecast.plugins.sinks import build_sinks

    missing = tmp_path / "nowhere" / "events.jsonl"
    stdout, logfile = build_sinks(["stdout", "logfile"], {"logfile": {"path": str(missing)}}, ["rock", "jazz"])
    started = []
    stdout.start = lambda: started.append("stdout")  # the real check stays; the start only records itself
    with pytest.raises(SinkConfigError, match=f"its folder {missing.parent} does not exist"):
        Dispatcher([stdout, logfile]).start()
    assert started == []
    (folder,) = build_sinks(["logfile"], {"logfile": {"path": str(tmp_path)}}, ["rock", "jazz"])
    with pytest.raises(SinkConfigError, match=f"path {tmp_path} is a folder; give a file in it"):
        folder.check()  # `config check` said OK, `run` then failed on "Is a directory"
    crashing = FakeSink("crashy")
    crashing.check = lambda: 1 / 0
    with pytest.raises(SinkConfigError, match="sink crashy: its settings check failed: ZeroDivisionError"):
        Dispatcher([FakeSink("fine"), crashing]).start()


def test_a_log_folder_gone_at_reopen_is_one_line_and_its_events_wait(tmp_path, event_factory, caplog, waiter):
    """SIGHUP with the log folder gone wrote a traceback; the events wait and are written once the
    folder is back (the next event opens the file again)."""
    from genrecast.plugins.sinks import build_sinks

    folder = tmp_path / "logs"
    folder.mkdir()
    (sink,) = build_sinks(["logfile"], {"logfile": {"path": str(folder / "events.jsonl")}}, ["rock", "jazz"])
    dispatcher = Dispatcher([sink])
    dispatcher.start()
    dispatcher.publish(event_factory(0))
    waiter(lambda: (folder / "events.jsonl").exists() and (folder / "events.jsonl").read_text().count("\n") == 1)
    (folder / "events.jsonl").unlink()
    folder.rmdir()
    with caplog.at_level(logging.INFO):
        dispatcher.reopen()
        waiter(lambda: "cannot reopen" in caplog.text, what="the reopen's line")
        folder.mkdir()
        dispatcher.publish(event_factory(1))
        waiter(lambda: (folder / "events.jsonl").exists(), what="the file, written again")
        dispatcher.stop(5.0)
    assert f"[logfile] cannot reopen {folder / 'events.jsonl'}: No such file or directory; events wait" in caplog.text
    assert "Traceback" not in caplog.text and all(r.exc_info is None for r in caplog.records)
    assert [line for line in (folder / "events.jsonl").read_text().splitlines()][0].startswith('{"source"')


class HoldingSink(FakeSink):
    """Takes every event into its own queue and delivers none (an MQTT sink whose broker is away)."""

    def stats(self) -> dict:
        return {"dropped": 1, "queue_depth": len(self.events) - 1}


def _closing_log(sink, event_factory, caplog) -> str:
    """Ten events through a dispatcher of ``sink`` alone, then its stop: the log it wrote."""
    dispatcher = Dispatcher([sink], queue_size=100)
    dispatcher.start()
    for seq in range(10):
        dispatcher.publish(event_factory(seq))
    with caplog.at_level(logging.INFO, logger="genrecast.plugins.dispatcher"):
        dispatcher.stop(30.0)
    return caplog.text


def test_the_closing_count_leaves_out_what_the_sink_never_delivered(event_factory, caplog):
    sink = HoldingSink("held")
    assert "sink held: 0 delivered, 0 errors, 10 dropped" in _closing_log(sink, event_factory, caplog)
    assert len(sink.events) == 10


class FailingBacklogSink(FakeSink):
    """Raises on every event and keeps it in a backlog it drops at stop (the logfile sink on a full disk)."""

    def __init__(self, name: str) -> None:
        super().__init__(name, "raise")

    def stats(self) -> dict:
        return {"dropped": 10, "queue_depth": 0}


def test_the_closing_count_never_goes_below_zero(event_factory, caplog):
    assert "sink full: 0 delivered, 10 errors, 10 dropped" in _closing_log(FailingBacklogSink("full"), event_factory, caplog)


class RetryingSink(FakeSink):
    """Raises on its first three events but keeps them, and writes them with the next one (the logfile
    sink on a disk that was full for a moment)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.kept: list = []

    def handle(self, event) -> None:
        self.kept.append(event)
        if len(self.events) + len(self.kept) <= 3:
            raise OSError(28, "No space left on device")
        self.events += self.kept
        self.kept = []

    def stats(self) -> dict:
        return {"dropped": 0, "queue_depth": len(self.kept)}


def test_the_closing_count_counts_what_a_sink_kept_and_wrote_later(event_factory, caplog):
    """It said `7 delivered, 3 errors` of a log that holds all ten lines."""
    sink = RetryingSink("retrying")
    assert "sink retrying: 10 delivered, 3 errors, 0 dropped" in _closing_log(sink, event_factory, caplog)
    assert [e.seq for e in sink.events] == list(range(10))


def test_a_sink_that_calls_sys_exit_is_counted_and_logged_and_keeps_its_worker(event_factory, waiter, caplog):
    """A plugin's sys.exit() (any BaseException) ended its worker thread silently: every later event
    queued up undelivered and nothing said why."""
    exiting = FakeSink("exiting", "exit")
    dispatcher = Dispatcher([exiting], error_log_interval_seconds=3600)
    dispatcher.start()
    with caplog.at_level(logging.ERROR, logger="genrecast.plugins.dispatcher"):
        for seq in range(5):
            dispatcher.publish(event_factory(seq))
        waiter(lambda: dispatcher.stats()["exiting"]["errors"] == 5, what="every event's error counted")
    assert "sink exiting failed on an event (1 errors so far): SystemExit: 3" in caplog.text
    assert dispatcher.stats()["exiting"]["queue_depth"] == 0
    dispatcher.stop(1.0)
    assert exiting.stopped


def test_a_stuck_sink_s_drops_are_logged_while_it_is_stuck(event_factory, waiter, caplog):
    """Drops were logged only after an event finished, so a sink stuck in one event dropped
    events without a word until shutdown; the abandon line counts them too."""
    gate = threading.Event()
    stuck = FakeSink("stuck", "block", gate)
    dispatcher = Dispatcher([stuck], queue_size=3, error_log_interval_seconds=3600)
    dispatcher.start()
    try:
        with caplog.at_level(logging.WARNING, logger="genrecast.plugins.dispatcher"):
            dispatcher.publish(event_factory(0))
            waiter(stuck.in_handle.is_set, what="the sink to take the first event")
            for seq in range(1, 10):
                dispatcher.publish(event_factory(seq))
            assert "sink stuck is falling behind: 1 events dropped so far (queue of 3 full)" in caplog.text
            assert len([r for r in caplog.records if "falling behind" in r.getMessage()]) == 1  # rate limited
            dispatcher.stop(0.2)
        assert ("sink stuck did not stop within 0.2 s; abandoning it with 4 events undelivered (0 delivered, 0 errors, "
                "6 dropped before)") in caplog.text
    finally:
        gate.set()


def test_a_sink_that_changes_an_event_changes_no_other_sink_s(event_factory, waiter):
    mutating, good = FakeSink("mutating", "mutate"), FakeSink("good")
    dispatcher = Dispatcher([mutating, good])
    dispatcher.start()
    event = event_factory(0)
    original = dict(event.probabilities)
    dispatcher.publish(event)
    dispatcher.stop(5.0)
    assert mutating.events[0].probabilities == {"HACKED": 1.0}
    assert good.events[0].probabilities == original == event.probabilities


def test_a_sink_whose_start_calls_sys_exit_is_a_config_error():
    good, exiting = FakeSink("good"), FakeSink("exiting", "start-exit")
    with pytest.raises(SinkConfigError, match="sink exiting failed to start: SystemExit: 3"):
        Dispatcher([good, exiting]).start()


def test_a_sink_still_starting_is_named(monkeypatch, waiter, caplog):
    """A plugin whose start blocks held `run` without a word."""
    import genrecast.plugins.dispatcher as dispatcher_module

    monkeypatch.setattr(dispatcher_module, "START_WARNING_SECONDS", 0.05)
    gate = threading.Event()
    slow = FakeSink("slowstart", "start-slow", gate)
    dispatcher = Dispatcher([slow])
    starting = threading.Thread(target=dispatcher.start)
    with caplog.at_level(logging.WARNING, logger="genrecast.plugins.dispatcher"):
        starting.start()
        waiter(lambda: "sink slowstart is still starting after 0.05 s" in caplog.text, what="the warning")
        gate.set()
        starting.join(5.0)
    assert slow.started
    dispatcher.stop(1.0)
