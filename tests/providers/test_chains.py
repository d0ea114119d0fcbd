"""Provider chains on the mock clock: fallback, deadlines, retries, breakers and recovery, mid-stream failure."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import numpy as np
import pytest
import trio

from voicebot import faults
from voicebot.errors import Category, ProviderError, classify
from voicebot.metrics import BOT_REGISTRY
from voicebot.providers import ChatMessage, ProviderConfig, Providers
from voicebot.resilience import BreakerRegistry
from voicebot.testing import ScriptedLLM, ScriptedSTT, ScriptedTTS

MESSAGES = [ChatMessage(role="user", content="hi", name="alice")]


def make(llms: list[ScriptedLLM], **config: object) -> Providers:
    return Providers.from_chains(stt=[ScriptedSTT()], llm=llms, tts=[ScriptedTTS()],
                                 config=ProviderConfig(**config))  # type: ignore[arg-type]


async def ask(providers: Providers) -> tuple[str, str, BaseException | None]:
    async with providers.stream(MESSAGES) as reply:
        text = "".join([piece async for piece in reply])
    return reply.provider, text, reply.error


async def test_primary_answers(autojump_clock: trio.testing.MockClock) -> None:
    primary, backup = ScriptedLLM("primary", "Hi alice."), ScriptedLLM("backup", "Backup here.")
    providers = make([primary, backup])
    assert await ask(providers) == ("primary", "Hi alice.", None)
    assert backup.calls == []
    assert primary.calls == [MESSAGES]


async def test_non_retryable_failure_falls_back_at_once(autojump_clock: trio.testing.MockClock) -> None:
    primary, backup = ScriptedLLM("primary", steps=["fatal"]), ScriptedLLM("backup", "Backup here.")
    providers = make([primary, backup])
    start = trio.current_time()
    async with providers.stream(MESSAGES) as reply:
        assert reply.provider == "backup" and reply.fallbacks == 1
        assert "".join([p async for p in reply]) == "Backup here."
    assert trio.current_time() - start < 0.01
    assert len(primary.calls) == 1  # not retried
    stats = providers.stats()["providers"]["llm"]["providers"]
    assert stats["primary"]["fallbacks"] == 1 and stats["primary"]["errors"] == 1


async def test_retryable_failure_is_retried_within_the_deadline(autojump_clock: trio.testing.MockClock) -> None:
    primary, backup = ScriptedLLM("primary", "Second try.", steps=["error", "error"]), ScriptedLLM("backup")
    providers = make([primary, backup])
    assert await ask(providers) == ("primary", "Second try.", None)
    assert len(primary.calls) == 3 and backup.calls == []


async def test_retries_stop_at_max_attempts(autojump_clock: trio.testing.MockClock) -> None:
    primary, backup = ScriptedLLM("primary", default="error"), ScriptedLLM("backup", "B.")
    providers = make([primary, backup], max_attempts=2, failure_threshold=10)
    assert await ask(providers) == ("backup", "B.", None)
    assert len(primary.calls) == 2


async def test_slow_provider_hits_its_deadline_then_fallback(autojump_clock: trio.testing.MockClock) -> None:
    primary, backup = ScriptedLLM("primary", steps=["hang"]), ScriptedLLM("backup", "In time.")
    providers = make([primary, backup], llm_timeout=4.0)
    start = trio.current_time()
    assert await ask(providers) == ("backup", "In time.", None)
    assert 4.0 <= trio.current_time() - start < 4.1
    stats = providers.stats()["providers"]["llm"]["providers"]["primary"]
    assert stats["timeouts"] == 1 and stats["fallbacks"] == 1


async def test_slow_but_in_time_is_kept(autojump_clock: trio.testing.MockClock) -> None:
    primary, backup = ScriptedLLM("primary", "Made it.", steps=[("slow", 3.9)]), ScriptedLLM("backup")
    providers = make([primary, backup], llm_timeout=4.0)
    assert await ask(providers) == ("primary", "Made it.", None)


async def test_open_breaker_skips_then_recovery_lets_primary_back(autojump_clock: trio.testing.MockClock) -> None:
    primary = ScriptedLLM("primary", "Primary.", steps=["fatal"] * 3)
    backup = ScriptedLLM("backup", "Backup.")
    providers = make([primary, backup], failure_threshold=3, provider_recovery_timeout=30.0)
    for _ in range(3):
        assert (await ask(providers))[0] == "backup"
    assert len(primary.calls) == 3
    # Open: the primary is not called and no time passes before the backup answers.
    start = trio.current_time()
    assert (await ask(providers))[0] == "backup"
    assert trio.current_time() == start
    assert len(primary.calls) == 3
    assert providers.stats()["breakers"]["provider:llm:primary"]["state"] == "open"
    assert providers.stats()["providers"]["llm"]["providers"]["primary"]["circuit_open"] == 1
    # Still open just before the recovery timeout.
    await trio.sleep(29.0)
    assert (await ask(providers))[0] == "backup"
    assert len(primary.calls) == 3
    # After it: the half-open probe goes to the (now healthy) primary, which closes the breaker.
    await trio.sleep(1.5)
    assert await ask(providers) == ("primary", "Primary.", None)
    assert providers.stats()["breakers"]["provider:llm:primary"]["state"] == "closed"
    for _ in range(3):
        assert (await ask(providers))[0] == "primary"


async def test_failed_probe_reopens(autojump_clock: trio.testing.MockClock) -> None:
    primary = ScriptedLLM("primary", "Primary.", steps=["fatal"] * 4)
    backup = ScriptedLLM("backup", "Backup.")
    providers = make([primary, backup], failure_threshold=3, provider_recovery_timeout=30.0)
    for _ in range(3):
        await ask(providers)
    await trio.sleep(31)
    assert (await ask(providers))[0] == "backup"  # probe failed
    assert len(primary.calls) == 4
    assert (await ask(providers))[0] == "backup"
    assert len(primary.calls) == 4  # open again: skipped
    await trio.sleep(31)
    assert (await ask(providers))[0] == "primary"


async def test_midstream_failure_ends_the_reply_without_fallback(autojump_clock: trio.testing.MockClock) -> None:
    primary = ScriptedLLM("primary", "One two three.", steps=["midstream"])
    backup = ScriptedLLM("backup", "Backup.")
    providers = make([primary, backup])
    provider, text, error = await ask(providers)
    assert (provider, text) == ("primary", "One")
    assert isinstance(error, ProviderError)
    assert backup.calls == []
    stats = providers.stats()["providers"]["llm"]["providers"]["primary"]
    assert stats["midstream_failures"] == 1


async def test_midstream_stall_hits_the_idle_deadline(autojump_clock: trio.testing.MockClock) -> None:
    primary = ScriptedLLM("primary", "One two.", per_piece=60.0)
    providers = make([primary], llm_timeout=4.0)
    start = trio.current_time()
    provider, text, error = await ask(providers)
    assert (provider, text) == ("primary", "One")
    assert isinstance(error, trio.TooSlowError)
    assert 8.0 <= trio.current_time() - start < 8.1  # the gap between pieces may be twice the first-piece deadline


async def test_whole_chain_failure_raises_provider_error(autojump_clock: trio.testing.MockClock) -> None:
    providers = make([ScriptedLLM("a", default="fatal"), ScriptedLLM("b", default="hang")], llm_timeout=2.0)
    with pytest.raises(ProviderError) as info:
        await ask(providers)
    error = classify(info.value).error
    assert error.code == "provider_failed" and error.category is Category.PROVIDER
    assert providers.stats()["providers"]["llm"]["chain_failures"] == 1
    # The apology still comes from the local TTS chain.
    async with providers.apology() as audio:
        chunks = [chunk async for chunk in audio]
    assert chunks and audio.sample_rate == 24_000


async def test_cancellation_is_not_a_provider_failure(autojump_clock: trio.testing.MockClock) -> None:
    primary = ScriptedLLM("primary", "a b c d e f", per_piece=1.0)
    providers = make([primary], failure_threshold=1)
    with trio.move_on_after(2.5):  # barge-in: the reply's scope is cancelled mid-stream
        await ask(providers)
    with trio.move_on_after(0.5):  # cancelled before the first piece
        primary.script(("slow", 5.0))
        await ask(providers)
    stats = providers.stats()
    assert stats["breakers"]["provider:llm:primary"]["state"] == "closed"
    assert stats["providers"]["llm"]["providers"]["primary"]["errors"] == 0
    assert (await ask(providers))[0] == "primary"


async def test_fault_point_fails_a_provider_by_plan(autojump_clock: trio.testing.MockClock) -> None:
    primary, backup = ScriptedLLM("primary", "P."), ScriptedLLM("backup", "B.")
    providers = make([primary, backup], max_attempts=1)
    plan = faults.Plan(rules=[faults.Rule(point="provider.llm", at=(1,),
                                          fault=faults.raises(ProviderError, "injected"))])
    with faults.activate(plan, seed=7) as run:
        assert await ask(providers) == ("backup", "B.", None)
        assert await ask(providers) == ("primary", "P.", None)
    assert run.stats()["injections"] == {"provider.llm": {"raise": 1}}
    assert '"provider":"primary"' in run.journal.getvalue().replace(" ", "")


async def test_stt_and_tts_chains(autojump_clock: trio.testing.MockClock) -> None:
    stt_primary = ScriptedSTT("s1", "never", steps=["hang"])
    stt_backup = ScriptedSTT("s2", " what time is it ")
    tts_primary = ScriptedTTS("t1", steps=["error"] * 10)
    tts_backup = ScriptedTTS("t2", sample_rate=16_000, chunks=2)
    providers = Providers.from_chains(stt=[stt_primary, stt_backup], llm=[ScriptedLLM()],
                                      tts=[tts_primary, tts_backup], config=ProviderConfig(stt_timeout=5.0))
    start = trio.current_time()
    transcript = await providers.transcribe(np.zeros(16_000, dtype=np.int16))
    assert transcript.text == "what time is it" and transcript.provider == "s2" and transcript.fallbacks == 1
    assert 5.0 <= trio.current_time() - start < 5.1
    assert 5.0 <= transcript.seconds < 5.1
    async with providers.synthesize("Hello.") as audio:
        chunks = [chunk async for chunk in audio]
    assert audio.provider == "t2" and audio.sample_rate == 16_000 and len(chunks) == 2
    assert stt_backup.calls == [16_000]


async def test_breakers_are_shared_between_providers_objects(autojump_clock: trio.testing.MockClock) -> None:
    shared = BreakerRegistry()
    broken = ScriptedLLM("primary", default="fatal")
    config = ProviderConfig(failure_threshold=2)
    one = Providers.from_chains(stt=[ScriptedSTT()], llm=[broken, ScriptedLLM("b")], tts=[ScriptedTTS()],
                                config=config, breakers=shared)
    two = Providers.from_chains(stt=[ScriptedSTT()], llm=[broken, ScriptedLLM("b")], tts=[ScriptedTTS()],
                                config=config, breakers=shared)
    await ask(one)
    await ask(one)
    calls = len(broken.calls)
    assert (await ask(two))[0] == "b"
    assert len(broken.calls) == calls  # the second bot skips the provider the first one found broken


async def test_every_attempt_is_counted_in_prometheus(autojump_clock: trio.testing.MockClock) -> None:
    def count(provider: str, outcome: str) -> float:
        value = BOT_REGISTRY.get_sample_value("voicebot_provider_requests_total",
                                              {"kind": "llm", "provider": provider, "outcome": outcome})
        return value or 0.0

    before = {key: count(*key) for key in [("m-primary", "error"), ("m-primary", "timeout"),
                                           ("m-primary", "circuit_open"), ("m-backup", "ok")]}
    primary = ScriptedLLM("m-primary", steps=["fatal", "hang"])
    providers = make([primary, ScriptedLLM("m-backup")], failure_threshold=2, llm_timeout=1.0)
    for _ in range(3):
        await ask(providers)
    after = {key: count(*key) - before[key] for key in before}
    assert after == {("m-primary", "error"): 1, ("m-primary", "timeout"): 1, ("m-primary", "circuit_open"): 1,
                     ("m-backup", "ok"): 3}


class _LateLLM:
    """Its first token comes from a thread that outlives the deadline (uncancellable work, e.g. local STT/TTS):
    the deadline fires while the thread runs, and the token arrives with no checkpoint in between."""

    name = "late"

    def stream(self, messages: object) -> AbstractAsyncContextManager[AsyncIterator[str]]:
        @asynccontextmanager
        async def opened() -> AsyncGenerator[AsyncIterator[str], None]:
            async def pieces() -> AsyncIterator[str]:
                yield await trio.to_thread.run_sync(_slow_word)
                yield " more"

            yield pieces()

        return opened()


def _slow_word() -> str:
    time.sleep(0.05)
    return "Late"


async def test_first_piece_after_the_deadline_fired_is_a_timeout(autojump_clock: trio.testing.MockClock) -> None:
    backup = ScriptedLLM("backup", "In time.")
    providers = make([_LateLLM(), backup], llm_timeout=1.0)  # type: ignore[list-item]
    async with providers.stream(MESSAGES) as reply:
        await trio.sleep(5)  # the consumer's own checkpoints must not be hit by the late provider's deadline
        text = "".join([piece async for piece in reply])
    assert (reply.provider, text) == ("backup", "In time.")
    assert providers.stats()["providers"]["llm"]["providers"]["late"]["timeouts"] == 1
