"""The assistant end to end: real aiortc callers speaking espeak speech ↔ hub on a real port ↔ in-process worker."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bots"))
from assistant_helpers import AudioLog, events_of, speech, wait_event
from bots_helpers import human, serve_with_bots

from voicebot.client import connect
from voicebot.media import open_media_loop

pytestmark = pytest.mark.media


async def test_offline_default_full_turn_with_captions_and_audio() -> None:
    """No configuration at all: the offline stack hears, answers, captions and speaks."""
    with trio.fail_after(90):
        async with open_media_loop(), serve_with_bots() as (server, _hub, _worker, url), connect(url) as owner:
            await owner.hello("owner")
            lobby_id = (await owner.create_lobby("assistant room"))["id"]
            async with human(url, "alice", lobby_id, None) as alice:
                added = await alice.client.request("bot.add", bot="assistant")
                bot = added["peer_id"]
                track = await alice.track_from(bot, timeout=30)
                audio = AudioLog()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(audio.run, track)
                    greeting = await wait_event(alice, lambda e: e.get("type") == "caption" and e["final"]
                                                and e["role"] == "assistant", timeout=30)
                    assert "Vee" in greeting["text"]
                    await wait_event(alice, lambda e: e.get("type") == "bot.status" and e["state"] == "listening"
                                     and e["ts"] >= greeting["ts"])
                    said_at = trio.current_time()
                    await alice.say(bot, speech("Hello, what is your name?"))
                    user = await wait_event(alice, lambda e: e.get("type") == "caption" and e["role"] == "user")
                    assert (user["about"], user["from"], user["final"]) == (alice.client.peer_id, bot, True)
                    assert "name" in user["text"].lower()
                    answer = await wait_event(alice, lambda e: e.get("type") == "caption" and e["final"]
                                              and e["role"] == "assistant" and e["ts"] > user["ts"])
                    assert "Vee" in answer["text"]
                    await wait_event(alice, lambda e: e.get("type") == "bot.status" and e["state"] == "listening"
                                     and e["ts"] >= answer["ts"])
                    states = [e["state"] for e in events_of(alice, "bot.status") if e["ts"] >= user["ts"]]
                    assert states[:3] == ["thinking", "speaking", "listening"], states
                    assert audio.voiced_between(said_at + 2.0, trio.current_time()) > 20
                    stats = server.statistics()["assistants"][added["job_id"]]  # what admin.stats shows
                    assert (stats["peer_id"], stats["turns"], stats["interruptions"]) == (bot, 1, 0)
                    assert stats["latency"]["voice_to_voice"]["count"] == 1
                    assert set(stats["latency"]) == {"stt", "llm_first_token", "tts_first_audio", "voice_to_voice"}
                    nursery.cancel_scope.cancel()
