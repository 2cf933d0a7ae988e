"""Every discovery payload the mqtt sink sends, through Home Assistant's own MQTT discovery
schema code (imported in a subprocess from the cached Home Assistant venv): valid, and no key
silently dropped. On an older core (2024.3, when its venv is cached) only the documented
late features are dropped."""

from __future__ import annotations

import pytest

from genrecast.plugins.ha_discovery import FEATURE_VERSIONS, Topics, discovery_messages
from genrecast.plugins.mqtt_settings import MqttSettings
from ha_services import HA_VERSION, OLD_HA, ha_venv_path, validate_discovery
from helpers import GTZAN_LABELS as LABELS

pytestmark = [pytest.mark.service]


def all_payloads() -> dict[str, dict]:
    topics = Topics("genrecast", "kitchen")
    out = {}
    for source in ("mic", "kitchen radio", "ラジオ", "file-rock_00000"):
        out.update(discovery_messages(topics, source, LABELS, "1.2.3", MqttSettings().expire_after_seconds()))
    return out


def test_every_discovery_payload_passes_home_assistants_schema(ha_venv):
    payloads = all_payloads()
    assert {t.split("/")[1] for t in payloads} == {"sensor", "event"}
    result = validate_discovery(ha_venv, payloads)
    assert set(result) == set(payloads)
    problems = {t: r for t, r in result.items() if r.get("error") or r.get("dropped")}
    assert not problems, f"Home Assistant {HA_VERSION} rejects or drops: {problems}"


def test_an_older_home_assistant_drops_only_the_enum_options():
    version, python = OLD_HA
    venv = ha_venv_path(version, install=False)
    if venv is None:
        pytest.skip(f"no cached Home Assistant {version} venv (GENRECAST_HA_VERSION={version} PYTHON={python} "
                    "bash scripts/ha_venv.sh makes one)")
    result = validate_discovery(venv, all_payloads())
    assert not [r for r in result.values() if r.get("error")], result
    dropped = {t.split("/")[-2].split("_")[-1]: r["dropped"] for t, r in result.items() if r["dropped"]}
    assert dropped == {"genre": ["options"]}, dropped
    assert FEATURE_VERSIONS["enum options on the genre sensor"] > version
