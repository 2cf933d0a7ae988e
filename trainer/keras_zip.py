"""Byte-stable ``.keras`` files: the same model saved twice gives the same bytes."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any


def _renumber_shared_objects(node: Any, ids: dict[int, int]) -> Any:
    """Replace Keras' ``shared_object_id`` values (Python ``id()``s) by their order of appearance."""
    if isinstance(node, dict):
        return {
            k: ids.setdefault(v, len(ids)) if k == "shared_object_id" else _renumber_shared_objects(v, ids)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_renumber_shared_objects(v, ids) for v in node]
    return node


def normalise_keras_zip(path: Path) -> None:
    """Make ``model.keras`` byte-stable: fixed zip timestamps, no save date, stable object ids."""
    with zipfile.ZipFile(path) as zf:
        entries = [(info.filename, zf.read(info.filename)) for info in zf.infolist()]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            if name == "metadata.json":
                meta = json.loads(data)
                meta.pop("date_saved", None)
                data = json.dumps(meta, sort_keys=True).encode()
            elif name == "config.json":
                data = json.dumps(_renumber_shared_objects(json.loads(data), {})).encode()
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data, compress_type=zipfile.ZIP_DEFLATED)
    path.write_bytes(buf.getvalue())
