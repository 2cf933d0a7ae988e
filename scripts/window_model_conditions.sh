#!/usr/bin/env bash
# The window model of the original design under capture conditions (issue 13, section 4):
# 3-s MFCC windows, --arch cnn and mlp, each without and with --augment (copies of every
# training file under random capture conditions), trained on the full GTZAN clips
# (gtzan-more, gtzan-sample less the 13 evaluation clips) and the excerpts (gtzan-excerpts),
# never on reserved ids; split by track (an excerpt and the full clip of one id share a
# track id, so they stay on one side). Then every bundle classifies the 13 evaluation clips
# under each condition of the robustness issue's table (seeded as `genrecast evaluate
# --conditions targets` seeds them), next to the default bundle (daemon/default_bundle, the
# reference column), and WORK/conditions.md gets the table.
#
#   scripts/window_model_conditions.sh [DATA] [WORK]
#   DATA: the ../shared/data layout (default: ../shared/data); WORK: default /tmp/genrecast-winmodel
#   EPOCHS (default 40), AUGMENT (copies, default 2), WINDOWS (seconds, default "3 2": the excerpts are
#   2.0-3.0 s long, so only 2-s windows use them), SEED (default 0),
#   WORKERS (default 2), ARCHS (default "cnn mlp").
#
# Settings are chosen by validation only: conditions.md lists each bundle's validation
# accuracy next to its test figures. Features (clean and augmented) are cached, so a rerun
# trains at once. Every step runs under `nice`.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data}
WORK=${2:-/tmp/genrecast-winmodel}
EPOCHS=${EPOCHS:-40}
AUGMENT=${AUGMENT:-2}
WINDOWS=${WINDOWS:-3 2}
SEED=${SEED:-0}
WORKERS=${WORKERS:-2}
ARCHS=${ARCHS:-cnn mlp}
PY=${PY:-.venv/bin/python}
GENRECAST=${GENRECAST:-.venv/bin/genrecast}

mkdir -p "$WORK/bundles"
nice "$PY" scripts/window_model_conditions.py prepare "$DATA" "$WORK"
bundles=()
for window in $WINDOWS; do
  for arch in $ARCHS; do
    for copies in 0 "$AUGMENT"; do
      name="$arch-w${window}-aug$copies"
      nice "$GENRECAST" train "$WORK/train-data" --out "$WORK/bundles/$name" --arch "$arch" --window-seconds "$window" \
        --epochs "$EPOCHS" --seed "$SEED" --workers "$WORKERS" --augment "$copies" --conditions none
      bundles+=("$WORK/bundles/$name")
    done
  done
done
nice "$PY" scripts/window_model_conditions.py evaluate "$WORK" daemon/default_bundle "${bundles[@]}"
echo "table: $WORK/conditions.md, details: $WORK/conditions.json"
