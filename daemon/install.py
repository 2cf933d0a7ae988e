"""``genrecast service install``: the systemd unit and an example configuration."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from genrecast.daemon.config import KEYS, env_name

UNIT_NAME = "genrecast.service"
PACKAGED_UNIT_EXEC = "/usr/local/bin/genrecast"


#: The unit; ``systemd/genrecast.service`` in the repository is this text rendered
#: for /usr/local/bin/genrecast (a test keeps the two equal).
UNIT_TEMPLATE = """# genrecast: a music-genre listener. Install with `sudo genrecast service install`.
# Configuration: /etc/genrecast/config.toml (see config.example.toml beside this file).
# The MQTT password, if any: put it in /etc/genrecast/mqtt_password (mode 600);
# systemd hands it to the service as the credential "mqtt_password".
[Unit]
Description=genrecast music-genre listener
Documentation=https://github.com/genrecast/genrecast#run-it-as-a-service
Wants=network-online.target sound.target
After=network-online.target sound.target

[Service]
Type=notify
NotifyAccess=main
ExecStart={executable} run --config /etc/genrecast/config.toml
Restart=on-failure
RestartSec=5
WatchdogSec=60
TimeoutStartSec=120
TimeoutStopSec=20
KillMode=mixed

DynamicUser=yes
SupplementaryGroups=audio
StateDirectory=genrecast
CacheDirectory=genrecast
LogsDirectory=genrecast
ConfigurationDirectory=genrecast
Environment=GENRECAST_CACHE_DIR=/var/cache/genrecast
Environment=NUMBA_CACHE_DIR=/var/cache/genrecast/numba
Environment=PYTHONUNBUFFERED=1
LoadCredential=mqtt_password:/etc/genrecast/mqtt_password

# Hardening
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateUsers=yes
ProtectHostname=yes
ProtectClock=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectProc=invisible
ProcSubset=pid
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=no
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources @mount @swap @reboot @raw-io @module @obsolete @cpu-emulation @debug
SystemCallErrorNumber=EPERM
UMask=0077
DevicePolicy=closed
DeviceAllow=char-alsa rw
DeviceAllow=/dev/snd rw
PrivateIPC=yes
RemoveIPC=yes

[Install]
WantedBy=multi-user.target
"""


def unit_text(executable: str = PACKAGED_UNIT_EXEC) -> str:
    """The unit file with ``ExecStart`` pointing at ``executable``."""
    return UNIT_TEMPLATE.format(executable=executable)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def example_config() -> str:
    """A TOML file documenting every key with its default (commented out where it is a default)."""
    lines = [
        "# genrecast configuration (TOML). Every key is shown with its default.",
        "# Precedence: built-in defaults < this file < GENRECAST_<SECTION>_<KEY> environment < command-line flags.",
        "# `genrecast config show` prints the effective values and their origin; `genrecast config check` validates.",
        "",
    ]
    section = None
    for key, spec in KEYS.items():
        name, _, leaf = key.rpartition(".")
        if name != section:
            if name:
                lines += ["", f"[{name}]"]
            section = name
        lines.append(f"# {spec.help}  (env: {env_name(key)})")
        lines.append(f"{leaf or key} = {_toml_value(spec.default)}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Planned:
    path: Path
    text: str
    action: str  # "write" or "keep"


def plan(root: Path, executable: str) -> list[Planned]:
    """What an install under ``root`` ("/" for real) would do."""
    unit = root / "etc/systemd/system" / UNIT_NAME
    config = root / "etc/genrecast/config.toml"
    password = root / "etc/genrecast/mqtt_password"  # the unit's LoadCredential= needs the file
    return [
        Planned(unit, unit_text(executable), "write"),
        Planned(config, example_config(), "keep" if config.exists() else "write"),
        Planned(password, "", "keep" if password.exists() else "write"),
    ]


def install(root: Path, executable: str | None = None, dry_run: bool = False) -> list[Planned]:
    """Write the unit (always) and the example config (only where none exists)."""
    executable = executable or shutil.which("genrecast") or str(Path(sys.argv[0]).resolve())
    steps = plan(root, executable)
    if not dry_run:
        for step in steps:
            if step.action == "write":
                step.path.parent.mkdir(parents=True, exist_ok=True)
                step.path.write_text(step.text)
                step.path.chmod(0o644 if step.path.suffix == ".service" else 0o640 if step.path.suffix else 0o600)
    return steps
