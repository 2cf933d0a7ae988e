"""The long-running service around the pipeline: sinks, signals, sd_notify and the watchdog."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

from genrecast.daemon.config import Config
from genrecast.daemon.notify import Notifier, watchdog_seconds

log = logging.getLogger("genrecast.daemon")

#: Seconds the sinks get to flush at shutdown (below the unit's TimeoutStopSec=20).
STOP_DEADLINE_SECONDS = 8.0

#: Exit status of `genrecast run` when a source ended on its own without any audio (an empty
#: file or stdin, a wrong path in a pipe) or stopped on an error (an undecodable or truncated
#: file), or when a run that ended with its sources left events undelivered (a broker that never
#: came): a log line names it, scripts can tell it from success, and systemd's
#: ``Restart=on-failure`` restarts the service.
EXIT_NO_AUDIO = 1


def open_sources(config: Config) -> list:
    """This member's sources (all configured ones without ``shard``: :mod:`genrecast.daemon.shard`),
    each under its given or derived name (:mod:`genrecast.daemon.naming`)."""
    from genrecast.daemon.shard import member_sources

    return [_open_source(config, name, spec) for name, spec in member_sources(config)]


def _open_source(config: Config, name: str, spec: str):
    from genrecast.daemon.sources import parse_source

    return parse_source(spec, name=name, realtime=config["input.realtime"], loop=config["input.loop"],
                        stdin_format=config["input.format"], stdin_rate=config["input.rate"],
                        stdin_channels=config["input.channels"], stall_seconds=config["input.stall_seconds"])


def source_problems(config: Config) -> list[str]:
    """What ``run`` would refuse in the configured sources, as ``run`` prints it: two sources with
    one name or a bad shard (one message), else every source whose spec can never work (an
    unknown spec, a missing or undecodable file), one message each. Nothing is started."""
    from genrecast.daemon.shard import member_sources
    from genrecast.daemon.sources import SourceError

    try:
        named = member_sources(config)
    except ValueError as exc:  # ShardError is a ValueError
        return [str(exc)]
    problems = []
    for name, spec in named:
        try:
            _open_source(config, name, spec)
        except (SourceError, ValueError, OSError) as exc:
            problems.append(str(exc))
    return problems


def sink_problems(config: Config) -> tuple[list[str], list[str]]:
    """What ``run`` would refuse in the configured sinks, and the sinks ``config check`` cannot
    check. Problems: a name no built-in sink or installed (and allowed) plugin has, or one named
    twice (one message, as ``run`` prints it); then each sink's settings, as its
    :func:`~genrecast.plugins.hookspecs.genrecast_sink_check` finds them (an empty ``[mqtt]
    host``, a ``[logfile] path`` whose folder does not exist, a plugin's own). Unchecked: the
    plugins without that hook, whose settings only ``run`` checks, when it starts them."""
    from genrecast.plugins import SinkConfigError
    from genrecast.plugins.sinks import build_sinks

    try:
        sinks = build_sinks(config["sinks"], {name: config.section(name) for name in config["sinks"]}, ["a", "b"])
    except SinkConfigError as exc:  # not started: names only
        return [str(exc)], []
    problems, unchecked = [], []
    for sink in sinks:
        if any(p.startswith(f"{sink.name}.") for p in config.problems):  # a bad value: said once
            continue
        try:
            if not sink.check():
                unchecked.append(sink.name)
        except SinkConfigError as exc:
            problems.append(str(exc))
        except Exception as exc:  # a third-party check that fails is the plugin's problem, said as such
            problems.append(f"[{sink.name}] the plugin's settings check failed ({type(exc).__name__}: {exc}); "
                            "report it to the plugin's authors")
    return problems, unchecked


def config_problems(config: Config) -> tuple[list[str], list[str]]:
    """Every problem ``config check`` reports: the values' own, then, where the keys they rest
    on are sound, the sources' (:func:`source_problems`) and the sinks' (:func:`sink_problems`);
    and the sinks whose settings only ``run`` checks."""
    problems, unchecked = list(config.problems), []
    if not any(p.startswith("model.") for p in problems) and (problem := bundle_problem(config)):
        problems.append(problem)
    if not any(p.startswith(("sources", "input.", "shard")) for p in problems):
        problems += source_problems(config)
    if not any(p.startswith("sinks") for p in problems):
        sinks, unchecked = sink_problems(config)
        problems += sinks
    return problems, unchecked


def bundle_problem(config: Config) -> str | None:
    """What ``run`` would refuse in the ``model.bundle`` it loads (a folder without a bundle.json,
    broken JSON, a model file that does not fit it: :func:`genrecast.daemon.bundle.load_bundle`'s
    checks), or None; the built-in model (an empty value) is not checked."""
    from genrecast.daemon.bundle import BundleError, load_bundle

    if not config["model.bundle"]:
        return None
    try:
        load_bundle(config["model.bundle"], require="keras" if config["model.backend"] == "keras" else "tflite")
    except (BundleError, ValueError, OSError) as exc:
        return f"model.bundle: {exc}"
    return None


def pipeline_settings(config: Config):
    from genrecast.daemon.pipeline import PipelineSettings
    from genrecast.daemon.smoothing import SmoothingSettings

    return PipelineSettings(
        hop_seconds=config["windowing.hop_seconds"] or None,
        smoothing=SmoothingSettings(
            silence_dbfs=config["smoothing.silence_dbfs"], min_confidence=config["smoothing.min_confidence"],
            windows=config["smoothing.windows"], hold_windows=config["smoothing.hold_windows"],
        ),
    )


def open_publisher(config: Config, labels: list[str]):
    """The started sink dispatcher events go to: ``publish(event)``, ``stop(deadline_seconds)``, ``reopen()``."""
    from genrecast.plugins.publisher import open_sink_publisher

    return open_sink_publisher(config, labels)


class Watchdog:
    """Pets systemd's watchdog only while the pipeline makes progress: its classifier loop
    is alive and some source is live (audio arrived recently, or its reconnect loop is
    waiting to retry a missing device or a server that is down: restarting the service
    would not bring either back). Also keeps ``STATUS=`` current."""

    def __init__(self, pipeline, notifier: Notifier, timeout_seconds: float | None) -> None:
        self.pipeline, self.notifier, self.timeout_seconds = pipeline, notifier, timeout_seconds
        self.ready = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="watchdog", daemon=True)

    @property
    def limit_seconds(self) -> float:
        return self.timeout_seconds or 30.0

    def _has_audio(self, source, within_seconds: float | None = None) -> bool:
        heard = self.pipeline.states[source.name].last_audio_monotonic
        return heard is not None and (within_seconds is None or time.monotonic() - heard < within_seconds)

    def _waiting(self) -> list[str]:
        return [s.name for s in self.pipeline.sources if getattr(s, "waiting_to_retry", False)]

    def _crashed(self) -> list[str]:
        """Live sources (streams, microphones) whose thread ended on an unexpected error: they
        retry everything they expect, so only a restart of the service brings them back."""
        return [s.name for s in self.pipeline.sources
                if not getattr(s, "finite", False) and s.name in self.pipeline.failed_sources]

    def healthy(self) -> bool:
        """The classifier loop made progress within the limit, no live source crashed, and some
        source is live (or this fleet member has no source to listen to)."""
        limit = self.limit_seconds
        if time.monotonic() - self.pipeline.last_progress_monotonic >= limit or self._crashed():
            return False
        return not self.pipeline.sources or any(self._live(s, limit) for s in self.pipeline.sources)

    def _live(self, source, limit: float) -> bool:
        """The source delivered audio within ``limit`` seconds, or its (re)connection loop is working."""
        return self._has_audio(source, limit) or (hasattr(source, "loop_alive") and source.loop_alive(limit))

    def _stall_reason(self) -> str:
        """What :meth:`healthy` found stuck: the classifier loop, or the sources (named) that neither
        delivered audio nor are working on a (re)connection within the limit."""
        limit = self.limit_seconds
        if time.monotonic() - self.pipeline.last_progress_monotonic >= limit:
            return "the classifier made no progress"
        stuck = [s.name for s in self.pipeline.sources if not self._live(s, limit)]
        return f"no audio from {', '.join(stuck)}, and its (re)connection does not return" if stuck else "no progress"

    def status(self) -> str:
        last = self.pipeline.last_event
        genre = f"{last.smoothed_genre or last.state} on {last.source}" if last else "no genre yet"
        waiting = self._waiting()
        retry = f"; waiting to retry: {', '.join(waiting)}" if waiting else ""
        return (f"STATUS={len(self.pipeline.sources)} source(s): {', '.join(self.pipeline.states)}; {genre}; "
                f"{self.pipeline.events_published} events{retry}")

    def _loop(self) -> None:
        period = min(5.0, (self.timeout_seconds or 10.0) / 3)
        while not self._stop.wait(0.2 if not self.ready else period):
            waiting = self._waiting()
            if not self.ready and (waiting or not self.pipeline.sources or any(self._has_audio(s) for s in self.pipeline.sources)):
                self.ready = True
                self.notifier.send("READY=1", self.status())
                log.info("ready: model loaded and %s", f"waiting to retry {', '.join(waiting)}" if waiting
                         else "audio arriving" if self.pipeline.sources else "no source of its own (an idle fleet member)")
                continue
            if self.ready:
                if self.healthy():
                    self.notifier.send("WATCHDOG=1", self.status())
                elif crashed := self._crashed():
                    self.notifier.send(self.status() + f" (source {', '.join(crashed)} crashed)")
                    log.error("source %s stopped on an error (logged above); not petting the watchdog, so systemd "
                              "restarts the service", ", ".join(crashed))
                else:
                    self.notifier.send(self.status() + " (stalled)")
                    log.warning("pipeline stalled: %s for %.0f s; not petting the watchdog, so systemd restarts the "
                                "service", self._stall_reason(), self.limit_seconds)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def run_daemon(config: Config) -> int:
    """Run until the sources end or a signal stops us; returns the exit code."""
    from genrecast.daemon.bundle import BundleError
    from genrecast.daemon.cli import fail
    from genrecast.daemon.pipeline import Pipeline
    from genrecast.daemon.sources import SourceError

    try:
        from genrecast.daemon.classifier import open_classifier

        classifier = open_classifier(config["model.bundle"], config["model.backend"])
        sources = open_sources(config)
        publisher = open_publisher(config, list(classifier.bundle.labels))
    except (BundleError, SourceError, ValueError, OSError) as exc:  # ShardError is a ValueError
        fail(str(exc))
    pipeline = Pipeline(classifier, sources, publisher.publish, pipeline_settings(config))
    notifier = Notifier()
    watchdog = Watchdog(pipeline, notifier, watchdog_seconds())
    _install_signal_handlers(pipeline, publisher)
    _log_share(config, sources, classifier.bundle.model_id)
    metrics_server = None
    if config["metrics.enabled"]:
        from genrecast.daemon.metrics import start_metrics_server

        try:
            metrics_server = start_metrics_server(pipeline, publisher, config["metrics.host"], config["metrics.port"], watchdog)
        except OSError as exc:
            log.error("cannot serve metrics on %s:%s (%s); going on without them", config["metrics.host"], config["metrics.port"], exc)
    watchdog.start()
    try:
        pipeline.run()
    finally:
        notifier.send("STOPPING=1")
        watchdog.stop()
        if metrics_server is not None:
            metrics_server.shutdown()
        if not pipeline.stop_event.is_set():  # the sources ended: a slow sink gets every event (a signal cuts this short)
            publisher.drain(STOP_DEADLINE_SECONDS, pipeline.stop_event)
        publisher.stop(STOP_DEADLINE_SECONDS)
        notifier.close()
    if pipeline.dropped_windows:
        log.warning("dropped %d windows because classification fell behind", pipeline.dropped_windows)
    lost = undelivered(publisher) if not pipeline.stop_event.is_set() else {}
    for name, count in lost.items():  # a run that ended with its sources: nothing may go missing unsaid
        log.error("sink %s: %d events were never delivered (its log lines above say why)", name, count)
    return EXIT_NO_AUDIO if pipeline.ended_without_audio or pipeline.failed_sources or lost else 0


def undelivered(publisher) -> dict[str, int]:
    """Per sink, the events it dropped, still held when the publisher stopped, or raised on
    without keeping them for a retry (0s left out)."""
    counts = {name: sum(int(values.get(key, 0)) for key in ("dropped", "queue_depth", "lost_to_errors"))
              for name, values in publisher.stats().items()}
    return {name: n for name, n in counts.items() if n}


def _log_share(config: Config, sources: list, model_id: str) -> None:
    from genrecast.daemon.shard import parse_shard

    names = ", ".join(s.name for s in sources)
    if not config["shard"]:
        log.info("listening to %s with model %s", names, model_id)
        return
    given = config["shard"].strip()  # as written (a systemd instance's K-of-N); auto/N adds the member it resolved to
    shown = f"{given} (member {parse_shard(given)})" if given.startswith("auto") else given
    if sources:
        log.info("shard %s: listening to %d of the %d configured sources (%s) with model %s", shown,
                 len(sources), len(config["sources"]), names, model_id)
    else:
        log.warning("shard %s: none of the %d configured sources falls to this member; idling until stopped "
                    "(a fleet with fewer sources than members has idle members)", shown, len(config["sources"]))


def _install_signal_handlers(pipeline, publisher) -> None:
    state = {"interrupts": 0}

    def stop(signum, frame) -> None:
        state["interrupts"] += 1
        if signum == signal.SIGINT and state["interrupts"] > 1:
            os._exit(130)
        log.info("received %s: stopping after the buffered windows", signal.Signals(signum).name)
        pipeline.stop()

    def reopen(signum, frame) -> None:
        log.info("received SIGHUP: reopening log files")
        publisher.reopen()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reopen)
