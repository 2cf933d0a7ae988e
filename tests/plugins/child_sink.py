"""A child process holding a sink, for crash tests (run by the tests, killed with SIGKILL).

    python child_sink.py mqtt HOST PORT PREFIX CLIENT_ID   # connects, prints "connected", idles
    python child_sink.py logfile PATH                      # appends events as fast as it can
"""

from __future__ import annotations

import sys
import time

from genrecast.daemon.events import GenreEvent

LABELS = [f"genre{i:02d}" for i in range(40)]


def event(seq: int) -> GenreEvent:
    probabilities = {label: 1.0 / len(LABELS) for label in LABELS}
    return GenreEvent(source="child", seq=seq, utc="2024-05-01T12:00:00.000Z", audio_start_seconds=seq * 3.0,
                      audio_end_seconds=seq * 3.0 + 3.0, state="music", genre="genre00", probability=0.025,
                      probabilities=probabilities, smoothed_genre="genre00", smoothed_probability=0.025,
                      changed=False, level_dbfs=-20.0, model_id="child")


def main() -> None:
    if sys.argv[1] == "mqtt":
        from genrecast.plugins.mqtt_sink import MqttSettings, MqttSink

        host, port, prefix, client_id = sys.argv[2:6]
        sink = MqttSink()
        sink.start(MqttSettings(host=host, port=int(port), prefix=prefix, client_id=client_id, discovery=False), LABELS, [], "child")
        sink.genrecast_sink_event(event(0))
        while not (sink.connected and sink.events_published):
            time.sleep(0.02)
        print("connected", flush=True)
        while True:
            time.sleep(1)
    else:
        from genrecast.plugins.logfile_sink import LogfileSink

        sink = LogfileSink()
        sink.genrecast_sink_start({"path": sys.argv[2], "max_bytes": 0}, LABELS)
        seq = 0
        while True:
            sink.genrecast_sink_event(event(seq))
            seq += 1


if __name__ == "__main__":
    main()
