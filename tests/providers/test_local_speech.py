"""The offline stack for real: piper and espeak-ng speak test sentences, whisper tiny.en transcribes them.

Tolerant thresholds (the machine may be busy; accuracy, not speed, is asserted), yet a broken pipeline — wrong
sample rate, silent audio, a model that does not load — fails them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import trio

from voicebot.providers import STT_SAMPLE_RATE, ProviderConfig, Providers, resample_mono
from voicebot.providers._local_tts import piper_voice_path, split_sentences
from voicebot.providers._whisper import WhisperSTT, whisper_model_dir
from voicebot.server import Settings
from voicebot.testing import normalise_words, word_error_rate

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SENTENCES = [
    "What is twelve times seven?",
    "My favourite colour is blue.",
    "Please tell me the time and the date.",
    "Thank you very much for your help today.",
]


# Published digests (README "AI providers", provenance): Systran/faster-whisper-tiny.en at revision
# 0d3d19a32d3338f10357c0889762bd8d64bbdeba, and rhasspy/piper-voices en_US/joe/medium.
WHISPER_TINY_EN_SHA256 = {
    "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
    "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
}
PIPER_JOE_MEDIUM_SHA256 = {
    "en_US-joe-medium.onnx": "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
    "en_US-joe-medium.onnx.json": "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def test_bundled_weights_are_the_published_ones() -> None:
    model_dir = whisper_model_dir()
    assert {name: _sha256(model_dir / name) for name in WHISPER_TINY_EN_SHA256} == WHISPER_TINY_EN_SHA256
    voice = piper_voice_path()
    assert {name: _sha256(voice.with_name(name)) for name in PIPER_JOE_MEDIUM_SHA256} == PIPER_JOE_MEDIUM_SHA256


def test_sentence_splitting() -> None:
    assert split_sentences("Hello there. How are you?  Fine!") == ["Hello there.", "How are you?", "Fine!"]
    long = "This sentence has a clause, " + "and then a very long tail of words " * 5 + "to finish."
    parts = split_sentences(long, max_chars=60)
    assert parts[0] == "This sentence has a clause," and all(len(p) <= 60 for p in parts)
    assert " ".join(parts) == long
    assert split_sentences("...") == []


def test_word_error_rate() -> None:
    assert normalise_words("What's twelve, times SEVEN?") == ["what's", "12", "times", "7"]
    assert word_error_rate("my favourite colour is blue", "My favorite color is blue.") == (0, 5)
    assert word_error_rate("a b c d", "a x c") == (2, 4)
    assert word_error_rate("one hundred and five", "105") == (0, 1)


async def speak_and_transcribe(voice: str) -> tuple[int, int, list[str]]:
    config = ProviderConfig(stt="whisper", tts=voice, stt_timeout=120.0, tts_timeout=120.0)
    errors = words = 0
    transcripts = []
    async with Providers(config) as providers:
        for sentence in SENTENCES:
            async with providers.synthesize(sentence) as audio:
                chunks = [chunk async for chunk in audio]
            assert audio.provider == voice
            pcm = np.concatenate(chunks)
            assert pcm.size > 0.5 * audio.sample_rate and np.abs(pcm).max() > 1000  # real, audible speech
            pcm16 = await trio.to_thread.run_sync(resample_mono, pcm, audio.sample_rate, STT_SAMPLE_RATE)
            transcript = await providers.transcribe(pcm16)
            assert transcript.provider == "whisper"
            e, n = word_error_rate(sentence, transcript.text)
            errors, words = errors + e, words + n
            transcripts.append(transcript.text)
    return errors, words, transcripts


async def test_piper_then_whisper() -> None:
    errors, words, transcripts = await speak_and_transcribe("piper")
    assert errors / words <= 0.10, transcripts


async def test_espeak_then_whisper() -> None:
    errors, words, transcripts = await speak_and_transcribe("espeak")
    assert errors / words <= 0.40, transcripts


async def test_piper_streams_sentence_by_sentence() -> None:
    providers = Providers(ProviderConfig(tts="piper", tts_timeout=120.0))
    async with providers.synthesize("Hello there. This is the second sentence. And a third.") as audio:
        chunks = [chunk async for chunk in audio]
    assert len(chunks) == 3 and audio.sample_rate == 22_050


async def test_espeak_takes_over_another_providers_voice() -> None:
    providers = Providers(ProviderConfig(tts="espeak"))
    async with providers.synthesize("Hello there.", voice="alloy") as audio:  # an OpenAI voice name
        chunks = [chunk async for chunk in audio]
    assert audio.provider == "espeak" and sum(chunk.size for chunk in chunks) > 0.3 * audio.sample_rate


def test_whisper_window_is_bounded() -> None:
    for bad in (5.0, 9.99, 30.5):
        with pytest.raises(ValueError, match="window"):
            WhisperSTT(window=bad)
        with pytest.raises(ValueError, match="whisper_window"):
            Settings(whisper_window=bad)
    assert ProviderConfig.from_settings(Settings(whisper_window=12.5)).whisper_window == 12.5


async def test_whisper_utterances_longer_than_the_window() -> None:
    """A 10 s window still transcribes utterances longer than it (they get their own length plus 1 s), and one
    longer than whisper's 30 s window is cut at a pause into pieces: all of it is heard, none of it repeated
    (faster-whisper's own 30 s loop dropped a whole repetition of the four sentences here)."""
    config = ProviderConfig(stt="whisper", tts="piper", stt_timeout=300.0, tts_timeout=120.0, whisper_window=10.0)
    async with Providers(config) as providers:
        pieces = []
        for sentence in SENTENCES:
            async with providers.synthesize(sentence) as audio:
                chunk = np.concatenate([c async for c in audio])
            pieces.append(await trio.to_thread.run_sync(resample_mono, chunk, audio.sample_rate, STT_SAMPLE_RATE))
        gap = np.zeros(STT_SAMPLE_RATE // 2, dtype=np.int16)
        once = np.concatenate([p for piece in pieces for p in (piece, gap)])  # ~9 s
        for repeats, bound in ((1, 0.15), (3, 0.15), (4, 0.15)):  # ~9 s, ~27 s, ~36 s
            pcm = np.concatenate([once] * repeats)
            transcript = await providers.transcribe(pcm)
            errors, words = word_error_rate(" ".join(SENTENCES * repeats), transcript.text)
            assert errors / words <= bound, (pcm.size / STT_SAMPLE_RATE, transcript.text)
