#!/usr/bin/env bash
# Set up everything genrecast needs on a Debian machine (run as root):
# system packages, a virtual environment in .venv with genrecast installed
# (editable, with the trainer and test extras), and a kept numba cache.
# Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(ffmpeg libsndfile1 libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins
              mosquitto mosquitto-clients tmux systemd
              systemd-container debootstrap)  # the last two: tests/test_systemd_real.py boots a Debian 12
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.genrecast-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing genrecast and its dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[train,test]"
  touch "$stamp"
fi
mkdir -p .cache/numba
echo "setup: done"
