"""A tiny HTTP "radio" for the stream-source tests (run as a subprocess).

    python stream_server.py PORT MODE [FILE]

MODE ``mp3``: serve FILE over and over in small chunks, faster than real time but
paced, like a live stream; ``hold``: accept the request and never send a byte;
``garbage``: answer with 20 KB of text that is not audio; ``stall``: serve FILE once,
paced, then keep the connection open without another byte (a stream that hangs). Binds 127.0.0.1 only and prints
``ready PORT`` once listening.
"""

from __future__ import annotations

import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CHUNK_BYTES = 2048
CHUNK_PAUSE_SECONDS = 0.05


def make_handler(mode: str, payload: bytes) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            if mode == "hold":
                time.sleep(3600)
                return
            garbage = b"this is not audio, just a line of text\n" * 500
            self.send_response(200)
            self.send_header("Content-Type", "audio/mpeg")
            if mode == "garbage":
                self.send_header("Content-Length", str(len(garbage)))
            self.end_headers()
            try:
                if mode == "garbage":  # like a server answering with an error page
                    self.wfile.write(garbage)
                    return
                while True:  # a live stream never ends
                    for i in range(0, len(payload), CHUNK_BYTES):
                        self.wfile.write(payload[i : i + CHUNK_BYTES])
                        self.wfile.flush()
                        time.sleep(CHUNK_PAUSE_SECONDS)
                    if mode == "stall":
                        time.sleep(3600)
            except (BrokenPipeError, ConnectionResetError):
                return

    return Handler


def main() -> None:
    port, mode = int(sys.argv[1]), sys.argv[2]
    payload = Path(sys.argv[3]).read_bytes() if len(sys.argv) > 3 else b""
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(mode, payload))
    print(f"ready {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
