#!/usr/bin/env bash
# Rebuild daemon/default_bundle/: musicnn's pre-trained layers (the musicnn==0.1.0 wheel, fetched
# with pip and checked by its SHA-256) with a genre head trained on the GTZAN audio of
# ../shared/data under capture conditions (genrecast/trainer/musicnn_train.py), the music
# detector of daemon/table_bundle, and the 13 evaluation clips' per-condition table.
#
#   scripts/make_default_bundle.sh              # about 15 min on 2 cores
#   scripts/make_default_bundle.sh --validate   # the head's C on the 56 held-out clips (about 20 min)
#
# Inputs (never copied into the repo): gtzan-excerpts/, gtzan-more/ and gtzan-sample/ (without
# the 13 evaluation clips and the ids of reserved-ids.txt), reference/features_30_sec.csv (for the
# reserved ids' replicas) and the artist-filtered lists in splits/.
# Fixed seed, deterministic TF ops, one thread.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${GENRECAST_TEST_DATA:-../shared/data}"
OUT=daemon/default_bundle
PY=.venv/bin/python
export PYTHONHASHSEED=0 TF_DETERMINISTIC_OPS=1 TF_CPP_MIN_LOG_LEVEL=3 CUDA_VISIBLE_DEVICES=""
export OMP_NUM_THREADS=1 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1
if [[ "${1:-}" == "--validate" ]]; then
    exec "$PY" -m genrecast.trainer.musicnn_train "$DATA" --validate --jobs "$(getconf _NPROCESSORS_ONLN)"
fi
"$PY" -m genrecast.trainer.musicnn_train "$DATA" --out "$OUT" --detector-from daemon/table_bundle \
    --jobs "$(getconf _NPROCESSORS_ONLN)"
sha256sum "$OUT"/model.tflite "$OUT"/model.keras "$OUT"/detector.tflite "$OUT"/bundle.json
