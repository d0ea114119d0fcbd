"""The offline stack for real: piper and espeak-ng speak test sentences, whisper tiny.en transcribes them.

Tolerant thresholds (the machine may be busy; accuracy, not speed, is asserted), yet a broken pipeline — wrong
sample rate, silent audio, a model that does not load — fails them.
"""

from __future__ import annotations

import numpy as np
import pytest
import trio

from voicebot.providers import STT_SAMPLE_RATE, ProviderConfig, Providers, resample_mono
from voicebot.testing import normalise_words, word_error_rate

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SENTENCES = [
    "What is twelve times seven?",
    "My favourite colour is blue.",
    "Please tell me the time and the date.",
    "Thank you very much for your help today.",
]


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
