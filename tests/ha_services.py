"""A real Home Assistant core for the tests: its cached virtualenv (``scripts/ha_venv.sh``,
pinned :data:`HA_VERSION`), ``hass -c DIR`` on 127.0.0.1 with the MQTT integration set up
through the REST config-flow API against a test Mosquitto, a token from onboarding, and
``/api/states``. Fixtures ``ha_venv`` and ``start_home_assistant`` are loaded for every test
by the root conftest; Home Assistant is stopped by its PID at teardown."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from helpers import REPO, free_port, terminate, unavailable, wait_for

HA_VERSION = os.environ.get("GENRECAST_HA_VERSION", "2025.4.4")
"""The Home Assistant core the tests run (the newest release for the Python 3.13.0 here:
2025.5 and later need Python >= 3.13.2)."""
OLD_HA = ("2024.3.3", "/root/.pyenv/versions/3.12.1/bin/python3")
"""An older core (before ``options`` on MQTT sensors) the schema test also uses when its venv is
cached or its Python is here: ``GENRECAST_HA_VERSION=2024.3.3 PYTHON=... bash scripts/ha_venv.sh``."""
START_SECONDS = 180.0
"""Deadline for Home Assistant to answer after ``hass`` starts (first start builds its storage)."""


def ha_venv_path(version: str = HA_VERSION, python: str | None = None, install: bool = True) -> Path | None:
    """The cached venv of Home Assistant ``version`` (installed by ``scripts/ha_venv.sh`` if
    ``install``; minutes the first time), or None if it cannot be had; the reason is raised
    as ``RuntimeError`` when ``install``."""
    default = Path(f"/var/cache/genrecast-test/ha-venv-{version}")
    if not install:
        return default if (default / ".genrecast-ha-installed").is_file() else None
    env = {**os.environ, "GENRECAST_HA_VERSION": version, **({"PYTHON": python} if python else {})}
    proc = subprocess.run(["bash", str(REPO / "scripts" / "ha_venv.sh")], capture_output=True, text=True, env=env,
                          timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/ha_venv.sh failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def ha_venv() -> Path:
    """The venv of Home Assistant :data:`HA_VERSION` (skips, or fails under CI, when it cannot be installed)."""
    try:
        venv = ha_venv_path()
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        unavailable(f"no Home Assistant {HA_VERSION} virtualenv: {exc}")
    assert venv is not None
    return venv


def validate_discovery(venv: Path, messages: dict[str, dict]) -> dict[str, dict]:
    """Run each ``{config topic: payload}`` through Home Assistant's own MQTT discovery schema
    (``homeassistant.components.mqtt.<component>.DISCOVERY_SCHEMA``, in ``venv``'s Python).
    Returns ``{topic: {"error": message}}`` or ``{topic: {"dropped": [keys the schema removed]}}``."""
    script = r"""
import asyncio, importlib, json, sys, tempfile
import voluptuous as vol
from homeassistant.core import HomeAssistant

async def main():
    hass = HomeAssistant(tempfile.mkdtemp())  # templates are validated with a running instance
    try:
        from homeassistant.helpers import frame
        frame.async_setup(hass)
    except (ImportError, AttributeError):
        pass
    out = {}
    for topic, payload in json.load(sys.stdin).items():
        component = topic.split("/")[1]
        schema = importlib.import_module(f"homeassistant.components.mqtt.{component}").DISCOVERY_SCHEMA
        try:
            valid = schema(dict(payload))
            out[topic] = {"dropped": sorted(set(payload) - set(valid))}
        except vol.Invalid as exc:
            out[topic] = {"error": str(exc)}
    print(json.dumps(out))

asyncio.run(main())
"""
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", script], input=json.dumps(messages),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


CONFIGURATION = """\
homeassistant:
  name: genrecast test
  latitude: 47.37
  longitude: 8.54
  elevation: 400
  unit_system: metric
  time_zone: UTC
  country: CH
  currency: CHF
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
config:
onboarding:
automation: !include automations.yaml
counter: {counters}
light:
  - platform: template
    lights:
      living_room:
        turn_on: []
        turn_off: []
logger:
  default: info
"""


@dataclass
class HomeAssistant:
    """One ``hass -c DIR`` on 127.0.0.1; :meth:`api` calls its REST API with the onboarding token."""

    venv: Path
    config_dir: Path
    port: int
    proc: subprocess.Popen | None = None
    token: str = ""
    log_lines_before_start: int = 0
    counters: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self, automations_yaml: str) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        counters = json.dumps({name: {"initial": 0, "step": 1} for name in self.counters}) if self.counters else "{}"
        (self.config_dir / "configuration.yaml").write_text(CONFIGURATION.format(port=self.port, counters=counters))
        (self.config_dir / "automations.yaml").write_text(automations_yaml or "[]\n")

    def start(self) -> None:
        log = open(self.config_dir / "hass.out", "ab")
        self.proc = subprocess.Popen([str(self.venv / "bin" / "hass"), "-c", str(self.config_dir), "--skip-pip"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

        def answering() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.log_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{self.url}/api/onboarding", timeout=2) as response:
                    return response.status == 200
            except (urllib.error.URLError, OSError):
                return False

        wait_for(answering, timeout_seconds=START_SECONDS, interval=0.5, what=f"Home Assistant on {self.url}")

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, 60, group=True)
        self.proc = None

    def log_text(self) -> str:
        path = self.config_dir / "home-assistant.log"
        return path.read_text(errors="replace") if path.exists() else (self.config_dir / "hass.out").read_text()

    def request(self, method: str, path: str, body: Any = None, form: dict | None = None, auth: bool = True) -> Any:
        data = (urllib.parse.urlencode(form).encode() if form is not None else
                json.dumps(body).encode() if body is not None else None)
        headers = {"Content-Type": "application/x-www-form-urlencoded" if form is not None else "application/json"}
        if auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: HTTP {exc.code}: {exc.read().decode()[:500]}") from None
        if response.headers.get_content_type() != "application/json":
            return text  # /api/template answers text
        return json.loads(text) if text else None

    def onboard(self) -> None:
        """Create the owner through onboarding and trade its auth code for an access token."""
        client_id = f"{self.url}/"
        made = self.request("POST", "/api/onboarding/users", {"client_id": client_id, "name": "Test", "username": "test",
                                                               "password": "test-password-1", "language": "en"})
        token = self.request("POST", "/auth/token", form={"grant_type": "authorization_code", "code": made["auth_code"],
                                                          "client_id": client_id}, auth=False)
        self.token = token["access_token"]

    def set_up_mqtt(self, host: str, port: int) -> dict:
        """The MQTT integration through the config-flow API, pointed at ``host:port``."""
        flow = self.request("POST", "/api/config/config_entries/flow", {"handler": "mqtt", "show_advanced_options": False})
        while flow.get("type") == "form":
            flow = self.request("POST", f"/api/config/config_entries/flow/{flow['flow_id']}",
                                {"broker": host, "port": port} if flow.get("step_id") == "broker" else {})
        assert flow.get("type") == "create_entry", flow
        return flow

    def states(self) -> dict[str, dict]:
        return {s["entity_id"]: s for s in self.request("GET", "/api/states")}

    def state(self, entity_id: str) -> dict | None:
        return self.states().get(entity_id)


@pytest.fixture
def start_home_assistant(ha_venv: Path, tmp_path_factory) -> Iterator[Callable[..., HomeAssistant]]:
    """Factory: ``start_home_assistant(broker, automations_yaml="", counters=())`` → a started,
    onboarded Home Assistant with MQTT on ``broker``; stopped at teardown."""
    started: list[HomeAssistant] = []

    def make(broker, automations_yaml: str = "", counters: tuple[str, ...] = ()) -> HomeAssistant:
        ha = HomeAssistant(ha_venv, tmp_path_factory.mktemp("hass"), free_port(),
                           counters={name: 0 for name in counters})
        ha.write_config(automations_yaml)
        started.append(ha)
        ha.start()
        ha.onboard()
        ha.set_up_mqtt(broker.host, broker.port)
        return ha

    yield make
    for ha in started:
        ha.stop()
