"""Bot building blocks without media: speaker options, the synthetic speech signal, specs."""

from __future__ import annotations

import numpy as np
import pytest

from voicebot.bots import SPEECH_BACKEND, Bot, SpeakerBot, builtin_bots, synthesize
from voicebot.bots._espeak import espeak_available
from voicebot.bots._speech import frames_of, synthetic_speech
from voicebot.errors import ValidationError
from voicebot.media import FRAME_SAMPLES, dominant_frequency


def test_builtin_specs_are_advertised_with_the_speech_backend() -> None:
    specs = builtin_bots()
    assert set(specs) == {"assistant", "echo", "speaker"}
    assert specs["speaker"].descriptor()["description"].endswith(f"({SPEECH_BACKEND})")
    assert SPEECH_BACKEND == "espeak-ng offline TTS"  # scripts/test installs the tts extra
    assert isinstance(specs["echo"].factory({}), Bot)


@pytest.mark.parametrize("options", [{}, {"text": ""}, {"text": "   "}, {"text": "x" * 1001}, {"text": 5},
                                     {"text": "hi", "repeat": 0.1}, {"text": "hi", "repeat": True},
                                     {"text": "hi", "repeat": "1"}])
def test_speaker_rejects_bad_options(options: dict[str, object]) -> None:
    with pytest.raises(ValidationError) as info:
        SpeakerBot.from_options(options)
    assert info.value.code == "invalid_options"


def test_espeak_speaks_text() -> None:
    assert espeak_available()
    samples = synthesize("Hello there. How are you today?")
    seconds = samples.size / 48_000
    assert 1.0 < seconds < 4.0 and samples.dtype == np.int16
    assert np.sqrt(np.mean((samples / 32768.0) ** 2)) > 0.02
    frames = frames_of(samples)
    energies = np.array([np.sqrt(np.mean((f / 32768.0) ** 2)) for f in frames])
    voiced = np.concatenate([f for f, e in zip(frames, energies, strict=True) if e > 0.05][:10])
    assert 80 < dominant_frequency(voiced, 48_000) < 4000
    again = synthesize("Hello there. How are you today?")  # espeak-ng's length varies by a few samples
    assert abs(again.size - samples.size) < 0.01 * samples.size


def test_synthetic_speech_is_speech_like() -> None:
    samples = synthetic_speech("Hello there. How are you today?")
    seconds = samples.size / 48_000
    assert 1.0 < seconds < 4.0  # roughly speaking rate
    level = np.sqrt(np.mean((samples / 32768.0) ** 2))
    assert level > 0.05
    frames = frames_of(samples)
    assert all(f.shape == (FRAME_SAMPLES,) and f.dtype == np.int16 for f in frames)
    energies = np.array([np.sqrt(np.mean((f / 32768.0) ** 2)) for f in frames])
    assert (energies < 0.01).sum() >= 5  # pauses between words and sentences
    voiced = np.concatenate([f for f, e in zip(frames, energies, strict=True) if e > 0.1][:10])
    assert 80 < dominant_frequency(voiced, 48_000) < 1200  # pitch harmonics/formant region, not noise
    assert np.array_equal(samples, synthetic_speech("Hello there. How are you today?"))  # deterministic
    assert synthetic_speech("").size == 0
