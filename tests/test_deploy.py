"""The Kubernetes example (deploy/kubernetes/genrecast.yaml): valid against the Kubernetes schemas
(offline, kubernetes-validate's bundled schemas), and consistent with the daemon it runs."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from helpers import REPO

yaml = pytest.importorskip("yaml", reason="PyYAML comes with kubernetes-validate (the test extra)")
kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install -e '.[test]' installs kubernetes-validate")

MANIFEST = REPO / "deploy" / "kubernetes" / "genrecast.yaml"


def _documents() -> dict[str, dict]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(MANIFEST.read_text()) if doc}


@pytest.mark.parametrize("version", ["1.29.0", kubernetes_validate.latest_version()])
def test_every_resource_is_valid_against_the_schemas(version: str) -> None:
    docs = _documents()
    assert set(docs) == {"ConfigMap", "Secret", "Service", "StatefulSet"}
    for doc in docs.values():
        kubernetes_validate.validate(doc, version, strict=True)  # raises ValidationError


def test_the_validation_would_catch_a_mistake() -> None:
    sts = copy.deepcopy(_documents()["StatefulSet"])
    container = sts["spec"]["template"]["spec"]["containers"][0]
    container["livenesProbe"] = container.pop("livenessProbe")  # a typo: strict validation rejects it
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, kubernetes_validate.latest_version(), strict=True)
    sts = copy.deepcopy(_documents()["StatefulSet"])
    sts["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, kubernetes_validate.latest_version(), strict=True)


def test_the_statefulset_runs_the_daemon_as_configured(tmp_path: Path) -> None:
    """Shards from the pod ordinals cover the fleet; the ConfigMap is a valid config; the probes hit
    the daemon's health paths on its metrics port; the Secret is where the daemon reads the password."""
    from genrecast.daemon.config import load_config
    from genrecast.daemon.shard import Shard, parse_shard
    from genrecast.plugins.mqtt_settings import CREDENTIAL_NAME, MqttSettings

    docs = _documents()
    sts = docs["StatefulSet"]
    pod = sts["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    replicas = sts["spec"]["replicas"]
    assert [parse_shard(env["GENRECAST_SHARD"], hostname=f"{sts['metadata']['name']}-{i}") for i in range(replicas)] == \
        [Shard(k, replicas) for k in range(1, replicas + 1)]

    config_file = tmp_path / "config.toml"
    config_file.write_text(docs["ConfigMap"]["data"]["config.toml"])
    config = load_config(config_file, env={})
    assert config.problems == []
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert container["args"] == ["run", "--config", f"{mounts['config']}/config.toml"]
    assert volumes["config"]["configMap"]["name"] == docs["ConfigMap"]["metadata"]["name"]

    port = {p["name"]: p["containerPort"] for p in container["ports"]}["metrics"]
    assert config["metrics.enabled"] and config["metrics.host"] == "0.0.0.0" and config["metrics.port"] == port
    probes = {kind: container[kind]["httpGet"] for kind in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert {p["port"] for p in probes.values()} == {"metrics"}
    assert [probes[k]["path"] for k in ("startupProbe", "readinessProbe", "livenessProbe")] == ["/readyz", "/readyz", "/healthz"]

    secret = docs["Secret"]
    assert volumes["mqtt-password"]["secret"]["secretName"] == secret["metadata"]["name"]
    assert env["CREDENTIALS_DIRECTORY"] == mounts["mqtt-password"]
    mounted = tmp_path / "credentials"  # what kubelet writes: one file per key of the Secret
    mounted.mkdir()
    for key, value in secret["stringData"].items():
        (mounted / key).write_text(value)
    assert CREDENTIAL_NAME in secret["stringData"]
    settings = MqttSettings.from_dict(config.section("mqtt"))
    assert settings.resolve_password({"CREDENTIALS_DIRECTORY": str(mounted)}) == secret["stringData"][CREDENTIAL_NAME]
