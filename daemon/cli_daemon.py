"""The daemon's commands: ``run``, ``classify`` and ``devices``."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Optional

import typer

log = logging.getLogger("genrecast")

RUN_HELP = """Listen to one or more audio sources and publish a genre event for every window.

SPEC is one of:  mic | mic:NAME_OR_INDEX | file:PATH | - (raw PCM on stdin) | URL (http, https, rtsp, ...).
Give --source several times to listen to several sources in one process.

Examples:

  genrecast run                                   # default microphone, default model, events on the terminal

  genrecast run --source file:song.mp3 --json     # JSON lines, one per 3-s window

  genrecast run --source http://radio.example/stream.mp3 --source mic --sink stdout --sink mqtt

  ffmpeg -i song.flac -f s16le -ac 1 -ar 22050 - | genrecast run --source - --format s16le --rate 22050

Stops on Ctrl-C or SIGTERM after classifying what is buffered; a finite source (a file, stdin) ends the run at its end.
"""


def default_bundle_path() -> Path:
    """The bundle shipped inside the package (see README: the default model)."""
    from importlib import resources

    return Path(str(resources.files("genrecast.daemon").joinpath("default_bundle")))


def open_bundle_classifier(bundle: Optional[Path], backend: str):
    from genrecast.daemon.classifier import open_classifier

    return open_classifier(bundle or default_bundle_path(), backend)


def register(app: typer.Typer) -> None:
    """Add the daemon's commands to the ``genrecast`` app."""

    @app.command(help=RUN_HELP)
    def run(
        source: list[str] = typer.Option(["mic"], "--source", "-s", help="Audio source SPEC (repeatable).", envvar="GENRECAST_SOURCE"),
        sink: list[str] = typer.Option(["stdout"], "--sink", help="Event sink by name: stdout, mqtt, logfile or a plugin's (repeatable).", envvar="GENRECAST_SINK"),
        bundle: Optional[Path] = typer.Option(None, "--bundle", "-b", help="Model bundle directory (default: the built-in model).", envvar="GENRECAST_BUNDLE"),
        backend: str = typer.Option("litert", help="Classifier backend: litert (fast, no tensorflow) or keras.", envvar="GENRECAST_BACKEND"),
        json_output: bool = typer.Option(False, "--json", help="stdout sink: JSON lines instead of readable lines."),
        hop_seconds: Optional[float] = typer.Option(None, min=0.1, help="Seconds between window starts (default: the window length; 1.5 overlaps 3-s windows)."),
        silence_dbfs: float = typer.Option(-50.0, help="Windows quieter than this RMS level (dBFS) are 'silence'."),
        min_confidence: float = typer.Option(0.25, min=0, max=1, help="Windows whose top probability is lower are 'uncertain'."),
        smooth_windows: int = typer.Option(5, min=1, help="K: windows averaged for the smoothed genre."),
        hold_windows: int = typer.Option(2, min=1, help="M: windows a new smoothed genre must lead before it counts as changed."),
        realtime: bool = typer.Option(False, "--realtime", help="file: sources play at real-time speed."),
        loop: bool = typer.Option(False, "--loop", help="file: sources start again at their end (never finite)."),
        fmt: str = typer.Option("f32le", "--format", help="stdin source: s16le or f32le."),
        rate: int = typer.Option(22050, help="stdin source: sample rate in Hz."),
        channels: int = typer.Option(1, help="stdin source: channels."),
        stall_seconds: float = typer.Option(10.0, help="Restart a stream or microphone that delivers no audio for this long."),
        verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
    ) -> None:
        from genrecast.daemon.bundle import BundleError
        from genrecast.daemon.cli import fail, setup_logging
        from genrecast.daemon.pipeline import Pipeline, PipelineSettings
        from genrecast.daemon.smoothing import SmoothingSettings
        from genrecast.daemon.sources import SourceError, parse_source

        setup_logging(verbose)
        try:
            settings = PipelineSettings(
                hop_seconds=hop_seconds,
                smoothing=SmoothingSettings(silence_dbfs=silence_dbfs, min_confidence=min_confidence,
                                            windows=smooth_windows, hold_windows=hold_windows),
            )
            classifier = open_bundle_classifier(bundle, backend)
            sources = [
                parse_source(spec, realtime=realtime, loop=loop, stdin_format=fmt, stdin_rate=rate,
                             stdin_channels=channels, stall_seconds=stall_seconds)
                for spec in source
            ]
            publisher = open_publisher(sink, json_output, list(classifier.bundle.labels))
        except (BundleError, SourceError, ValueError, OSError) as exc:
            fail(str(exc))
        pipeline = Pipeline(classifier, sources, publisher.publish, settings)
        _install_signal_handlers(pipeline)
        log.info("listening to %s with model %s", ", ".join(s.name for s in sources), classifier.bundle.model_id)
        try:
            publisher.start()
            pipeline.run()
        finally:
            publisher.stop(5.0)
        if pipeline.dropped_windows:
            log.warning("dropped %d windows because classification fell behind", pipeline.dropped_windows)

    @app.command()
    def classify(
        files: list[Path] = typer.Argument(..., help="Audio files (any format ffmpeg or soundfile decodes)."),
        bundle: Optional[Path] = typer.Option(None, "--bundle", "-b", help="Model bundle directory (default: the built-in model).", envvar="GENRECAST_BUNDLE"),
        backend: str = typer.Option("litert", help="Classifier backend: litert or keras."),
        json_output: bool = typer.Option(False, "--json", help="JSON lines: one object per window and one verdict per file."),
        hop_seconds: Optional[float] = typer.Option(None, min=0.1, help="Seconds between window starts (default: the window length)."),
    ) -> None:
        """Classify audio files: a timeline of windows and a verdict per file.

        Example:  genrecast classify song.mp3 other.wav

        Exits 1 if any file could not be read (after classifying the others).
        """
        from genrecast.daemon.bundle import BundleError
        from genrecast.daemon.classify import classify_file
        from genrecast.daemon.cli import fail, setup_logging
        from genrecast.daemon.pipeline import PipelineSettings
        from genrecast.daemon.audio import AudioDecodeError

        setup_logging()
        try:
            classifier = open_bundle_classifier(bundle, backend)
        except (BundleError, ValueError, OSError) as exc:
            fail(str(exc))
        settings = PipelineSettings(hop_seconds=hop_seconds)
        failed = 0
        for path in files:
            try:
                result = classify_file(path, classifier, settings)
            except AudioDecodeError as exc:
                failed += 1
                typer.echo(f"genrecast: error: {exc}", err=True)
                continue
            typer.echo(result.to_json_lines() if json_output else result.to_table())
        if failed:
            raise typer.Exit(1)

    @app.command()
    def devices(json_output: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """List the audio input devices that `--source mic:NAME_OR_INDEX` can name."""
        from genrecast.daemon.sources import list_input_devices

        found = list_input_devices()
        if json_output:
            typer.echo(json.dumps(found))
            return
        if not found:
            typer.echo("no audio input devices found (is PulseAudio/ALSA running, and is this user in the 'audio' group?)")
            return
        for d in found:
            mark = "*" if d.get("is_default") else " "
            typer.echo(f"{mark} {d['index']:>3}  {d['name']}  ({d['channels']} ch, {d['default_samplerate']:.0f} Hz)")


def _install_signal_handlers(pipeline) -> None:
    state = {"interrupts": 0}

    def handle(signum, frame) -> None:
        state["interrupts"] += 1
        if signum == signal.SIGINT and state["interrupts"] > 1:
            os._exit(130)
        log.info("received %s: stopping after the buffered windows", signal.Signals(signum).name)
        pipeline.stop()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


class _PrintPublisher:
    """Fallback publisher until the plugin layer provides sinks: events on stdout."""

    def __init__(self, json_output: bool) -> None:
        self.json_output = json_output

    def start(self) -> None: ...

    def publish(self, event) -> None:
        line = event.to_json() if self.json_output else f"{event.utc} {event.source} {event.state} {event.genre} {event.probability:.2f} smoothed={event.smoothed_genre}"
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def stop(self, deadline_seconds: float) -> None: ...


def open_publisher(sinks: list[str], json_output: bool, labels: list[str]):
    """The object the pipeline publishes events to (start / publish / stop)."""
    return _PrintPublisher(json_output)
