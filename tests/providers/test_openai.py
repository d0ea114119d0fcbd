"""The `openai` providers against the scripted OpenAI-compatible server on loopback (real HTTP, streaming)."""

from __future__ import annotations

import io
import logging
import wave

import numpy as np
import pytest
import trio

from voicebot.errors import ProviderError, classify
from voicebot.providers import ChatMessage, Conversation, ProviderConfig, Providers
from voicebot.resilience import BreakerRegistry
from voicebot.testing import FakeOpenAI, open_fake_openai

pytestmark = pytest.mark.slow

KEY = "sk-test-SECRET-0123456789"


def providers_for(fake: FakeOpenAI, **options: object) -> Providers:
    settings: dict[str, object] = {"stt": "openai,local", "llm": "openai,local", "tts": "openai,espeak",
                                   "openai_base_url": fake.base_url, "api_key": KEY, **options}
    return Providers(ProviderConfig(**settings), breakers=BreakerRegistry())  # type: ignore[arg-type]


async def collect(providers: Providers, messages: list[ChatMessage]) -> tuple[str, str, float]:
    async with providers.stream(messages) as reply:
        text = "".join([piece async for piece in reply])
    return reply.provider, text, reply.first_latency


async def test_streaming_chat_over_sse() -> None:
    async with (open_fake_openai(api_key=KEY, reply="One two three four.", first_token=0.2, per_token=0.1) as fake,
                providers_for(fake) as providers):
        conversation = Conversation("You are Max.")
        conversation.add_user("alice", "Hi there")
        start = trio.current_time()
        arrivals: list[float] = []
        async with providers.stream(conversation.messages()) as reply:
            pieces = []
            async for piece in reply:
                pieces.append(piece)
                arrivals.append(trio.current_time() - start)
        assert reply.provider == "openai" and "".join(pieces) == "One two three four."
        assert len(pieces) == 4
        # streamed, not buffered: the pieces arrive spread over the server's 3 x 0.1 s token gaps (load only widens
        # the spread; a buffered reply would deliver them all at once)
        assert arrivals[0] >= 0.2 and arrivals[-1] - arrivals[0] >= 0.25
        request = fake.requests[-1]
        assert request.endpoint == "chat" and request.json["stream"] is True
        assert request.json["model"] == "gpt-4o-mini"
        assert request.headers["authorization"] == f"Bearer {KEY}"
        assert fake.chat_messages()[-1] == [{"role": "system", "content": "You are Max."},
                                            {"role": "user", "content": "alice: Hi there"}]


async def test_transcription_uploads_a_16k_wav() -> None:
    async with (open_fake_openai(api_key=KEY, transcript="what time is it") as fake,
                providers_for(fake, stt_model="whisper-x") as providers):
        pcm = (np.sin(np.arange(16_000) / 10) * 1000).astype(np.int16)
        transcript = await providers.transcribe(pcm, language="en-US")
        assert (transcript.text, transcript.provider) == ("what time is it", "openai")
        request = fake.requests[-1]
        assert request.fields == {"model": "whisper-x", "response_format": "json", "language": "en"}
        with wave.open(io.BytesIO(request.file)) as wav:
            assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16_000, 1, 2)
            assert np.array_equal(np.frombuffer(wav.readframes(wav.getnframes()), "<i2"), pcm)


async def test_speech_streams_pcm_while_downloading() -> None:
    async with open_fake_openai(api_key=KEY, first_audio=0.1, per_chunk=0.1) as fake, providers_for(fake) as providers:
        start = trio.current_time()
        arrivals = []
        async with providers.synthesize("Hello there, this is a longer sentence.") as audio:
            total = 0
            async for chunk in audio:
                arrivals.append(trio.current_time() - start)
                total += chunk.size
        assert audio.provider == "openai" and audio.sample_rate == 24_000
        assert total == int(len("Hello there, this is a longer sentence.") * 0.06 * 24_000)
        assert len(arrivals) >= 5 and arrivals[0] < arrivals[-1] - 0.3  # played while it downloads
        assert fake.requests[-1].json == {"model": "tts-1", "input": "Hello there, this is a longer sentence.",
                                          "voice": "alloy", "response_format": "pcm"}


async def test_retryable_status_is_retried_with_retry_after() -> None:
    async with open_fake_openai(api_key=KEY, reply="Recovered.") as fake:
        fake.fail("chat", status=503, times=1, retry_after=0.5)
        fake.fail("chat", status=429, times=1)
        async with providers_for(fake, llm_timeout=4.0) as providers:
            start = trio.current_time()
            provider, text, _ = await collect(providers, [ChatMessage(role="user", content="hi")])
            assert (provider, text) == ("openai", "Recovered.")
            assert fake.count("chat") == 3
            assert trio.current_time() - start >= 0.5  # honoured Retry-After


async def test_client_errors_are_not_retried_and_fall_back() -> None:
    async with open_fake_openai(api_key=KEY) as fake:
        fake.fail("chat", status=400)
        async with providers_for(fake) as providers:
            provider, text, _ = await collect(providers, [ChatMessage(role="user", content="what is two plus two")])
            assert (provider, text) == ("responder", "That's 4.")
            assert fake.count("chat") == 1


async def test_hanging_server_hits_the_deadline_then_local(caplog: pytest.LogCaptureFixture) -> None:
    async with open_fake_openai(api_key=KEY) as fake:
        fake.hang("chat")
        fake.hang("speech")
        async with providers_for(fake, llm_timeout=0.5, tts_timeout=0.5) as providers:
            start = trio.current_time()
            provider, _, latency = await collect(providers, [ChatMessage(role="user", content="hello")])
            assert provider == "responder" and 0.5 <= latency < 1.5
            async with providers.synthesize("Hello.") as audio:
                assert [chunk async for chunk in audio] and audio.provider == "espeak"
            assert trio.current_time() - start < 3.0


async def test_midstream_cut_ends_the_reply_with_what_arrived() -> None:
    async with open_fake_openai(api_key=KEY, reply="Alpha beta gamma.") as fake:
        fake.break_midstream("chat")
        async with providers_for(fake) as providers:
            async with providers.stream([ChatMessage(role="user", content="hi")]) as reply:
                text = "".join([piece async for piece in reply])
            assert reply.provider == "openai" and text == "Alpha" and reply.error is not None
            assert fake.count("chat") == 1  # no replay on another provider


async def test_api_key_never_logged_or_in_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # The server expects another key, so every call gets a 401 whose body echoes ours.
    async with (open_fake_openai(api_key="a-different-key") as fake,
                providers_for(fake, llm="openai", tts="openai") as providers):
        with pytest.raises(ProviderError) as info:
            await collect(providers, [ChatMessage(role="user", content="hi")])
        with pytest.raises(ProviderError) as tts_info:
            async with providers.synthesize("Hello."):
                pass
        assert fake.count("chat") == 1  # 401 is not retried
    texts = [caplog.text, repr(providers.config), str(providers.stats())]
    for error in (info.value, tts_info.value):
        classification = classify(error.__cause__ or error)
        assert classification.error.code == "provider_auth_failed" and not classification.error.retryable
        texts += [str(error), repr(error.context), str(classification.error), repr(classification.error.context)]
    assert all(KEY not in text for text in texts)
    assert KEY in fake.requests[0].headers["authorization"]  # it was really sent (so the test can fail)
