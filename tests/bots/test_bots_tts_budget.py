"""Issue 12 row 2: speech synthesis never runs on the event loop, and is budgeted per process."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest
import trio

from voicebot.bots import _speech, builtin_bots
from voicebot.errors import ProviderError

LONG = "a " * 500  # the reported attack: 1,000 characters


@pytest.fixture
def slow_synth(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Replace the synthesizer with a slow, recording one; empty the cache."""
    seen: dict[str, Any] = {"threads": [], "running": 0, "max_running": 0, "calls": 0}
    lock = threading.Lock()

    def fake(text: str, *, seed: int = 0) -> np.ndarray[Any, np.dtype[np.int16]]:
        with lock:
            seen["calls"] += 1
            seen["threads"].append(threading.current_thread())
            seen["running"] += 1
            seen["max_running"] = max(seen["max_running"], seen["running"])
        time.sleep(0.05)
        with lock:
            seen["running"] -= 1
        return np.zeros(960 * 3, dtype=np.int16)

    monkeypatch.setattr(_speech, "synthesize", fake)
    monkeypatch.setattr(_speech, "_cache", type(_speech._cache)())
    return seen


@pytest.mark.parametrize("options", [{"text": LONG}, {"text": LONG, "repeat": 1.0}, {}])
async def test_no_builtin_bot_factory_does_cpu_work_and_synthesis_runs_in_a_thread(
    slow_synth: dict[str, Any], options: dict[str, Any]
) -> None:
    """Every built-in bot: building it costs nothing; its ``prepare`` (if any) runs the synthesis in a thread while
    the event loop keeps running (a ticker task makes progress during it)."""
    for spec in builtin_bots().values():
        if spec.name == "speaker" and not options:
            continue
        bot = spec.factory(options if spec.name == "speaker" else {})  # the options under test are the speaker's
        assert slow_synth["calls"] == 0
        prepare = getattr(bot, "prepare", None)
        if prepare is None:
            continue
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await trio.sleep(0.005)
                ticks += 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            await prepare()
            nursery.cancel_scope.cancel()
        assert slow_synth["calls"] == 1
        assert all(t is not threading.main_thread() for t in slow_synth["threads"])
        assert ticks >= 2  # the loop ran while the 50 ms synthesis did


async def test_synthesis_is_serialised_bounded_and_cached(slow_synth: dict[str, Any]) -> None:
    outcomes: list[str] = []
    done: list[str] = []

    async def one(i: int) -> None:
        try:
            await _speech.synthesize_off_loop(f"{LONG}{i}")
            outcomes.append("ok")
            done.append(f"{LONG}{i}")
        except ProviderError as exc:
            outcomes.append(exc.code)

    async with trio.open_nursery() as nursery:
        for i in range(40):
            nursery.start_soon(one, i)
    assert slow_synth["max_running"] == _speech.SYNTH_CONCURRENCY
    assert outcomes.count("ok") == 1 + _speech.MAX_SYNTH_WAITING
    assert outcomes.count("tts_busy") == 40 - 1 - _speech.MAX_SYNTH_WAITING
    calls = slow_synth["calls"]
    await _speech.synthesize_off_loop(done[-1])  # the last one synthesised: cached
    assert slow_synth["calls"] == calls
    assert len(_speech._cache) == _speech.SYNTH_CACHE
