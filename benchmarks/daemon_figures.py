"""Figures 4-7: the daemon as a process (``genrecast run``), measured from outside.

4. start to ready: spawn to the ``READY=1`` datagram on a real ``NOTIFY_SOCKET``
   (bundle loaded, stdin source open and audio arriving), warm caches.
5. end of a window's audio on stdin to its event line on stdout (window-sized writes).
6. steady state with one real-time stdin source: CPU % of one core, RSS, RSS growth.
7. concurrent real-time HTTP streams (ffmpeg decoding MP3s served at real-time pace on
   127.0.0.1) through the default bundle (genre model and music detector): the most
   sources with zero dropped windows that keep up with real time, the top level held for
   5 minutes, with the daemon's and its ffmpegs' memory per stream.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchmarks.common import (
    Context, Daemon, NotifySocket, free_port, p99, pcm_s16le, proc_children, proc_cpu_seconds, proc_pss_mb, proc_rss_mb,
    row, scrape_metrics,
)

RATE = 22050
WINDOW_SECONDS = 3.0
STDIN_ARGS = ["--source", "-", "--format", "s16le", "--rate", str(RATE)]


def _stdin_daemon(ctx: Context, *extra: str, extra_env: dict[str, str] | None = None) -> Daemon:
    return Daemon(["--bundle", str(ctx.bundle()), *STDIN_ARGS, "--json", *extra], extra_env=extra_env)


def _wait(pred, timeout: float, what: str, daemon: Daemon | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            tail = "\n".join(daemon.log[-15:]) if daemon else ""
            raise RuntimeError(f"timed out waiting for {what}\n{tail}")
        if daemon is not None and daemon.proc.poll() is not None:
            raise RuntimeError(f"the daemon exited ({daemon.proc.returncode}) while waiting for {what}\n" + "\n".join(daemon.log[-15:]))
        time.sleep(0.0005)


# --------------------------------------------------------------------------- #
# 4. start to ready


def startup(ctx: Context) -> list[dict]:
    pcm = pcm_s16le(ctx.wav_clips()[:1], 2.0)
    times = []
    runs = (2 if ctx.quick else max(5, ctx.repeats)) + 1  # the first run warms the caches and is dropped
    for i in range(runs):
        sock = NotifySocket(ctx.scratch / f"notify-{i}.sock")
        stop = threading.Event()
        try:
            daemon = _stdin_daemon(ctx, extra_env={"NOTIFY_SOCKET": str(sock.path)})

            def feed() -> None:  # audio keeps arriving, as from a live source
                try:
                    while not stop.is_set():
                        daemon.write(pcm[: 2 * RATE // 10])
                        time.sleep(0.05)
                except (BrokenPipeError, OSError, ValueError):
                    pass

            threading.Thread(target=feed, daemon=True).start()
            ready = sock.wait_for("READY=1", 60)
            if ready is None:
                raise RuntimeError("no READY=1 within 60 s:\n" + "\n".join(daemon.log[-15:]))
            if i:
                times.append(ready - daemon.started)
        finally:
            stop.set()
            daemon.stop()
            sock.close()
    med = statistics.median(times)
    return [row("startup", "daemon start to READY=1 (LiteRT, warm caches)", times, "s", target="<= 1.0 s", met=med <= 1.0,
                p99=max(times), note="spawn of `genrecast run --source -` to the datagram; p99 column = worst run")]


# --------------------------------------------------------------------------- #
# 5. end of a window's audio to its event


def latency(ctx: Context) -> list[dict]:
    n = 40 if ctx.quick else 200
    window_bytes = int(WINDOW_SECONDS * RATE) * 2
    pcm = pcm_s16le(ctx.wav_clips(), (n + 1) * WINDOW_SECONDS)
    daemon = _stdin_daemon(ctx)
    lat, first = [], None
    try:
        for k in range(n + 1):
            chunk = pcm[k * window_bytes : (k + 1) * window_bytes]
            daemon.write(chunk)
            written = time.perf_counter()  # the window's last byte is in the pipe
            _wait(lambda: len(daemon.lines) > k, 60, f"event {k}", daemon)
            arrived = daemon.lines[k][0]
            if k == 0:
                first = (arrived - written) * 1000
            else:
                lat.append((arrived - written) * 1000)
            time.sleep(0.02)
    finally:
        daemon.stop()
    worst = p99(lat)
    return [row("latency", "end of window audio -> event on stdout", lat, "ms", p99=worst, target="p99 <= 20 ms",
                met=worst <= 20.0, note=f"{n} windows written whole to stdin; first window after start: {first:.0f} ms (not counted)",
                first_window_ms=first)]


# --------------------------------------------------------------------------- #
# 6. steady state, one real-time source


def steady(ctx: Context) -> list[dict]:
    seconds = 12.0 if ctx.quick else 60.0
    warmup = 4.0
    block = RATE // 10  # 0.1 s per write
    pcm = pcm_s16le(ctx.wav_clips(), seconds + warmup + 1)
    daemon = _stdin_daemon(ctx)
    stop = threading.Event()

    def feed() -> None:
        start = time.monotonic()
        i = 0
        try:
            while not stop.is_set() and (i + 1) * block * 2 <= len(pcm):
                daemon.write(pcm[i * block * 2 : (i + 1) * block * 2])
                i += 1
                stop.wait(max(0.0, start + i * block / RATE - time.monotonic()))
        except (BrokenPipeError, OSError, ValueError):
            pass

    feeder = threading.Thread(target=feed, daemon=True)
    rss = []
    try:
        feeder.start()
        time.sleep(warmup)
        pid = daemon.proc.pid
        cpu0, t0, rss0 = proc_cpu_seconds(pid), time.monotonic(), proc_rss_mb(pid)
        while time.monotonic() - t0 < seconds:
            time.sleep(1.0)
            rss.append(proc_rss_mb(pid))
        cpu1, t1, rss1 = proc_cpu_seconds(pid), time.monotonic(), proc_rss_mb(pid)
        events = len(daemon.lines)
    finally:
        stop.set()
        daemon.stop()
    cpu = 100 * (cpu1 - cpu0) / (t1 - t0)
    return [
        row("steady", "steady state, one real-time source: CPU of one core", [cpu], "%", target="<= 1 %", met=cpu <= 1.0,
            note=f"{seconds:g} s measured after {warmup:g} s warm-up; {events} events; /proc utime+stime"),
        row("steady", "steady state: RSS (max over the run)", [max(rss)], "MB", target="<= 150 MB", met=max(rss) <= 150,
            note=f"after warm-up {rss0:.1f} MB"),
        row("steady", "steady state: RSS growth over the run", [rss1 - rss0], "MB",
            note=f"{rss0:.1f} -> {rss1:.1f} MB over {seconds:g} s"),
    ]


# --------------------------------------------------------------------------- #
# 7. concurrent real-time HTTP streams


def concurrent(ctx: Context) -> list[dict]:
    mp3 = sorted((ctx.data / "music" / "bensound").glob("*.mp3"))
    levels = [4] if ctx.quick else [50, 100]
    short, long = (15.0, 15.0) if ctx.quick else (60.0, 300.0)  # the top level is held for 5 minutes
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "benchmarks.stream_server", str(port), *map(str, mp3)],
                              stdout=subprocess.PIPE, text=True)
    rows = []
    try:
        assert server.stdout.readline().startswith("ready")
        best = 0
        for n in levels:
            seconds = long if n == levels[-1] else short
            result = _concurrent_run(ctx, port, len(mp3), n, seconds)
            ok = result["dropped"] == 0 and result["behind_sources"] == 0
            best = n if ok else best
            rows.append(row("concurrent", f"{n} real-time HTTP streams: dropped windows", [result["dropped"]], "windows",
                            target="0 dropped, keeping up", met=ok,
                            note=(f"{result['events']} events in {seconds:g} s; {result['behind_sources']} sources behind real time; "
                                  f"daemon {result['daemon_cpu']:.0f}% + ffmpeg {result['ffmpeg_cpu']:.0f}% of one core; "
                                  f"RSS daemon {result['rss_mb']:.0f} MB + ffmpeg PSS {result['ffmpeg_rss_mb']:.0f} MB = "
                                  f"{(result['rss_mb'] + result['ffmpeg_rss_mb']) / n:.1f} MB per stream"),
                            **result))
            if not ok:
                break
        target = 4 if ctx.quick else 100
        rows.append(row("concurrent", "concurrent real-time sources on 2 cores, zero dropped", [best], "sources",
                        target=f">= {target}" + (" (quick)" if ctx.quick else ""), met=best >= target,
                        note=f"levels tried: {levels[: len(rows)]}"))
    finally:
        server.kill()
        server.wait()
    return rows


def _audio_clock(events: list[dict]) -> dict[str, float]:
    """Per source, the end of the latest window it has classified (seconds of its audio)."""
    ends: dict[str, float] = {}
    for e in events:
        ends[e["source"]] = max(ends.get(e["source"], 0.0), e["audio_end_seconds"])
    return ends


def _concurrent_run(ctx: Context, port: int, files: int, n: int, seconds: float) -> dict:
    metrics_port = free_port()
    urls = [f"http://127.0.0.1:{port}/{i % files}/s{i}.mp3" for i in range(n)]
    args = ["--json"]  # the default bundle: genre model and music detector
    for url in urls:
        args += ["--source", url]
    daemon = Daemon(args, stdin=False, extra_env={"GENRECAST_METRICS_ENABLED": "true", "GENRECAST_METRICS_PORT": str(metrics_port)})
    try:
        # every source has produced its first event: all ffmpegs connected and decoding
        _wait(lambda: len({e["source"] for e in daemon.events()}) >= n, 90, f"first events of {n} streams", daemon)
        pid = daemon.proc.pid
        kids = proc_children(pid)
        cpu0 = proc_cpu_seconds(pid)
        kcpu0 = {k: proc_cpu_seconds(k) for k in kids}
        t0 = time.monotonic()
        ev0 = len(daemon.lines)
        end0 = _audio_clock(daemon.events())
        time.sleep(seconds)
        t1 = time.monotonic()
        cpu1 = proc_cpu_seconds(pid)
        kcpu = sum(proc_cpu_seconds(k) - kcpu0[k] for k in kids if Path(f"/proc/{k}").exists())
        rss = proc_rss_mb(pid)
        ffmpeg_rss = sum(proc_pss_mb(k) for k in kids if Path(f"/proc/{k}").exists())
        metrics = scrape_metrics(metrics_port)
        events = daemon.events()
        end1 = _audio_clock(events)
        # a source keeps up when its audio clock advanced by the wall time, within one window and a bit
        behind = sum(1 for s in end1 if (end1[s] - end0.get(s, 0.0)) < (t1 - t0) - WINDOW_SECONDS - 1.0)
        dropped = int(metrics.get("genrecast_windows_dropped_total", -1))
        restarts = sum(v for k, v in metrics.items() if k.startswith("genrecast_source_restarts_total"))
    finally:
        daemon.stop()
    return {"sources": n, "dropped": dropped, "events": len(daemon.lines) - ev0, "behind_sources": behind,
            "daemon_cpu": 100 * (cpu1 - cpu0) / (t1 - t0), "ffmpeg_cpu": 100 * kcpu / (t1 - t0), "rss_mb": rss,
            "ffmpeg_rss_mb": ffmpeg_rss, "seconds": seconds,
            "source_restarts": restarts}
