"""One ``.tflite`` model on the LiteRT interpreter, callable on batches from any thread."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from genrecast.daemon.stderr import dropping_lines


def _is_xnnpack_notice(line: bytes) -> bool:
    """LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." (printed on every start)."""
    return line.startswith(b"INFO: Created TensorFlow Lite XNNPACK delegate")


class LiteRTModel:
    """Runs a ``.tflite`` file (one input, one output) on float32 batches; resizes its input
    tensor when the batch size changes, up to ``max_batch`` rows at a time (None: any; a
    convolutional model's working memory grows with the batch and is kept). Raises
    ``ValueError`` for an unreadable file."""

    def __init__(self, path: str | Path, num_threads: int = 1, max_batch: int | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        details = self._interpreter.get_input_details()[0]
        self._input = details["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        with dropping_lines(_is_xnnpack_notice):  # LiteRT prints it at the first allocation; it has no switch
            self._interpreter.allocate_tensors()
        self._batch = int(details["shape"][0])
        self._max_batch = max_batch
        self._lock = threading.Lock()

    def run(self, x: np.ndarray) -> np.ndarray:
        """``x``: batch x input (float32); returns batch x outputs (a copy)."""
        if self._max_batch and len(x) > self._max_batch:
            return np.concatenate([self.run(x[i:i + self._max_batch]) for i in range(0, len(x), self._max_batch)])
        with self._lock:
            if x.shape[0] != self._batch:
                self._interpreter.resize_tensor_input(self._input, list(x.shape))
                self._interpreter.allocate_tensors()
                self._batch = x.shape[0]
            self._interpreter.set_tensor(self._input, x)
            self._interpreter.invoke()
            return np.array(self._interpreter.get_tensor(self._output), dtype=np.float32)
