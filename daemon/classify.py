"""``genrecast classify``: the daemon's pipeline over whole files, synchronously."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genrecast.daemon.audio import load_audio
from genrecast.daemon.classifier import Classifier
from genrecast.daemon.events import GenreEvent
from genrecast.daemon.pipeline import EventMaker, PipelineSettings, SourceState

#: The verdict of a file that is mostly not music.
NOT_MUSIC = "not_music"

#: Seconds of audio handed to the windower at a time (as a source would).
BLOCK_SECONDS = 10.0


@dataclass
class FileResult:
    """Every window's event of one file and the file's verdict."""

    path: Path
    events: list[GenreEvent]
    labels: tuple[str, ...]
    context_seconds: float | None = None
    """For summary bundles: the context the model was trained on (e.g. 30 s)."""

    @property
    def verdict(self) -> tuple[str | None, float, dict[str, float]]:
        """(genre, probability, all probabilities): the mean over the classified windows.

        For summary bundles only the windows whose statistics cover the full
        context count (or, in a shorter file, the last window, which covers the
        most): earlier windows' statistics span only a few seconds, unlike the
        whole-clip statistics the model was trained on.

        A file whose non-silent windows are mostly ``not_music`` (the music detector's
        gate was closed: talk, noise) gets the verdict ``not_music``, with the share of
        those windows as its probability and no genre probabilities.
        """
        heard = [e for e in self.events if e.state != "silence"]
        not_music = sum(e.state == "not_music" for e in heard)
        if heard and not_music * 2 > len(heard):
            return NOT_MUSIC, not_music / len(heard), {}
        classified = [e for e in self.events if e.probabilities]
        if self.context_seconds is not None and classified:
            full = [e for e in classified if (e.context_seconds or 0) >= self.context_seconds - 0.5]
            classified = full or classified[-1:]
        probs = [e.probabilities for e in classified]
        if not probs:
            return None, 0.0, {}
        mean = {label: float(np.mean([p[label] for p in probs])) for label in self.labels}
        genre = max(mean, key=mean.get)
        return genre, mean[genre], mean

    def to_json_lines(self) -> str:
        lines = [json.dumps({"type": "window", "file": str(self.path), **e.to_dict()}) for e in self.events]
        genre, probability, probabilities = self.verdict
        lines.append(json.dumps({
            "type": "verdict", "file": str(self.path), "genre": genre, "probability": round(probability, 5),
            "probabilities": {k: round(v, 5) for k, v in probabilities.items()}, "windows": len(self.events),
        }))
        return "\n".join(lines)

    def to_table(self) -> str:
        lines = [f"{self.path}", f"  {'start':>7}  {'state':<9}  {'genre':<12} {'prob':>5}"]
        for e in self.events:
            lines.append(f"  {e.audio_start_seconds:6.1f}s  {e.state:<9}  {e.genre or '-':<12} {e.probability:5.2f}")
        genre, probability, _ = self.verdict
        lines.append(f"  verdict: {genre or 'no music heard'}" + (f" ({probability:.2f})" if genre else ""))
        return "\n".join(lines)


def classify_file(path: Path, classifier: Classifier, settings: PipelineSettings) -> FileResult:
    """Classify every window of ``path``; raises :class:`AudioDecodeError` if it cannot be read."""
    cfg = classifier.bundle.features
    audio = load_audio(path, cfg.sample_rate)
    state = SourceState(Path(path).name, classifier, settings)
    maker = EventMaker(classifier, settings)
    block = int(BLOCK_SECONDS * cfg.sample_rate)
    pending = []
    for i in range(0, len(audio), block):
        pending += state.windows(audio[i : i + block], cfg.sample_rate)
    pending += state.flush()
    return FileResult(
        path=Path(path), events=maker.events(pending) if pending else [], labels=classifier.bundle.labels,
        context_seconds=cfg.context_seconds if cfg.kind == "summary" else None,
    )
