"""Figure: peak memory of ``genrecast classify`` on hour-long files (issue 17, item 3).

Makes a 48 kHz stereo MP3 of a real GTZAN clip looped for 20 minutes and 3 hours
(``--quick``: 20 minutes only), then runs ``genrecast classify --json FILE`` on each with
the built-in model and reads the peak resident set size of the command from ``wait4``
(the largest of the command and the ffmpeg/ffprobe children it waited for). Memory must
not grow with the length; the target is 200 MB for 3 hours.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from benchmarks.common import GENRECAST, Context, env, row

TARGET_MB = 200.0


def make_mp3(clip: Path, seconds: int, out: Path) -> Path:
    """``clip`` looped to ``seconds``, as a 128 kbit/s 48 kHz stereo MP3."""
    if not out.exists():
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-stream_loop", "-1", "-i", f"file:{clip}",
                        "-t", str(seconds), "-ar", "48000", "-ac", "2", "-b:a", "128k", f"file:{out}"],
                       check=True, timeout=3600)
    return out


def classify_peak(path: Path) -> tuple[float, float, int]:
    """(peak RSS in MB, wall seconds, windows) of ``genrecast classify --json PATH``."""
    started = time.perf_counter()
    proc = subprocess.Popen([GENRECAST, "classify", "--json", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env())
    windows = sum(1 for line in proc.stdout if line.startswith(b'{"type": "window"'))
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"classify {path} exited {proc.returncode}")
    return usage.ru_maxrss / 1024, time.perf_counter() - started, windows


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
