"""The daemon's commands: ``run``, ``classify`` and ``devices``."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Optional

import typer

from genrecast.daemon.config_keys import MAX_HOP_SECONDS, MIN_HOP_SECONDS

log = logging.getLogger("genrecast")

RUN_HELP = """Listen to one or more audio sources and publish a genre event for every window.

SPEC is one of:  mic | mic:NAME_OR_INDEX | file:PATH | - (raw PCM on stdin) | URL (http, https, rtsp, ...).
Give --source several times to listen to several sources in one process; NAME=SPEC names one (--source kitchen=mic), else it is named mic, mic-NAME, file-STEM, stdin or stream-N.

\bExamples:
  # the default microphone and model, events on the terminal
  genrecast run
  # JSON lines, one per 3-s window
  genrecast run --source file:song.mp3 --json
  # a stream and the microphone, to the terminal and MQTT
  genrecast run --source http://radio.example/live.mp3 --source mic \\
      --sink stdout --sink mqtt
  # raw PCM on stdin
  ffmpeg -i song.flac -f s16le -ac 1 -ar 22050 - | \\
      genrecast run --source - --format s16le --rate 22050

Stops on Ctrl-C or SIGTERM after classifying what is buffered; a finite source (a file, stdin) ends the run at its end.
Exit status: 0; 1 if a source ended without any audio (e.g. an empty pipe) or stopped on an error (e.g. a truncated file), or a run that ended with its sources left events undelivered (e.g. no MQTT broker, a plugin that raised); 2 for a bad option, source or configuration.
"""


CLASSIFY_HELP = """Classify audio files: a timeline of windows and a verdict per file.

\bExamples:
  genrecast classify song.mp3 other.wav
  # a folder, recursively, on 2 processes
  genrecast classify --json archive/ -o archive.jsonl --workers 2
  # go on after an interruption
  genrecast classify 'archive/**/*.flac' --list more.txt -o out.jsonl --resume
  # on a running Dask cluster
  genrecast classify --scheduler tcp://host:8786 --list files.txt -o out.jsonl
  # plots/song.mp3.png: genre probabilities over time
  genrecast classify --plot plots/ song.mp3

Files stream through (hours-long files too, in bounded memory), with a progress bar (files, hours of audio, time left) on a terminal. A file that cannot be read gets a JSON line {"type": "error", ...} and is counted; the run goes on. --resume skips the files --output already has, so an interrupted run, restarted, classifies every file exactly once.

Exit status: 0 when every file was classified; 1 if any file could not be read, or its --plot timeline could not be written (after classifying the others); otherwise 3 if any file held less than half a window of audio (its verdict says "too short"; a shorter last window is zero-padded); 2 for a bad option, or an --output that cannot be written (a read-only or full disk: the line says how to go on with --resume); 130 when interrupted (Ctrl-C), 143 when stopped by SIGTERM. With --resume the files done before count too.
"""


#: The --config option's help, the same for run, config show and config check.
CONFIG_HELP = ("TOML configuration file (env GENRECAST_CONFIG). "
               "\\[default: /etc/genrecast/config.toml if it exists]")


def _default(key: str) -> str:
    """`` [default: VALUE]`` for a help text, from the configuration key's built-in default
    (escaped, so rich does not take it for markup)."""
    from genrecast.daemon.config import KEYS

    value = KEYS[key].default
    shown = ", ".join(map(str, value)) if isinstance(value, list) else f"{value:g}" if isinstance(value, float) else str(value)
    return f" \\[default: {shown}]"


def _check_hop(hop_seconds: float | None) -> None:
    if hop_seconds is not None and not MIN_HOP_SECONDS <= hop_seconds <= MAX_HOP_SECONDS:  # NaN and inf too
        from genrecast.daemon.cli import fail

        fail(f"--hop-seconds must be at least {MIN_HOP_SECONDS:g} and at most {MAX_HOP_SECONDS:g} (got {hop_seconds:g})")


def register(app: typer.Typer) -> None:
    """Add the daemon's commands to the ``genrecast`` app."""

    @app.command(help=RUN_HELP)
    def run(
        source: Optional[list[str]] = typer.Option(None, "--source", "-s", metavar="SPEC", help="Audio source SPEC or NAME=SPEC (repeatable)." + _default("sources")),
        daemon_id: Optional[str] = typer.Option(None, "--daemon-id", metavar="ID", help="This daemon's id in MQTT topics and Home Assistant. \\[default: the host name]"),
        shard: Optional[str] = typer.Option(None, "--shard", metavar="K/N", help="Fleet member K of N: listen only to this member's share of the sources (rendezvous hashing of their names; N equal on every member). auto/N takes K from a StatefulSet pod's ordinal. Also GENRECAST_SHARD. \\[default: every source]"),
        sink: Optional[list[str]] = typer.Option(None, "--sink", metavar="NAME", help="Event sink by name: stdout, mqtt, logfile or a plugin's (repeatable)." + _default("sinks")),
        config_path: Optional[Path] = typer.Option(None, "--config", "-c", metavar="FILE", help=CONFIG_HELP),
        bundle: Optional[Path] = typer.Option(None, "--bundle", "-b", metavar="DIR", help="Model bundle directory. \\[default: the built-in model]"),
        backend: Optional[str] = typer.Option(None, metavar="NAME", help="Classifier backend: litert (fast, no tensorflow) or keras." + _default("model.backend")),
        json_output: bool = typer.Option(False, "--json", metavar="", help="stdout sink: JSON lines instead of readable lines."),
        hop_seconds: Optional[float] = typer.Option(None, metavar="SECONDS", help="Seconds between window starts, at least 0.1 (1.5 overlaps 3-s windows). \\[default: the window length, 3]"),
        silence_dbfs: Optional[float] = typer.Option(None, metavar="DBFS", help="Windows quieter than this RMS level (dBFS, 0 is full scale) are 'silence'." + _default("smoothing.silence_dbfs")),
        min_confidence: Optional[float] = typer.Option(None, metavar="P", help="Windows whose top probability (0-1) is lower are 'uncertain'." + _default("smoothing.min_confidence")),
        smooth_windows: Optional[int] = typer.Option(None, metavar="K", help="K: the smoothed genre is the one with the highest mean probability over the last K windows." + _default("smoothing.windows")),
        hold_windows: Optional[int] = typer.Option(None, metavar="M", help="M: a new smoothed genre must lead for M windows in a row before an event says changed (so one odd window does not flap)." + _default("smoothing.hold_windows")),
        realtime: bool = typer.Option(False, "--realtime", metavar="", help="file: sources play at real-time speed."),
        loop: bool = typer.Option(False, "--loop", metavar="", help="file: sources start again at their end (never finite)."),
        fmt: Optional[str] = typer.Option(None, "--format", metavar="FORMAT", help="stdin source: sample format, s16le or f32le." + _default("input.format")),
        rate: Optional[int] = typer.Option(None, metavar="HZ", help="stdin source: sample rate in Hz." + _default("input.rate")),
        channels: Optional[int] = typer.Option(None, metavar="N", help="stdin source: channels." + _default("input.channels")),
        stall_seconds: Optional[float] = typer.Option(None, metavar="SECONDS", help="Restart a stream or microphone that delivers no audio for this long." + _default("input.stall_seconds")),
        verbose: bool = typer.Option(False, "--verbose", "-v", metavar="", help="Debug logging."),
    ) -> None:
        from genrecast.daemon.cli import fail, setup_logging
        from genrecast.daemon.config import ConfigError, load_config, require_valid, world_readable_secret
        from genrecast.daemon.service import run_daemon

        setup_logging(verbose)
        _check_hop(hop_seconds)
        flags = {
            "sources": source or None, "daemon_id": daemon_id, "shard": shard, "sinks": sink or None, "model.bundle": str(bundle) if bundle else None,
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
            fail("invalid configuration: " + "; ".join(exc.problems))  # every problem, flags' included
        for warning in [*config.warnings, world_readable_secret(config)]:
            if warning:
                log.warning(warning)
        raise typer.Exit(run_daemon(config))

    config_app = typer.Typer(help="Show or check the effective configuration (defaults < file < GENRECAST_* env < flags).", no_args_is_help=True)
    app.add_typer(config_app, name="config")

    @config_app.command("show")
    def config_show(
        config_path: Optional[Path] = typer.Option(None, "--config", "-c", metavar="FILE", help=CONFIG_HELP),
        json_output: bool = typer.Option(False, "--json", metavar="", help="Print JSON."),
    ) -> None:
        """Print every key's effective value and where it came from (default, file, env, flag); secrets redacted.

        A value given that is invalid (which `run` refuses) marks its key's row and is an
        error: exit 1."""
        from genrecast.daemon.config import env_name, load_config

        config = load_config(config_path)
        rows = config.show()

        def problem_of(key: str) -> str | None:  # "mqtt.port (file X): ..." or "GENRECAST_MQTT_PORT: ..."
            env = env_name(key)
            return next((p for p in config.problems if p.startswith((f"{key} ", f"{key}:", f"{env}:"))), None)

        if json_output:
            typer.echo(json.dumps([{"key": k, "value": v, "origin": o, **({"invalid": p} if (p := problem_of(k)) else {})}
                                   for k, v, o in rows], default=str))
        else:
            width = max(len(k) for k, _, _ in rows)
            for key, value, origin in rows:
                mark = "  [the value given is invalid: see below; run refuses it]" if problem_of(key) else ""
                typer.echo(f"{key:<{width}}  {config.shown(key, value):<30}  ({origin}){mark}")
        for problem in config.problems:
            typer.echo(f"genrecast: error: {problem}", err=True)
        for warning in config.warnings:
            typer.echo(f"genrecast: warning: {warning}", err=True)
        if config.problems:
            raise typer.Exit(1)

    @config_app.command("check")
    def config_check(config_path: Optional[Path] = typer.Option(None, "--config", "-c", metavar="FILE", help=CONFIG_HELP)) -> None:
        """Validate the configuration; list every problem and exit 1 if there is any."""
        from genrecast.daemon.config import load_config, world_readable_secret
        from genrecast.daemon.service import config_problems

        config = load_config(config_path)
        problems, unchecked = config_problems(config)
        for problem in problems:
            typer.echo(f"genrecast: error: {problem}", err=True)
        for warning in [*config.warnings, world_readable_secret(config)]:
            if warning:
                typer.echo(f"genrecast: warning: {warning}", err=True)
        if problems:
            raise typer.Exit(1)
        typer.echo(f"configuration OK ({config.path or 'defaults and environment only'})"
                   + (f"; the plugin sink {', '.join(unchecked)} checks its own settings when run starts it" if unchecked else ""))

    @app.command(help=CLASSIFY_HELP)
    def classify(
        inputs: Optional[list[str]] = typer.Argument(None, metavar="FILE|DIR|GLOB...", help="Audio files (any format ffmpeg decodes), folders (searched recursively for audio files) and quoted globs ('archive/**/*.mp3')."),
        lists: Optional[list[str]] = typer.Option(None, "--list", metavar="FILE", help="A text file of audio paths, one a line (- reads stdin; # comments); repeatable."),
        bundle: Optional[Path] = typer.Option(None, "--bundle", "-b", metavar="DIR", help="Model bundle directory (env GENRECAST_MODEL_BUNDLE, as run reads it). \\[default: the built-in model]", envvar=["GENRECAST_MODEL_BUNDLE", "GENRECAST_BUNDLE"]),
        backend: str = typer.Option("litert", metavar="NAME", help="Classifier backend: litert or keras."),
        json_output: bool = typer.Option(False, "--json", metavar="", help="JSON lines: one object per window and one verdict per file."),
        hop_seconds: Optional[float] = typer.Option(None, metavar="SECONDS", help="Seconds between window starts, at least 0.1. \\[default: the window length, 3]"),
        output_name: Optional[str] = typer.Option(None, "--output", "-o", metavar="FILE", help="Write the JSON lines to FILE (- is stdout, as --json); it must be new unless --resume."),
        resume: bool = typer.Option(False, "--resume", metavar="", help="Go on with --output FILE: skip the files it has a verdict or error for."),
        workers: Optional[int] = typer.Option(None, "--workers", "-w", metavar="N", help="Classify on a local Dask cluster of N worker processes (needs genrecast\\[cluster])."),
        scheduler: Optional[str] = typer.Option(None, "--scheduler", metavar="ADDRESS", help="Classify on the running Dask cluster at ADDRESS, e.g. tcp://10.0.0.5:8786."),
        plot: Optional[Path] = typer.Option(None, "--plot", metavar="DIR", help="Write a timeline PNG per file under DIR (needs genrecast\\[plot])."),
    ) -> None:
        from genrecast.daemon.bundle import BundleError
        from genrecast.daemon.classify import ClassifyJob
        from genrecast.daemon.classify_run import ClassifyOptions, UsageError, run_classify
        from genrecast.daemon.cli import fail, full_disk, setup_logging

        setup_logging()
        _check_hop(hop_seconds)
        output = Path(output_name) if output_name not in (None, "-") else None  # not ./- : a file called -
        if output_name == "-":  # the usual name of the standard output: --json
            json_output = True
        job = ClassifyJob(bundle=str(bundle.resolve()) if bundle else None, backend=backend, hop_seconds=hop_seconds,
                          json_output=json_output or output is not None, plot_dir=str(plot.resolve()) if plot else None)
        options = ClassifyOptions(inputs=list(inputs or []), lists=list(lists or []), job=job, workers=workers,
                                  scheduler=scheduler, output=output, resume=resume)
        try:
            code = run_classify(options)
        except BrokenPipeError:  # classify ... | head: the reader has what it wanted
            from genrecast.daemon.stderr import stdout_to_devnull

            stdout_to_devnull()
            raise typer.Exit(0) from None
        except (UsageError, BundleError, ValueError, OSError) as exc:
            fail(isinstance(exc, OSError) and output is not None and full_disk(
                exc, "--output", output, "free some space there and run the same command with --resume, which goes on "
                "where this run stopped") or str(exc))
        except RuntimeError as exc:  # genrecast.daemon.cluster.ClusterError
            fail(str(exc), 1)
        raise typer.Exit(code)

    service_app = typer.Typer(help="Install genrecast as a systemd service.", no_args_is_help=True)
    app.add_typer(service_app, name="service")

    @service_app.command("install")
    def service_install(
        dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be written; change nothing."),
        root: Path = typer.Option(Path("/"), metavar="DIR", help="Install under this root directory (for packaging and tests)."),
        executable: Optional[str] = typer.Option(None, metavar="PATH", help="Absolute path of the genrecast command for ExecStart. \\[default: this one]"),
    ) -> None:
        """Write /etc/systemd/system/genrecast.service, the template genrecast@.service (several
        fleet members on one host: genrecast@1-of-2, genrecast@2-of-2) and, unless they exist,
        /etc/genrecast/config.toml (mode 644) and /etc/genrecast/mqtt_password (mode 600).

        Refuses when the unit's sandbox would hide the command from the service
        (a virtualenv under /root, /home or /tmp): install into /opt/genrecast first.

        Then: systemctl daemon-reload && systemctl enable --now genrecast
        (or, for two members sharing the sources: systemctl enable --now genrecast@1-of-2 genrecast@2-of-2).
        After an upgrade (pip install . again, then service install): systemctl daemon-reload &&
        systemctl try-restart genrecast 'genrecast@*'
        """
        from genrecast.daemon.cli import fail
        from genrecast.daemon.install import UNIT_NAME, InstallError, install

        upgrade = Path(root, "etc/systemd/system", UNIT_NAME).exists()  # units running the old genrecast may be up
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
        if dry_run:
            return
        if upgrade:  # `enable --now` leaves a running daemon on the old code
            typer.echo("next: systemctl daemon-reload && systemctl try-restart genrecast 'genrecast@*'"
                       "   (restarts the units that run, so they run this genrecast)")
        else:
            typer.echo("next: systemctl daemon-reload && systemctl enable --now genrecast")

    @app.command()
    def devices(json_output: bool = typer.Option(False, "--json", metavar="", help="Print JSON.")) -> None:
        """List the audio inputs that `--source mic:NAME_OR_INDEX` can name: PortAudio's devices, and the sound server's sources (PulseAudio, or PipeWire through pipewire-pulse) by name."""
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
