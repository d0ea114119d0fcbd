"""Provider fault points under seeded random plans: replayable, and every call ends (answer or ProviderError)."""

from __future__ import annotations

import random

import pytest
import trio

from voicebot import faults
from voicebot.errors import ProviderError
from voicebot.providers import ChatMessage, ProviderConfig, Providers
from voicebot.testing import ScriptedLLM, ScriptedSTT, ScriptedTTS

PLAN = faults.Plan(random=[faults.RandomRule(point="provider.*", p=1.0, q=0.4, faults=[
    faults.raises(ProviderError, "injected", retryable=True),
    faults.raises(ProviderError, "injected fatal", retryable=False),
    faults.hang(),
    faults.delay(1.5),
])])


async def run(seed: int) -> tuple[list[str], str]:
    providers = Providers.from_chains(
        stt=[ScriptedSTT("s1"), ScriptedSTT("s2")], llm=[ScriptedLLM("l1", "One."), ScriptedLLM("l2", "Two.")],
        tts=[ScriptedTTS("t1"), ScriptedTTS("t2")], config=ProviderConfig(llm_timeout=2.0, tts_timeout=2.0),
        rng=random.Random(seed))
    origin = trio.current_time()
    outcomes: list[str] = []
    with faults.activate(PLAN, seed=seed) as fault_run:
        for _ in range(15):
            start = trio.current_time()
            try:
                async with providers.stream([ChatMessage(role="user", content="hi")]) as reply:
                    text = "".join([piece async for piece in reply])
                outcomes.append(f"{reply.provider}:{text}")
            except ProviderError as exc:
                outcomes.append(exc.code)
            # Two providers, each bounded by its deadline (retries included), plus nothing else.
            assert trio.current_time() - start <= 2 * 2.0 + 0.01
            try:
                async with providers.synthesize("Hello.") as audio:
                    outcomes.append(f"{audio.provider}:{len([c async for c in audio])}")
            except ProviderError as exc:
                outcomes.append(exc.code)
    lines = []  # journal lines with times relative to the start of this run
    for line in fault_run.journal.getvalue().splitlines():
        at, _, rest = line.partition("\t")
        lines.append(f"{abs(round(float(at) - origin, 3)):.3f}\t{rest}")
    return outcomes, "\n".join(lines)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_same_seed_same_story(seed: int, autojump_clock: trio.testing.MockClock) -> None:
    first, journal = await run(seed)
    again, journal_again = await run(seed)
    assert first == again and journal == journal_again
    assert any("provider.llm" in line for line in journal.splitlines())
    assert set(first) <= {"l1:One.", "l2:Two.", "t1:3", "t2:3", "provider_failed"}
    assert len(set(first)) > 1  # the faults really changed what happened
