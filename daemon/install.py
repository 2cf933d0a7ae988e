"""``genrecast service install``: the systemd unit and an example configuration."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from genrecast.daemon.config import KEYS, env_name

UNIT_NAME = "genrecast.service"
PACKAGED_UNIT_EXEC = "/usr/local/bin/genrecast"


#: The unit; ``systemd/genrecast.service`` in the repository is this text rendered
#: for /usr/local/bin/genrecast (a test keeps the two equal).
UNIT_TEMPLATE = """# genrecast: a music-genre listener. Install with `genrecast service install`, as root.
# Configuration: /etc/genrecast/config.toml (`service install` writes it with every key documented;
# `genrecast config check` checks it).
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
# sh's own kill: /bin/kill (procps) is not on every Debian; $$ passes a literal $ to sh.
ExecReload=/bin/sh -c 'kill -HUP $$MAINPID'
Restart=on-failure
# Exit 2: genrecast refused its configuration (the journal's "genrecast: error:" line says what to
# fix); starting again cannot help, so the unit stays failed instead of retrying every 5 s for ever.
RestartPreventExitStatus=2
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
# One BLAS thread: the features' small matrix products only get slower and noisier with more.
Environment=OPENBLAS_NUM_THREADS=1
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
# No ProcSubset=pid: LiteRT's XNNPACK reads /proc/cpuinfo to pick its kernels; without it
# inference falls back to the slower built-in kernels (measured 1.7x per invoke).
ProtectProc=invisible
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
    """The unit file with ``ExecStart`` pointing at ``executable`` (quoted as systemd reads it)."""
    return UNIT_TEMPLATE.format(executable=systemd_quote(executable))


def systemd_quote(word: str) -> str:
    """``word`` as one word of a unit's command line (systemd.service(5), "Command lines", and
    systemd.unit(5), "Specifiers"): ``%`` doubled, ``$`` doubled (no variable expansion), and in
    double quotes with ``\\`` and ``"`` escaped when it holds a space, a quote or a backslash."""
    word = word.replace("%", "%%").replace("$", "$$")
    if any(c in word for c in ' \t"\'\\;'):
        word = '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return word


def executable_problem(executable: str) -> str | None:
    """Why ``executable`` cannot be ExecStart's command, or None: it must be an absolute path
    (systemd runs no shell and searches no PATH of ours) without control characters (a newline
    would start a new unit directive)."""
    if any(ord(c) < 32 or ord(c) == 127 for c in executable):
        return f"--executable {executable!r} holds a control character (a newline would add a line to the unit file); give the command's path"
    if not executable.startswith("/"):
        return f"--executable {executable}: give the command's absolute path, e.g. /opt/genrecast/bin/genrecast"
    return None


TEMPLATE_UNIT_NAME = "genrecast@.service"
#: What the template unit changes in :data:`UNIT_TEMPLATE`: the instance name is the member's
#: shard, K-of-N (``genrecast@2-of-3``), its daemon id is HOST-K-of-N, and its event log its own.
_TEMPLATE_CHANGES = (
    ("# genrecast: a music-genre listener. Install with `genrecast service install`, as root.\n",
     "# genrecast fleet member: one of N daemons on this host sharing the configured sources.\n"
     "# Install with `genrecast service install`, as root; start members K-of-N, all with the same N:\n"
     "#   systemctl enable --now genrecast@1-of-2 genrecast@2-of-2\n"
     "# Each member listens to its share (rendezvous hashing of the source names), publishes as\n"
     "# daemon id HOST-K-of-N and logs events (logfile sink) to genrecast-events-K-of-N.jsonl.\n"
     "# Metrics on: give each member its own port in a drop-in (systemctl edit genrecast@2-of-2):\n"
     "#   [Service]\n#   Environment=GENRECAST_METRICS_PORT=9465\n"),
    ("Description=genrecast music-genre listener\n", "Description=genrecast music-genre listener, fleet member %i\n"),
    ("run --config /etc/genrecast/config.toml\n", "run --config /etc/genrecast/config.toml --shard %i --daemon-id %l-%i\n"),
    ("Environment=PYTHONUNBUFFERED=1\n", "Environment=PYTHONUNBUFFERED=1\nEnvironment=GENRECAST_LOGFILE_PATH=genrecast-events-%i.jsonl\n"),
)


def template_unit_text(executable: str = PACKAGED_UNIT_EXEC) -> str:
    """The template unit ``genrecast@.service`` for several members on one host (instance: K-of-N)."""
    text = unit_text(executable)
    for old, new in _TEMPLATE_CHANGES:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


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


#: Paths the unit's sandbox hides from the service: ``ProtectHome=yes`` makes /home, /root
#: and /run/user inaccessible, ``PrivateTmp=yes`` gives it an empty /tmp and /var/tmp
#: (systemd.exec(5), "Sandboxing").
HIDDEN_PREFIXES = {
    "/home": "ProtectHome=yes", "/root": "ProtectHome=yes", "/run/user": "ProtectHome=yes",
    "/tmp": "PrivateTmp=yes", "/var/tmp": "PrivateTmp=yes",
}

#: Modes of what ``install`` writes. The unit and the config hold no secret and must be
#: readable by the service's dynamic user (``DynamicUser=yes`` is no member of root's
#: group); the MQTT password is read by systemd itself (``LoadCredential=``) and handed
#: to the service alone, so it stays root's.
MODES = {"unit": 0o644, "config": 0o644, "secret": 0o600, "directory": 0o755}


class InstallError(Exception):
    """``service install`` cannot give a service that starts; the message names the fix."""


def hidden_by_sandbox(path: str | Path) -> str | None:
    """The unit setting that hides ``path`` (absolute) from the service, or None."""
    text = str(path)
    for prefix, setting in HIDDEN_PREFIXES.items():
        if text == prefix or text.startswith(prefix + "/"):
            return setting
    return None


def _interpreter(executable: Path) -> Path | None:
    """The interpreter of a ``#!`` script (a pip console script), None for anything else."""
    try:
        with executable.open("rb") as f:
            first = f.readline(4096)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode(errors="replace").split()
    return Path(words[0]) if words else None


def runtime_paths(executable: str) -> list[Path]:
    """What the service must be able to read to start ``executable``: the command and its
    real path, its ``#!`` interpreter and that one's real path (a virtualenv's python is a
    link to the Python it was made from), and, when it is this installation's command,
    the directory this package is imported from (an editable install runs the checkout)."""
    path = Path(executable)
    paths = [path, path.resolve()]
    interpreter = _interpreter(path)
    if interpreter is not None:
        paths += [interpreter, interpreter.resolve()]
    this = shutil.which("genrecast")
    if this and Path(this).resolve() == path.resolve():
        paths.append(Path(__file__).resolve().parent)
    return list(dict.fromkeys(paths))


def sandbox_problems(executable: str) -> list[str]:
    """One line per path that the unit's sandbox would hide from ``ExecStart``."""
    return [f"{path} is hidden from the service by {setting}"
            for path in runtime_paths(executable) if (setting := hidden_by_sandbox(path))]


def sandbox_note(path: str | Path) -> str:
    """Why the service may not see ``path`` although root does (``genrecast's unit hides /root
    from it (ProtectHome=yes); put it ...``), when this process runs under genrecast's unit (systemd
    sets ``INVOCATION_ID``, and ``CACHE_DIRECTORY`` for its ``CacheDirectory=genrecast``) and ``path`` lies where the unit's sandbox hides it; otherwise ``""``."""
    # INVOCATION_ID alone is any service's, and its children inherit it (a CI runner's jobs, a terminal
    # a user service started); the unit's CacheDirectory=genrecast sets CACHE_DIRECTORY=/var/cache/genrecast
    under_unit = os.environ.get("INVOCATION_ID") and os.environ.get("CACHE_DIRECTORY", "").rstrip("/").endswith("/genrecast")
    if not under_unit or not (setting := hidden_by_sandbox(path)):
        return ""
    prefix = next(p for p in HIDDEN_PREFIXES if str(path) == p or str(path).startswith(p + "/"))
    return f"genrecast's unit hides {prefix} from it ({setting}); put it where the service can see it, e.g. under /var/lib/genrecast"


def path_problem(path: str | Path, called: str | None = None) -> str | None:
    """``cannot look at PATH (Permission denied); FIX`` (``called`` instead of PATH if given) when
    this user may not even ask whether ``path`` exists (a folder on its way it may not enter),
    else None. FIX is the :func:`sandbox_note` where there is one."""
    try:
        Path(path).exists()
    except OSError as exc:
        fix = sandbox_note(path) or "make it and its folders readable by the user genrecast runs as"
        return f"cannot look at {called or path} ({exc.strerror}); {fix}"
    return None


SANDBOX_FIX = ("install genrecast where the service can see it, e.g. as root: "
               "/usr/bin/python3 -m venv /opt/genrecast && /opt/genrecast/bin/pip install . && "
               "/opt/genrecast/bin/genrecast service install (or name another command with --executable)")


def secrets_in_config(text: str) -> list[str]:
    """The secret keys (``mqtt.password``) that a config file's TOML sets to a non-empty value."""
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return []
    found = []
    for key, spec in KEYS.items():
        if spec.secret:
            node = data
            for part in key.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if node:
                found.append(key)
    return found


@dataclass(frozen=True)
class Planned:
    path: Path
    text: str
    action: str  # "write" or "keep"
    mode: int


def plan(root: Path, executable: str) -> list[Planned]:
    """What an install under ``root`` ("/" for real) would do."""
    unit = root / "etc/systemd/system" / UNIT_NAME
    template = root / "etc/systemd/system" / TEMPLATE_UNIT_NAME
    config = root / "etc/genrecast/config.toml"
    password = root / "etc/genrecast/mqtt_password"  # the unit's LoadCredential= needs the file
    return [
        Planned(unit, unit_text(executable), "write", MODES["unit"]),
        Planned(template, template_unit_text(executable), "write", MODES["unit"]),
        Planned(config, example_config(), "keep" if config.exists() else "write", MODES["config"]),
        Planned(password, "", "keep" if password.exists() else "write", MODES["secret"]),
    ]


def _looks_like_genrecast(path: Path) -> bool:
    """``path`` is named ``genrecast`` or names genrecast in its first 4 KiB (a console script's
    ``from genrecast...``, a wrapper script's command line)."""
    try:
        with path.open("rb") as f:
            return path.name == "genrecast" or b"genrecast" in f.read(4096)
    except OSError:
        return path.name == "genrecast"


def install(root: Path, executable: str | None = None, dry_run: bool = False) -> tuple[list[Planned], list[str]]:
    """Write the unit (always), the example config and an empty password file (only where
    none exists), readable as :data:`MODES` says; returns the steps and warnings.

    Raises:
        InstallError: ``executable`` is not an absolute path or holds a control character;
            installing into ``/`` (for real or as a dry run) and the sandbox would hide the
            command, its interpreter or its package from the service.
        OSError: a file cannot be written.
    """
    executable = executable or shutil.which("genrecast") or str(Path(sys.argv[0]).resolve())
    if problem := executable_problem(executable):
        raise InstallError(problem)
    warnings = []
    installed = Path(root, executable.lstrip("/")) if root != Path("/") else Path(executable)
    if not (installed.is_file() and os.access(installed, os.X_OK)) and not Path(executable).is_file():
        warnings.append(f"{executable} is not an executable file here yet: the service will fail to start until it is")
    elif (found := installed if installed.is_file() else Path(executable)) and not _looks_like_genrecast(found):
        warnings.append(f"{executable} does not look like genrecast's command (it is not called genrecast, and does not "
                        "mention it): the unit runs `EXECUTABLE run --config ...` and waits for genrecast to say it is "
                        "ready, so any other program fails to start; give genrecast's own command with --executable")
    problems = sandbox_problems(executable)
    if problems:
        message = f"ExecStart={executable} cannot start: {'; '.join(problems)}. Fix: {SANDBOX_FIX}"
        if root == Path("/"):  # a dry run says so too, as the install would
            raise InstallError(("would refuse: " if dry_run else "") + message)
        warnings.append(message)
    steps = plan(root, executable)
    for step in steps:
        if step.action == "keep" and step.path.name == "config.toml":
            warnings += _check_kept_config(step.path, fix=not dry_run)
    if not dry_run:
        for step in steps:
            if step.action == "write":
                step.path.parent.mkdir(parents=True, exist_ok=True)
                step.path.parent.chmod(MODES["directory"])
                step.path.write_text(step.text)
                step.path.chmod(step.mode)
    return steps, warnings


def _check_kept_config(path: Path, fix: bool) -> list[str]:
    """An existing config must stay readable by the service; one that holds a secret is
    left alone with a warning saying where the secret belongs; one that is not valid TOML
    (or has another problem ``config check`` finds in its values) is named, since the service
    would not start with it."""
    import tomllib

    from genrecast.daemon.config import load_config

    try:
        tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        return [f"{path} is not valid TOML ({exc}): the service will not start until it is fixed "
                f"(genrecast config check -c {path})"]
    problems = load_config(path, env={}).problems
    if problems:
        return [f"{path}: {problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
                + f": the service will not start until it is fixed (genrecast config check -c {path})"]
    secrets = secrets_in_config(path.read_text())
    mode = path.stat().st_mode & 0o777
    if secrets:
        return [f"{path} sets {', '.join(secrets)}: move the password to /etc/genrecast/mqtt_password "
                f"(mode 600; the unit hands it to the service alone) and make {path} mode 644"]
    if mode & 0o004 == 0:
        if fix:
            path.chmod(mode | 0o444)
        return [f"{path} was mode {mode:o}, which the service's dynamic user cannot read: "
                f"{'made it' if fix else 'would make it'} readable ({(mode | 0o444):o})"]
    return []
