"""A local "radio" for the concurrency benchmark: ``python -m benchmarks.stream_server PORT MP3...``.

``GET /K/anything`` streams MP3 file K over and over at its real-time byte rate (after a
2-s burst, as live servers send to fill the player's buffer). Binds 127.0.0.1 only and
prints ``ready PORT`` once listening.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CHUNK_BYTES = 4096
BURST_SECONDS = 2.0


def duration_seconds(path: Path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return float(json.loads(out)["format"]["duration"])


def make_handler(files: list[tuple[bytes, float]]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            try:
                payload, rate = files[int(self.path.strip("/").split("/")[0]) % len(files)]
            except ValueError:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "audio/mpeg")
            self.end_headers()
            start = time.monotonic() - BURST_SECONDS
            sent = 0
            try:
                while True:
                    for i in range(0, len(payload), CHUNK_BYTES):
                        part = payload[i : i + CHUNK_BYTES]
                        self.wfile.write(part)
                        sent += len(part)
                        ahead = start + sent / rate - time.monotonic()
                        if ahead > 0:
                            time.sleep(ahead)
            except (BrokenPipeError, ConnectionResetError):
                return

    return Handler


def main() -> None:
    port = int(sys.argv[1])
    files = []
    for name in sys.argv[2:]:
        data = Path(name).read_bytes()
        files.append((data, len(data) / duration_seconds(Path(name))))
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(files))
    print(f"ready {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
