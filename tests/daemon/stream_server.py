"""A tiny HTTP "radio" for the stream-source tests (run as a subprocess).

    python stream_server.py PORT MODE [FILE [ARG]]

MODE ``mp3``: serve FILE over and over in small chunks, faster than real time but
paced, like a live stream; ``live``: the same at ARG bytes a second (a real-time
stream: ffmpeg needs seconds to probe it); ``auth``: like ``mp3``, but only to a
request with HTTP Basic credentials ARG (``user:password``), else 401; ``hold``:
accept the request and never send a byte; ``garbage``: answer with 20 KB of text
that is not audio; ``stall``: serve FILE once,
paced, then keep the connection open without another byte (a stream that hangs);
``missing``: answer 404; ``file``: serve FILE once, whole, with its length, and close (a
hosted MP3 or podcast episode: it ends). Binds 127.0.0.1 only and prints
``ready PORT`` once listening; with ``auth`` it prints ``auth OK`` or ``auth REFUSED``
on stderr for each request.
"""

from __future__ import annotations

import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CHUNK_BYTES = 2048
CHUNK_PAUSE_SECONDS = 0.05


def make_handler(mode: str, payload: bytes, arg: str = "") -> type[BaseHTTPRequestHandler]:
    import base64

    chunk_bytes, pause = CHUNK_BYTES, CHUNK_PAUSE_SECONDS
    if mode == "live":
        chunk_bytes = max(1, int(arg) // 20)  # 20 chunks a second

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            if mode == "hold":
                time.sleep(3600)
                return
            if mode == "missing":
                self.send_error(404, "Not Found")
                return
            if mode == "auth":
                expected = "Basic " + base64.b64encode(arg.encode()).decode()
                ok = self.headers.get("Authorization") == expected
                print("auth OK" if ok else "auth REFUSED", file=sys.stderr, flush=True)
                if not ok:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="radio"')
                    self.end_headers()
                    return
            garbage = b"this is not audio, just a line of text\n" * 500
            self.send_response(200)
            self.send_header("Content-Type", "audio/mpeg")
            if mode == "garbage":
                self.send_header("Content-Length", str(len(garbage)))
            if mode == "file":
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            try:
                if mode == "garbage":  # like a server answering with an error page
                    self.wfile.write(garbage)
                    return
                if mode == "file":
                    self.wfile.write(payload)
                    return
                while True:  # a live stream never ends
                    for i in range(0, len(payload), chunk_bytes):
                        self.wfile.write(payload[i : i + chunk_bytes])
                        self.wfile.flush()
                        time.sleep(pause)
                    if mode == "stall":
                        time.sleep(3600)
            except (BrokenPipeError, ConnectionResetError):
                return

    return Handler


def main() -> None:
    port, mode = int(sys.argv[1]), sys.argv[2]
    payload = Path(sys.argv[3]).read_bytes() if len(sys.argv) > 3 else b""
    arg = sys.argv[4] if len(sys.argv) > 4 else ""
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(mode, payload, arg))
    print(f"ready {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
