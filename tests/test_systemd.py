"""The systemd unit: verify, security exposure, and `genrecast service install`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import EXE, REPO, run_cli
from genrecast.daemon.install import unit_text

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed (apt-get install systemd)")


def test_repository_unit_is_the_rendered_template() -> None:
    assert (REPO / "systemd" / "genrecast.service").read_text() == unit_text()


def test_unit_verifies_and_is_hardened(tmp_path: Path) -> None:
    unit = tmp_path / "genrecast.service"
    unit.write_text(unit_text(EXE))  # ExecStart must exist where verify runs
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stderr
    security = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)], capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for genrecast.service: ([0-9.]+)", security.stdout + security.stderr)
    assert match, security.stdout[-2000:]
    print(f"systemd-analyze security exposure: {match.group(1)}")
    assert float(match.group(1)) <= 3.0


def test_service_install_keeps_an_existing_config(tmp_path: Path) -> None:
    dry = run_cli("service", "install", "--dry-run", "--root", str(tmp_path), "--executable", EXE)
    assert dry.returncode == 0 and "would write" in dry.stdout and "Type=notify" in dry.stdout
    assert not (tmp_path / "etc").exists()
    (tmp_path / "etc/genrecast").mkdir(parents=True)
    (tmp_path / "etc/genrecast/config.toml").write_text("# mine\n")
    proc = run_cli("service", "install", "--root", str(tmp_path), "--executable", EXE)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "etc/genrecast/config.toml").read_text() == "# mine\n"
    assert "keeping existing" in proc.stdout
    unit = tmp_path / "etc/systemd/system/genrecast.service"
    assert f"ExecStart={EXE} run" in unit.read_text()
    assert (tmp_path / "etc/genrecast/mqtt_password").stat().st_mode & 0o777 == 0o600
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stderr
    # a kept config the service could not start with is named (it was kept without a word)
    (tmp_path / "etc/genrecast/config.toml").write_text("[mqtt]\nqos = 1\n[mqtt]\nport = 1883\n")
    proc = run_cli("service", "install", "--root", str(tmp_path), "--executable", EXE)
    assert proc.returncode == 0 and "config.toml is not valid TOML" in proc.stderr and "config check -c" in proc.stderr


def test_install_flags_every_path_the_sandbox_hides(tmp_path: Path) -> None:
    from genrecast.daemon.install import hidden_by_sandbox, sandbox_problems

    assert hidden_by_sandbox("/root/venv/bin/genrecast") == "ProtectHome=yes"
    assert hidden_by_sandbox("/home/pi/genrecast/.venv/bin/python") == "ProtectHome=yes"
    assert hidden_by_sandbox("/var/tmp/x") == "PrivateTmp=yes"
    assert hidden_by_sandbox("/opt/genrecast/bin/genrecast") is None
    assert hidden_by_sandbox("/rootfs/genrecast") is None  # a prefix of a name is not the directory
    script = tmp_path / "genrecast"
    script.write_text("#!/home/pi/.pyenv/versions/3.11.7/bin/python3.11\nprint('hi')\n")
    problems = " ".join(sandbox_problems(str(script)))
    assert "/home/pi/.pyenv/versions/3.11.7/bin/python3.11 is hidden from the service by ProtectHome=yes" in problems
    if hidden_by_sandbox(tmp_path):  # pytest's temporary directory is under /tmp
        assert f"{script} is hidden from the service by PrivateTmp=yes" in problems
    assert sandbox_problems("/usr/bin/env") == []  # a binary, not a script: only its own path counts


@pytest.mark.skipif(os.geteuid() != 0, reason="installs into / only as root")
def test_install_refuses_a_hidden_command_and_writes_nothing() -> None:
    unit = Path("/etc/systemd/system/genrecast.service")
    before = unit.stat().st_mtime_ns if unit.exists() else None
    dry = run_cli("service", "install", "--dry-run", "--executable", "/home/pi/venv/bin/genrecast")
    assert dry.returncode == 2 and "would refuse: " in dry.stderr and "ProtectHome=yes" in dry.stderr  # as the install would
    proc = run_cli("service", "install", "--executable", "/home/pi/venv/bin/genrecast")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "hidden from the service by ProtectHome=yes" in proc.stderr and "/opt/genrecast" in proc.stderr
    assert (unit.stat().st_mtime_ns if unit.exists() else None) == before


def test_install_modes_and_a_kept_config_the_service_cannot_read(tmp_path: Path) -> None:
    config = tmp_path / "etc/genrecast/config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('sources = ["mic"]\n')
    config.chmod(0o640)  # what an older genrecast wrote
    proc = run_cli("service", "install", "--root", str(tmp_path), "--executable", EXE)
    assert proc.returncode == 0, proc.stderr
    assert "was mode 640, which the service's dynamic user cannot read: made it readable (644)" in proc.stderr
    assert config.stat().st_mode & 0o777 == 0o644 and config.read_text() == 'sources = ["mic"]\n'
    assert (tmp_path / "etc/systemd/system/genrecast.service").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "etc/genrecast/mqtt_password").stat().st_mode & 0o777 == 0o600
    config.write_text('[mqtt]\npassword = "hunter2"\n')
    proc = run_cli("service", "install", "--root", str(tmp_path), "--executable", EXE)
    assert "sets mqtt.password: move the password to /etc/genrecast/mqtt_password" in proc.stderr


def test_cache_dir_without_a_home(monkeypatch) -> None:
    """A dynamic user has no passwd entry a process can see; with no $HOME, Path.home() raises."""
    from genrecast.daemon import cache

    for var in ("HOME", "XDG_CACHE_HOME", "GENRECAST_CACHE_DIR", "CACHE_DIRECTORY"):
        monkeypatch.delenv(var, raising=False)

    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(cache.Path, "home", staticmethod(no_home))
    assert cache.cache_dir().name == f"genrecast-cache-{os.getuid()}"


def test_template_unit_runs_one_fleet_member_per_instance(tmp_path: Path) -> None:
    """genrecast@K-of-N.service: verifies as an instance with as little exposure as the plain unit;
    its ExecStart passes the instance as the shard and HOST-K-of-N as the daemon id, both valid."""
    from genrecast.daemon.install import template_unit_text
    from genrecast.daemon.naming import daemon_id_problem
    from genrecast.daemon.shard import Shard, parse_shard

    assert (REPO / "systemd" / "genrecast@.service").read_text() == template_unit_text()
    text = template_unit_text(EXE)
    assert f"ExecStart={EXE} run --config /etc/genrecast/config.toml --shard %i --daemon-id %l-%i\n" in text
    assert "Environment=GENRECAST_LOGFILE_PATH=genrecast-events-%i.jsonl\n" in text
    assert parse_shard("2-of-3") == Shard(2, 3) and daemon_id_problem("box-2-of-3") is None
    (tmp_path / "genrecast@.service").write_text(text)
    (tmp_path / "genrecast@2-of-3.service").symlink_to("genrecast@.service")
    verify = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "genrecast@2-of-3.service")],
                            capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0 and "genrecast@" not in verify.stderr, verify.stderr  # parse problems are only warned
    security = subprocess.run(["systemd-analyze", "security", "--offline=true", str(tmp_path / "genrecast@2-of-3.service")],
                              capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for genrecast@2-of-3.service: ([0-9.]+)", security.stdout + security.stderr)
    assert match and float(match.group(1)) <= 3.0, security.stdout[-2000:]
    proc = run_cli("service", "install", "--root", str(tmp_path / "root"), "--executable", EXE)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "root/etc/systemd/system/genrecast@.service").read_text() == text


def test_install_refuses_an_executable_that_would_break_the_unit(tmp_path: Path) -> None:
    """A newline in --executable would add a directive to the unit; a relative path cannot run."""
    for bad, says in [("/opt/x\nExecStartPre=/bin/evil", "control character"), ("relative/genrecast", "absolute path")]:
        proc = run_cli("service", "install", "--root", str(tmp_path), "--executable", bad)
        assert proc.returncode == 2 and says in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
        assert not (tmp_path / "etc").exists()


def test_install_quotes_an_executable_with_a_space_and_warns_when_it_is_missing(tmp_path: Path) -> None:
    proc = run_cli("service", "install", "--root", str(tmp_path), "--executable", "/opt/my apps/genrecast%i")
    assert proc.returncode == 0, proc.stderr
    assert "is not an executable file here yet" in proc.stderr
    unit = (tmp_path / "etc/systemd/system/genrecast.service").read_text()
    assert 'ExecStart="/opt/my apps/genrecast%%i" run --config /etc/genrecast/config.toml\n' in unit


def test_install_warns_when_the_executable_is_not_genrecast(tmp_path: Path) -> None:
    """`--executable /usr/bin/true` gave a unit that hangs until systemd's start timeout (Type=notify):
    it is written, as asked, with a warning that names the problem; genrecast's own command is not warned about."""
    true = next(p for p in ("/usr/bin/true", "/bin/true") if Path(p).is_file())
    proc = run_cli("service", "install", "--root", str(tmp_path / "a"), "--executable", true)
    assert proc.returncode == 0, proc.stderr
    assert f"genrecast: warning: {true} does not look like genrecast's command" in proc.stderr
    script = tmp_path / "bin" / "genrecast-wrapper"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\nexec /opt/genrecast/bin/genrecast \"$@\"\n")
    script.chmod(0o755)
    proc = run_cli("service", "install", "--root", str(tmp_path / "b"), "--executable", str(script))
    assert proc.returncode == 0 and "does not look like" not in proc.stderr, proc.stderr


def test_a_second_install_says_to_restart_what_runs(tmp_path: Path) -> None:
    """An upgrade is `pip install .` then `service install` again. Its last line said `systemctl
    enable --now genrecast`, which leaves a running daemon on the old code; a re-install says
    try-restart (every running unit, members included), a first install still enable --now."""
    first = run_cli("service", "install", "--root", str(tmp_path), "--executable", EXE)
    assert first.returncode == 0 and first.stdout.splitlines()[-1] == "next: systemctl daemon-reload && systemctl enable --now genrecast"
    again = run_cli("service", "install", "--root", str(tmp_path), "--executable", EXE)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1].startswith("next: systemctl daemon-reload && systemctl try-restart genrecast 'genrecast@*'")


def test_a_refused_config_is_not_restarted_for_ever(tmp_path: Path) -> None:
    """A config the daemon refuses (or a bad genrecast@ instance name) made Restart=on-failure start it
    every 5 s for ever, the same error each time, the unit "activating (auto-restart)" and never
    failed. The exit status `run` gives a refused configuration is the one the units do not restart on;
    the status of a run that ends without audio (a crash-like end, restarted) is not."""
    from genrecast.daemon.install import template_unit_text
    from genrecast.daemon.service import EXIT_NO_AUDIO

    for text in (unit_text(EXE), template_unit_text(EXE)):
        kept = re.findall(r"^RestartPreventExitStatus=(.*)$", text, re.M)
        assert len(kept) == 1 and "Restart=on-failure\n" in text, text
        statuses = {int(s) for s in kept[0].split()}
        assert EXIT_NO_AUDIO not in statuses
    config = tmp_path / "config.toml"
    config.write_text('sources = ["mic"\n')  # not TOML
    assert run_cli("run", "--config", str(config), timeout=60).returncode in statuses
    config.write_text('sources = ["mic"]\n')
    assert run_cli("run", "--config", str(config), "--shard", "foo", timeout=60).returncode in statuses  # genrecast@foo
