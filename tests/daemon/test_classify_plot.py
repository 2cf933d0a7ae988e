"""`genrecast classify --plot DIR` on a real recording of talk, silence and music: the PNG exists at
the path its verdict line names, has the documented size, carries the numbers of the run's window
events, and its pixels show them (the top genre's colour in its band of the stack, the silence
and not-music bands where those windows are)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from helpers import need, run_cli

Image = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def talk_silence_music(tmp_path_factory, data_dir: Path) -> Path:
    """12 s of broadcast speech, 6 s of digital silence, 12 s of metal: one 22.05-kHz WAV (ffmpeg)."""
    speech = need(data_dir / "music-speech" / "speech" / "comedy1.flac")
    music = need(data_dir / "gtzan-sample" / "metal" / "metal.00000.wav")
    out = tmp_path_factory.mktemp("mix") / "talk-silence-music.wav"
    mono = "aresample=22050,aformat=channel_layouts=mono"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-t", "12", "-i", str(speech), "-f", "lavfi", "-t", "6", "-i",
                    "anullsrc=r=22050:cl=mono", "-t", "12", "-i", str(music), "-filter_complex",
                    f"[0:a]{mono}[a];[2:a]{mono}[c];[a][1:a][c]concat=n=3:v=0:a=1", str(out)], check=True, timeout=60)
    return out


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])


def test_the_timeline_shows_the_events(talk_silence_music: Path, tmp_path: Path) -> None:
    from genrecast.daemon.plot import METADATA_KEY, SIZE_PIXELS

    out = tmp_path / "out.jsonl"
    proc = run_cli("classify", "--plot", str(tmp_path / "plots"), str(talk_silence_music), "-o", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    windows = [r for r in rows if r["type"] == "window"]
    [verdict] = [r for r in rows if r["type"] == "verdict"]
    assert {w["state"] for w in windows} >= {"music", "silence", "not_music"}, [w["state"] for w in windows]

    png = Path(verdict["plot"])
    assert png == tmp_path / "plots" / (str(talk_silence_music).lstrip("/") + ".png")  # an absolute path, mirrored
    assert png.is_file()
    image = Image.open(png)
    assert image.size == SIZE_PIXELS
    plotted = json.loads(image.text[METADATA_KEY])

    # The numbers in the picture are the run's events, window for window.
    assert [(p["start"], p["state"]) for p in plotted["windows"]] == [(w["audio_start_seconds"], w["state"]) for w in windows]
    for p, w in zip(plotted["windows"], windows):
        expected = {} if w["state"] in ("silence", "not_music") else w["probabilities"]
        assert {k: v for k, v in p["probabilities"].items() if v} == {k: v for k, v in expected.items() if v}

    # And the pixels show them.
    pixels = np.asarray(image.convert("RGB")).astype(int)
    left, top, right, bottom = plotted["axes_pixels"]
    x_min, x_max = plotted["x_seconds"]
    checked = {"music": 0, "silence": 0, "not_music": 0}
    for p in plotted["windows"]:
        x = int(round(left + ((p["start"] + p["end"]) / 2 - x_min) / (x_max - x_min) * (right - left)))
        if p["state"] in plotted["bands"]:
            colour = plotted["bands"][p["state"]]
            y = int(round((top + bottom) / 2))
        else:
            labels = plotted["labels"]
            genre = max(p["probabilities"], key=p["probabilities"].get)
            below = sum(p["probabilities"][label] for label in labels[: labels.index(genre)])
            middle = below + p["probabilities"][genre] / 2  # the middle of the genre's band of the stack
            if p["probabilities"][genre] * (bottom - top) < 10:
                continue
            colour = plotted["colours"][genre]
            y = int(round(bottom - middle * (bottom - top)))
        assert np.abs(pixels[y, x] - _rgb(colour)).max() <= 3, (p, pixels[y, x], colour)
        checked[p["state"]] += 1
    assert all(checked.values()), checked


def test_a_timeline_that_cannot_be_written_keeps_the_verdict_and_the_batch(data_dir: Path, tmp_path: Path) -> None:
    """Where one file's PNG cannot be written (a file stands where its folder would go), that file
    keeps its verdict without a plot, its error is one line, the next file is still classified
    and plotted, and the exit status is 1."""
    first, second = tmp_path / "a" / "one.wav", tmp_path / "b" / "two.wav"
    for link, clip in ((first, "blues.00001.wav"), (second, "rock.00001.wav")):
        link.parent.mkdir()
        link.symlink_to(need(data_dir / "gtzan-excerpts" / clip.split(".")[0] / clip))
    plots = tmp_path / "plots"
    (plots / str(first.parent).lstrip("/")).parent.mkdir(parents=True)
    (plots / str(first.parent).lstrip("/")).write_text("a file where the folder of one.wav.png would go\n")
    out = tmp_path / "out.jsonl"
    proc = run_cli("classify", "--plot", str(plots), str(first), str(second), "-o", str(out))
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("genrecast: error:")]
    assert errors == [f"genrecast: error: {first}: cannot write its timeline {plots / (str(first).lstrip('/') + '.png')}: "
                      "File exists; check --plot's folder"], proc.stderr
    assert proc.stderr.strip().splitlines()[-1].endswith("; 1 timeline not written")
    verdicts = {v["file"]: v for v in map(json.loads, out.read_text().splitlines()) if v["type"] == "verdict"}
    assert set(verdicts) == {str(first), str(second)}
    assert "plot" not in verdicts[str(first)] and Path(verdicts[str(second)]["plot"]).is_file()
