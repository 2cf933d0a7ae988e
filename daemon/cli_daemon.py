"""The daemon's commands: ``run``, ``classify`` and ``devices``."""

from __future__ import annotations

import json
import logging
import os
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


def register(app: typer.Typer) -> None:
    """Add the daemon's commands to the ``genrecast`` app."""

    @app.command(help=RUN_HELP)
    def run(
        source: Optional[list[str]] = typer.Option(None, "--source", "-s", help="Audio source SPEC (repeatable). [default: mic]"),
        sink: Optional[list[str]] = typer.Option(None, "--sink", help="Event sink by name: stdout, mqtt, logfile or a plugin's (repeatable). [default: stdout]"),
        config_path: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML configuration file. [default: /etc/genrecast/config.toml if it exists]"),
        bundle: Optional[Path] = typer.Option(None, "--bundle", "-b", help="Model bundle directory. [default: the built-in model]"),
        backend: Optional[str] = typer.Option(None, help="Classifier backend: litert (fast, no tensorflow) or keras."),
        json_output: bool = typer.Option(False, "--json", help="stdout sink: JSON lines instead of readable lines."),
        hop_seconds: Optional[float] = typer.Option(None, min=0.1, help="Seconds between window starts (default: the window length; 1.5 overlaps 3-s windows)."),
        silence_dbfs: Optional[float] = typer.Option(None, help="Windows quieter than this RMS level (dBFS) are 'silence'. [default: -50]"),
        min_confidence: Optional[float] = typer.Option(None, help="Windows whose top probability is lower are 'uncertain'. [default: 0.25]"),
        smooth_windows: Optional[int] = typer.Option(None, help="K: windows averaged for the smoothed genre. [default: 5]"),
        hold_windows: Optional[int] = typer.Option(None, help="M: windows a new smoothed genre must lead before it counts as changed. [default: 2]"),
        realtime: bool = typer.Option(False, "--realtime", help="file: sources play at real-time speed."),
        loop: bool = typer.Option(False, "--loop", help="file: sources start again at their end (never finite)."),
        fmt: Optional[str] = typer.Option(None, "--format", help="stdin source: s16le or f32le. [default: f32le]"),
        rate: Optional[int] = typer.Option(None, help="stdin source: sample rate in Hz. [default: 22050]"),
        channels: Optional[int] = typer.Option(None, help="stdin source: channels. [default: 1]"),
        stall_seconds: Optional[float] = typer.Option(None, help="Restart a stream or microphone that delivers no audio for this long. [default: 10]"),
        verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
    ) -> None:
        from genrecast.daemon.cli import fail, setup_logging
        from genrecast.daemon.config import ConfigError, load_config, require_valid, world_readable_secret
        from genrecast.daemon.service import run_daemon

        setup_logging(verbose)
        flags = {
            "sources": source or None, "sinks": sink or None, "model.bundle": str(bundle) if bundle else None,
            "model.backend": backend, "stdout.json": True if json_output else None,
            "windowing.hop_seconds": hop_seconds, "smoothing.silence_dbfs": silence_dbfs,
            "smoothing.min_confidence": min_confidence, "smoothing.windows": smooth_windows,
            "smoothing.hold_windows": hold_windows, "input.realtime": True if realtime else None,
            "input.loop": True if loop else None, "input.format": fmt, "input.rate": rate,
            "input.channels": channels, "input.stall_seconds": stall_seconds,
        }
        try:
            config = require_valid(load_config(config_path, flags))
        except ConfigError as exc:
            fail("invalid configuration: " + "; ".join(exc.problems) + " (run `genrecast config check` for the full list)")
        if warning := world_readable_secret(config):
            log.warning(warning)
        raise typer.Exit(run_daemon(config))

    config_app = typer.Typer(help="Show or check the effective configuration (defaults < file < GENRECAST_* env < flags).", no_args_is_help=True)
    app.add_typer(config_app, name="config")

    @config_app.command("show")
    def config_show(
        config_path: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML configuration file."),
        json_output: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Print every key's effective value and where it came from (default, file, env, flag); secrets redacted."""
        from genrecast.daemon.config import load_config

        config = load_config(config_path)
        rows = config.show()
        if json_output:
            typer.echo(json.dumps([{"key": k, "value": v, "origin": o} for k, v, o in rows]))
        else:
            width = max(len(k) for k, _, _ in rows)
            for key, value, origin in rows:
                typer.echo(f"{key:<{width}}  {value:<30}  ({origin})")
        for problem in config.problems:
            typer.echo(f"genrecast: warning: {problem}", err=True)

    @config_app.command("check")
    def config_check(config_path: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML configuration file.")) -> None:
        """Validate the configuration; list every problem and exit 1 if there is any."""
        from genrecast.daemon.config import load_config, world_readable_secret

        config = load_config(config_path)
        for problem in config.problems:
            typer.echo(f"genrecast: error: {problem}", err=True)
        if warning := world_readable_secret(config):
            typer.echo(f"genrecast: warning: {warning}", err=True)
        if config.problems:
            raise typer.Exit(1)
        typer.echo(f"configuration OK ({config.path or 'defaults and environment only'})")

    @app.command()
    def classify(
        files: list[Path] = typer.Argument(..., help="Audio files (any format ffmpeg decodes)."),
        bundle: Optional[Path] = typer.Option(None, "--bundle", "-b", help="Model bundle directory (default: the built-in model).", envvar="GENRECAST_BUNDLE"),
        backend: str = typer.Option("litert", help="Classifier backend: litert or keras."),
        json_output: bool = typer.Option(False, "--json", help="JSON lines: one object per window and one verdict per file."),
        hop_seconds: Optional[float] = typer.Option(None, min=0.1, help="Seconds between window starts (default: the window length)."),
    ) -> None:
        """Classify audio files: a timeline of windows and a verdict per file.

        Example:  genrecast classify song.mp3 other.wav

        Files stream through (hours-long files too, in bounded memory; a progress bar on a terminal).
        Exit status: 0 when every file was classified; 1 if any file could not be read (after
        classifying the others); otherwise 3 if any file was shorter than one window (its verdict says
        "too short").
        """
        from genrecast.daemon.audio import AudioDecodeError
        from genrecast.daemon.bundle import BundleError
        from genrecast.daemon.classifier import open_classifier
        from genrecast.daemon.classify import classify_file
        from genrecast.daemon.cli import fail, setup_logging
        from genrecast.daemon.pipeline import PipelineSettings

        setup_logging()
        try:
            classifier = open_classifier(bundle, backend)
        except (BundleError, ValueError, OSError) as exc:
            fail(str(exc))
        settings = PipelineSettings(hop_seconds=hop_seconds)
        failed = too_short = 0

        def show(result, event) -> None:
            if result.windows == 1 and not json_output:
                typer.echo("\n".join(result.table_header()))
            typer.echo(result.json_line(event) if json_output else result.table_line(event))

        for path in files:
            try:
                result = classify_file(path, classifier, settings, on_event=show, progress=True)
            except AudioDecodeError as exc:
                failed += 1
                typer.echo(f"genrecast: error: {exc}", err=True)
                continue
            if result.too_short:
                too_short += 1
                if not json_output:
                    typer.echo("\n".join(result.table_header()))
            typer.echo(result.json_verdict() if json_output else result.table_verdict())
        if failed:
            raise typer.Exit(1)
        if too_short:
            raise typer.Exit(3)

    service_app = typer.Typer(help="Install genrecast as a systemd service.", no_args_is_help=True)
    app.add_typer(service_app, name="service")

    @service_app.command("install")
    def service_install(
        dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be written; change nothing."),
        root: Path = typer.Option(Path("/"), help="Install under this root directory (for packaging and tests)."),
        executable: Optional[str] = typer.Option(None, help="Path of the genrecast command for ExecStart. [default: this one]"),
    ) -> None:
        """Write /etc/systemd/system/genrecast.service and, unless they exist,
        /etc/genrecast/config.toml (mode 644) and /etc/genrecast/mqtt_password (mode 600).

        Refuses when the unit's sandbox would hide the command from the service
        (a virtualenv under /root, /home or /tmp): install into /opt/genrecast first.

        Then: systemctl daemon-reload && systemctl enable --now genrecast
        """
        from genrecast.daemon.cli import fail
        from genrecast.daemon.install import InstallError, install

        if not dry_run and root == Path("/") and os.geteuid() != 0:
            fail("service install writes to /etc: run it as root (sudo), or use --dry-run")
        try:
            steps, warnings = install(root, executable, dry_run=dry_run)
        except InstallError as exc:
            fail(str(exc))
        except OSError as exc:
            fail(f"cannot install: {exc}")
        for warning in warnings:
            typer.echo(f"genrecast: warning: {warning}", err=True)
        for step in steps:
            verb = ("would write" if dry_run else "wrote") if step.action == "write" else "keeping existing"
            typer.echo(f"{verb} {step.path}" + (f" (mode {step.mode:o})" if step.action == "write" else ""))
            if dry_run and step.action == "write" and step.text:
                typer.echo("".join(f"    {line}\n" for line in step.text.splitlines()))
        if not dry_run:
            typer.echo("next: systemctl daemon-reload && systemctl enable --now genrecast")

    @app.command()
    def devices(json_output: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """List the audio inputs that `--source mic:NAME_OR_INDEX` can name: PortAudio's devices, and the
        sources of the sound server (PulseAudio, or PipeWire through pipewire-pulse) by name."""
        from genrecast.daemon.sources import list_input_devices, list_server_sources

        found = [dict(d, kind="portaudio", spec=f"mic:{d['index']}") for d in list_input_devices()]
        server = list_server_sources()
        found += [{"kind": "sound-server", "index": None, "name": s.name, "description": s.description,
                   "channels": s.channels, "default_samplerate": float(s.sample_rate), "is_default": s.is_default,
                   "is_monitor": s.is_monitor, "spec": f"mic:{s.name}"} for s in server]
        if json_output:
            typer.echo(json.dumps(found))
            return
        if not found:
            typer.echo("no audio input devices found (is PulseAudio/ALSA running, and is this user in the 'audio' group?)")
            return
        for d in found:
            if d["kind"] != "portaudio":
                continue
            mark = "*" if d.get("is_default") else " "
            typer.echo(f"{mark} {d['index']:>3}  {d['name']}  ({d['channels']} ch, {d['default_samplerate']:.0f} Hz)")
        if server:
            typer.echo("sound-server sources (--source mic:NAME; * is the server's default):")
            for s in server:
                mark = "*" if s.is_default else " "
                kind = ", monitor of an output" if s.is_monitor else ""
                typer.echo(f"{mark} {s.name}  {s.description}  ({s.channels} ch, {s.sample_rate} Hz{kind})")
