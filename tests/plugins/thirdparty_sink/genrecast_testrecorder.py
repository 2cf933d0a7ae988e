"""A third-party genrecast sink: appends each event's JSON line to a file."""

import os

from genrecast.plugins import SinkConfigError, hookimpl

_path = None


@hookimpl
def genrecast_sink_start(config, labels):
    global _path
    _path = config.get("path") or os.environ.get("GENRECAST_TESTRECORDER_PATH")
    if not _path:
        raise SinkConfigError("testrecorder needs a path (setting 'path' or GENRECAST_TESTRECORDER_PATH)")


@hookimpl
def genrecast_sink_event(event):
    with open(_path, "a") as f:
        f.write(event.to_json() + "\n")
