"""Text to audio for the ``speaker`` bot.

The offline TTS is espeak-ng (design.md §5), loaded from the ``espeakng-loader`` wheel (the ``tts`` extra, which
``scripts/serve`` and ``scripts/test`` install). Where it is missing, :func:`synthesize` falls back to a clearly
labelled *synthetic speech-like signal*: one voiced "syllable" per vowel group (harmonics of a falling ~120 Hz
pitch shaped by the vowel's first two formants), short noise bursts for consonants, pauses between words and at
punctuation — not intelligible, but with speech's rhythm, pitch and spectrum. :data:`SPEECH_BACKEND` says which
one is in use (``bot.list`` shows it).
"""

from __future__ import annotations

import re
from collections import OrderedDict

import numpy as np
import numpy.typing as npt
import trio

from .._cpu import CpuPool
from ..errors import ProviderError, Severity
from ..media import FRAME_SAMPLES, SAMPLE_RATE
from ._espeak import EspeakUnavailable, espeak_available, speak

__all__ = ["MAX_SYNTH_WAITING", "SPEECH_BACKEND", "frames_of", "synthesize", "synthesize_off_loop"]

#: Syntheses one process runs at once (espeak-ng is not thread-safe, and each one is CPU-bound).
SYNTH_CONCURRENCY = 1
#: Syntheses that may wait for the synthesis thread; more fail at once with retryable ``tts_busy``.
MAX_SYNTH_WAITING = 16
#: Recent utterances kept (text -> samples), so re-adding the same speaker costs no synthesis. 8 × at most
#: ~60 s of 48 kHz s16 audio (1,000 characters) bounds it to ~46 MiB.
SYNTH_CACHE = 8

_limiter: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar("voicebot_synth_limiter")
_pool = CpuPool("voicebot-tts", SYNTH_CONCURRENCY)
_cache: OrderedDict[str, npt.NDArray[np.int16]] = OrderedDict()

SPEECH_BACKEND = (
    "espeak-ng offline TTS" if espeak_available()
    else "synthetic speech-like signal (espeak-ng unavailable: install the tts extra)"
)
"""Which synthesizer :func:`synthesize` uses (shown in ``bot.list``)."""

_FORMANTS = {"a": (730, 1090), "e": (530, 1840), "i": (270, 2290), "o": (570, 840), "u": (300, 870),
             "y": (400, 1900)}
_RATE = SAMPLE_RATE


def _syllable(vowel: str, seconds: float, f0: float, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    n = int(seconds * _RATE)
    t = np.arange(n) / _RATE
    pitch = f0 * (1.0 - 0.15 * t / max(seconds, 1e-3))  # falling intonation
    phase = 2 * np.pi * np.cumsum(pitch) / _RATE
    f1, f2 = _FORMANTS.get(vowel, (500, 1500))
    out = np.zeros(n)
    for k in range(1, 30):
        fk = k * f0
        if fk > 4000:
            break
        gain = np.exp(-(((fk - f1) / 150) ** 2)) + 0.6 * np.exp(-(((fk - f2) / 200) ** 2)) + 0.05 / k
        out += gain * np.sin(k * phase)
    envelope = np.minimum(1.0, np.minimum(t / 0.02, (seconds - t) / 0.04).clip(0.0))
    return np.asarray(out * envelope, dtype=np.float64)


def synthesize(text: str, *, seed: int = 0) -> npt.NDArray[np.int16]:
    """``text`` as 48 kHz mono s16 samples: espeak-ng when available, else the synthetic signal."""
    try:
        return speak(text, rate=_RATE)
    except EspeakUnavailable:
        return synthetic_speech(text, seed=seed)


async def synthesize_off_loop(text: str) -> npt.NDArray[np.int16]:
    """:func:`synthesize` in a low-priority worker thread (``voicebot._cpu``), never on the event loop (issue 12
    row 2: 4 speakers × 1,000 characters froze the hub for 3.4 s when this ran on the loop).

    Budget per process: :data:`SYNTH_CONCURRENCY` at once, :data:`MAX_SYNTH_WAITING` waiting (then
    ``tts_busy``, retryable); the last :data:`SYNTH_CACHE` utterances are cached. Cancelling a waiter is
    immediate; a running synthesis finishes in its thread and its result is cached.
    """
    cached = _cache.get(text)
    if cached is not None:
        _cache.move_to_end(text)
        return cached
    try:
        limiter = _limiter.get()
    except LookupError:
        limiter = trio.CapacityLimiter(SYNTH_CONCURRENCY)
        _limiter.set(limiter)
    if limiter.statistics().tasks_waiting >= MAX_SYNTH_WAITING:
        raise ProviderError("speech synthesis is busy; try again shortly", code="tts_busy", severity=Severity.LOW,
                            retryable=True, retry_after=2.0)
    async with limiter:
        samples = await _pool.run(synthesize, text)
    _cache[text] = samples
    while len(_cache) > SYNTH_CACHE:
        _cache.popitem(last=False)
    return samples


def synthetic_speech(text: str, *, seed: int = 0) -> npt.NDArray[np.int16]:
    """The fallback: a speech-like signal for ``text`` (see the module docs), 48 kHz mono s16."""
    rng = np.random.default_rng(seed)
    parts: list[npt.NDArray[np.float64]] = []
    for token in re.findall(r"[a-zA-Z']+|[.,;:!?]", text.lower()):
        if token in ".,;:!?":
            parts.append(np.zeros(int((0.25 if token in ".!?" else 0.12) * _RATE)))
            continue
        groups = re.findall(r"[^aeiouy]*[aeiouy]+|[^aeiouy]+$", token) or [token]
        for i, group in enumerate(groups):
            consonants = re.sub(r"[aeiouy]", "", group)
            if consonants:
                burst = rng.normal(0.0, 0.08, int(0.035 * _RATE * min(len(consonants), 2)))
                parts.append(burst)
            vowel = next((c for c in group if c in "aeiouy"), "e")
            parts.append(_syllable(vowel, 0.14 + 0.03 * (i == len(groups) - 1), 125.0 - 5 * i, rng))
        parts.append(np.zeros(int(0.06 * _RATE)))
    if not parts:
        return np.zeros(0, dtype=np.int16)
    audio = np.concatenate(parts)
    peak = float(np.max(np.abs(audio))) or 1.0
    return np.asarray(np.round(audio / peak * 0.5 * 32767), dtype=np.int16)


def frames_of(samples: npt.NDArray[np.int16]) -> list[npt.NDArray[np.int16]]:
    """Cut samples into 20 ms frames (``FRAME_SAMPLES``), zero-padding the last."""
    pad = (-len(samples)) % FRAME_SAMPLES
    padded = np.concatenate([samples, np.zeros(pad, dtype=np.int16)]) if pad else samples
    return [np.ascontiguousarray(chunk) for chunk in padded.reshape(-1, FRAME_SAMPLES)]
