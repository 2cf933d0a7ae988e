#!/usr/bin/env bash
# A cached virtual environment holding a pinned Home Assistant core, for the tests that check
# genrecast's MQTT discovery against the real thing (tests/plugins/test_home_assistant*.py).
#
#   bash scripts/ha_venv.sh            # prints the venv's path; installs only when it is missing
#
# It lives outside the repository (default /var/cache/genrecast-test/ha-venv-<version>; override
# with GENRECAST_HA_VENV) and is keyed by the Home Assistant version, so a new pin makes a new one.
# Current releases need Python >= 3.13: PYTHON (default: the pyenv 3.13 found on this machine;
# an older pin needs an older Python: GENRECAST_HA_VERSION=2024.3.3 PYTHON=python3.12).
# Besides the core it installs the requirements of the integrations the test loads (mqtt and
# onboarding's chain), resolved from their manifests, under Home Assistant's own package constraints,
# so that hass starts without installing anything itself. A lock keeps two runs from racing.
set -euo pipefail

HA_VERSION=${GENRECAST_HA_VERSION:-2025.4.4}
VENV=${GENRECAST_HA_VENV:-/var/cache/genrecast-test/ha-venv-$HA_VERSION}
# what tests/ha_services.py loads: the REST API, onboarding (for a token), the config-flow API,
# MQTT, and what the README's automation needs (automation, a template light) plus a counter;
# frontend too: Home Assistant sets it up (with cloud, tts, ...) whatever the configuration says
INTEGRATIONS=(mqtt onboarding api http auth person config frontend automation counter template light)
stamp="$VENV/.genrecast-ha-installed"
want="$HA_VERSION ${INTEGRATIONS[*]}"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "$VENV"
  exit 0
fi

if [ -z "${PYTHON:-}" ]; then
  for candidate in /root/.pyenv/versions/3.13*/bin/python3 "$(command -v python3.13 || true)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then PYTHON=$candidate; break; fi
  done
  if [ -z "${PYTHON:-}" ] || ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 13))'; then
    echo "ha_venv: Home Assistant $HA_VERSION needs Python >= 3.13; set PYTHON=/path/to/python3.13" >&2
    exit 2
  fi
fi

mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then  # another run finished it while we waited
  echo "$VENV"
  exit 0
fi

if [ ! -f "$stamp" ]; then
  echo "ha_venv: installing Home Assistant $HA_VERSION into $VENV (first time: a few minutes)" >&2
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip >&2
  "$VENV/bin/python" -m pip install -q "homeassistant==$HA_VERSION" >&2
fi

# The requirements of the integrations we load and of everything they depend on, from the manifests.
reqs=$("$VENV/bin/python" - "${INTEGRATIONS[@]}" <<'EOF'
import json, sys
from pathlib import Path
import homeassistant.components as components

root = Path(components.__file__).parent
seen, todo, reqs = set(), list(sys.argv[1:]), []
while todo:
    name = todo.pop()
    if name in seen:
        continue
    seen.add(name)
    manifest = json.loads((root / name / "manifest.json").read_text())
    reqs += manifest.get("requirements", [])
    todo += manifest.get("dependencies", []) + manifest.get("after_dependencies", [])
print("\n".join(sorted(set(reqs))))
EOF
)
constraints="$("$VENV/bin/python" -c 'import homeassistant, pathlib; print(pathlib.Path(homeassistant.__file__).parent / "package_constraints.txt")')"
if [ -n "$reqs" ]; then
  # shellcheck disable=SC2086
  "$VENV/bin/python" -m pip install -q -c "$constraints" $reqs >&2
fi
echo "$want" > "$stamp"
echo "$VENV"
