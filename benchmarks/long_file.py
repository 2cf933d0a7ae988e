"""Figure: peak memory of ``genrecast classify`` on hour-long files (issue 17, item 3).

Makes a 48 kHz stereo MP3 of a real GTZAN clip looped for 20 minutes and 3 hours
(``--quick``: 20 minutes only), then runs ``genrecast classify --json FILE`` on each with
the built-in model and reads the peak resident set size of the command: the largest ``VmHWM``
(the high-water mark of the resident set, /proc/PID/status) of the command and its ffmpeg/ffprobe
children, sampled while it runs. Not ``wait4``'s ``ru_maxrss``: a child forked from this process
starts with its resident set, so ``ru_maxrss`` counted the benchmark's own memory (308 MB for the
20-minute file after the other figures, against 113 MB alone). Memory must not grow with the
length; the target is 200 MB for 3 hours.
"""

from __future__ import annotations

import math
import subprocess
import threading
import time
from pathlib import Path

from benchmarks.common import GENRECAST, Context, env, proc_children, proc_peak_rss_mb, row

TARGET_MB = 200.0


def make_mp3(clip: Path, seconds: int, out: Path) -> Path:
    """``clip`` looped to ``seconds``, as a 128 kbit/s 48 kHz stereo MP3."""
    if not out.exists():
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-stream_loop", "-1", "-i", f"file:{clip}",
                        "-t", str(seconds), "-ar", "48000", "-ac", "2", "-b:a", "128k", f"file:{out}"],
                       check=True, timeout=3600)
    return out


def _high_water_mb(pid: int) -> float:
    """:func:`proc_peak_rss_mb` of ``pid``; 0 once it has gone (or before it has memory of its own)."""
    try:
        peak = proc_peak_rss_mb(pid)
    except OSError:
        return 0.0
    return 0.0 if math.isnan(peak) else peak


def classify_peak(path: Path) -> tuple[float, float, int]:
    """(peak RSS in MB, wall seconds, windows) of ``genrecast classify --json PATH`` (see the module)."""
    started = time.perf_counter()
    proc = subprocess.Popen([GENRECAST, "classify", "--json", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env())
    peak, done = [0.0], threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], *(_high_water_mb(p) for p in (proc.pid, *proc_children(proc.pid))))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    windows = sum(1 for line in proc.stdout if line.startswith(b'{"type": "window"'))
    done.set()
    sampler.join()
    if proc.wait() != 0:
        raise RuntimeError(f"classify {path} exited {proc.returncode}")
    return peak[0], time.perf_counter() - started, windows


def run(ctx: Context) -> list[dict]:
    clip = ctx.gtzan_sample / "rock" / "rock.00000.wav"
    lengths = [20 * 60] if ctx.quick else [20 * 60, 3 * 3600]
    rows = []
    for seconds in lengths:
        mp3 = make_mp3(clip, seconds, ctx.scratch / f"long-{seconds}.mp3")
        peaks, walls = [], []
        for _ in range(1 if seconds > 3600 else ctx.repeats):
            peak, wall, windows = classify_peak(mp3)
            peaks.append(peak)
            walls.append(wall)
        big = seconds >= 3 * 3600
        length = f"{seconds // 3600}-h" if seconds % 3600 == 0 else f"{seconds // 60}-min"
        rows.append(row("longfile", f"genrecast classify of a {length} 48 kHz stereo MP3: peak RSS (MB)", peaks, "MB",
                        target=f"<= {TARGET_MB:g} MB" if big else None, met=(max(peaks) <= TARGET_MB) if big else None,
                        note=f"{windows} windows, {min(walls):.0f} s wall ({seconds / min(walls):.0f}x real time)"))
    return rows
