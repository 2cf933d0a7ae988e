"""The plugin layer's commands: ``genrecast plugins`` and ``genrecast tail``."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Optional

import typer

TAIL_HELP = """Watch genre events live: from the MQTT broker (subscribes to PREFIX/+/+/event: every daemon, a whole fleet) or from an event log (--file).

The view shows, per source and the daemon it came from (SOURCE @ DAEMON_ID), the window's genre with a probability bar, the top three, the smoothed genre
and the recent windows' genres. --json prints each event's JSON line instead. Ctrl-C quits.

Broker settings (user, password, TLS) come from the mqtt section of the config file and GENRECAST_MQTT_*;
--broker and --prefix override host, port and prefix.
"""


def _error(message: str, code: int = 2) -> None:
    typer.echo(f"genrecast: error: {message}", err=True)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add ``plugins`` and ``tail`` to the ``genrecast`` app."""

    @app.command("plugins")
    def plugins_command(json_output: bool = typer.Option(False, "--json", metavar="", help="Print JSON.")) -> None:
        """List the plugins (built-in and from the 'genrecast' entry-point group) with version and hooks.

        Also those installed that did not load, with the reason (exit 1 if there is any).

        GENRECAST_PLUGINS=name1,name2 limits which third-party plugins load."""
        from genrecast.plugins.manager import list_plugins, make_plugin_manager

        logging.basicConfig(level=logging.WARNING, format="genrecast: %(levelname)s: %(message)s")  # says why one did not load
        pm = make_plugin_manager()
        infos = list_plugins(pm)
        if json_output:
            rows_json = [{**info.to_dict(), "loaded": True} for info in infos]
            rows_json += [{"name": name, "loaded": False, "error": why} for name, why in sorted(pm.failed.items())]
            typer.echo(json.dumps(rows_json, indent=2))
        else:
            rows = [("NAME", "VERSION", "PACKAGE", "SINK", "HOOKS")] + [
                (i.name, i.version, i.distribution + (" (built-in)" if i.builtin else ""), "yes" if i.sink else "no",
                 ", ".join(h.removeprefix("genrecast_") for h in i.hooks)) for i in infos] + [
                (name, "-", "-", "-", f"did not load: {why}") for name, why in sorted(pm.failed.items())]
            widths = [max(len(r[c]) for r in rows) for c in range(4)]
            for row in rows:
                typer.echo("  ".join(cell.ljust(widths[c]) for c, cell in enumerate(row[:4])) + "  " + row[4])
        if pm.failed:
            raise typer.Exit(1)

    @app.command("tail", help=TAIL_HELP)
    def tail_command(
        broker: Optional[str] = typer.Option(None, "--broker", metavar="HOST[:PORT]", help="The MQTT broker. \\[default: the configured mqtt host and port, localhost:1883]"),
        prefix: Optional[str] = typer.Option(None, "--prefix", envvar="GENRECAST_MQTT_PREFIX", metavar="PREFIX", help="Topic prefix. \\[default: the configured mqtt.prefix, genrecast]"),
        file: Optional[Path] = typer.Option(None, "--file", "-f", metavar="FILE", help="Follow this event log (JSON lines) instead of the broker, starting with its last 10 events (as tail -f does); a file that does not exist yet is waited for."),
        json_output: bool = typer.Option(False, "--json", metavar="", help="Print the raw event JSON lines (as published; the daemon id is in the topic only)."),
        config_path: Optional[Path] = typer.Option(None, "--config", "-c", envvar="GENRECAST_CONFIG", metavar="FILE", help="Config file for the mqtt settings."),
        daemon_id: Optional[str] = typer.Option(None, "--daemon-id", metavar="ID", help="Follow only this daemon (fleet member). \\[default: every daemon under the prefix]"),
    ) -> None:
        _tail(broker, prefix, file, json_output, config_path, daemon_id)


def _mqtt_settings(broker: Optional[str], prefix: Optional[str], config_path: Optional[Path]):
    from genrecast.daemon.config import load_config
    from genrecast.plugins import SinkConfigError
    from genrecast.plugins.mqtt_sink import MqttSettings
    from genrecast.plugins.tail import parse_broker

    config = load_config(config_path)
    problems = [p for p in config.problems if "mqtt" in p or "config file" in p or "TOML" in p]
    if problems:
        raise ValueError("; ".join(problems))
    values = config.section("mqtt")
    if broker is not None:
        host, port = parse_broker(broker)
        values["host"] = host
        if port is not None:
            values["port"] = port
    if prefix:
        values["prefix"] = prefix
    try:
        return MqttSettings.from_dict(values)
    except SinkConfigError as exc:
        raise ValueError(str(exc)) from None


def _tail(broker: Optional[str], prefix: Optional[str], file: Optional[Path], json_output: bool,
          config_path: Optional[Path], daemon_id: Optional[str] = None) -> None:
    from genrecast.plugins.tail import TailError, run_tail_file, run_tail_mqtt

    logging.basicConfig(level=logging.WARNING, format="genrecast: %(levelname)s: %(message)s")
    if file is not None and (broker is not None or daemon_id is not None):
        _error("give --file (an event log) or --broker/--daemon-id (MQTT), not both")
    if daemon_id is not None:
        from genrecast.daemon.naming import daemon_id_problem

        if not daemon_id or (problem := daemon_id_problem(daemon_id)):
            _error(f"--daemon-id {daemon_id!r} {problem or 'must not be empty'}")
    settings = None
    if file is None:
        try:  # bad options and settings: exit 2, before connecting
            settings = _mqtt_settings(broker, prefix, config_path)
        except (TailError, ValueError) as exc:
            _error(str(exc))
    box: list = []
    try:
        if file is not None:
            run_tail_file(file, json_output, tail_box=box)
        else:
            run_tail_mqtt(settings, json_output, tail_box=box, daemon_id=daemon_id)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # the reader went away (`tail --json | head`): a quiet, normal end
        from genrecast.daemon.stderr import stdout_to_devnull

        stdout_to_devnull()
        raise typer.Exit(0) from None
    except (TailError, ValueError, OSError) as exc:
        _error(str(exc), 1)
    if box and not json_output:
        sys.stdout.write("\n")
    if box:
        view = box[0].view
        typer.echo(f"genrecast: {view.events} events shown, {view.skipped} unparseable payloads skipped", err=True)
