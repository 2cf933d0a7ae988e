"""The systemd unit: verify, security exposure, and `genrecast service install`."""

from __future__ import annotations

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
