"""The assistant with scripted providers over real media: barge-in, outages, fallback and recovery, deadlines,
two speakers, and a crash that keeps the conversation (real aiortc callers speaking espeak speech)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bots"))
from assistant_helpers import AudioLog, Watch, speech
from bots_helpers import LOOPBACK, human, serve_with_bots

from voicebot.bots import BotSpec, HumanPeer
from voicebot.bots.assistant import AssistantBot, AssistantConfig, AssistantMemory, AssistantOptions
from voicebot.client import connect
from voicebot.media import open_media_loop
from voicebot.providers import ProviderConfig, Providers
from voicebot.testing import ScriptedLLM, ScriptedSTT, ScriptedTTS, open_fake_openai

pytestmark = pytest.mark.media

STORY = ("Once upon a time there was a small robot. It lived in a quiet house by the sea. Every morning it watched "
         "the waves roll in. One day it found a bottle on the sand. Inside the bottle was a letter.")


class Rig:
    """Scripted provider chains and the bots built with them."""

    def __init__(self, *, llm: list[ScriptedLLM], stt: list[ScriptedSTT] | None = None,
                 tts: list[ScriptedTTS] | None = None, config: ProviderConfig | None = None) -> None:
        self.llm = llm or [ScriptedLLM("fake-llm")]
        self.stt = stt or [ScriptedSTT("fake-stt", "hello")]
        self.tts = tts or [ScriptedTTS("fake-tts", chunks=2, chunk_seconds=0.2)]
        self.local_tts = ScriptedTTS("local-tts", chunks=2, chunk_seconds=0.2)
        self.providers: Providers = Providers.from_chains(
            stt=self.stt, llm=self.llm, tts=self.tts, local_tts=[self.local_tts],
            config=config or ProviderConfig(failure_threshold=1, max_attempts=1))
        self.memory = AssistantMemory()
        self.bots: list[AssistantBot] = []

    def spec(self) -> dict[str, BotSpec]:
        def make(options: Any) -> AssistantBot:
            bot = AssistantBot(AssistantOptions.from_options(options), AssistantConfig(), LOOPBACK,
                               providers=self.providers, memory=self.memory)
            self.bots.append(bot)
            return bot

        return {"assistant": BotSpec("assistant", "scripted assistant", make)}


@asynccontextmanager
async def lobby_with(rig: Rig, *names: str) -> AsyncIterator[tuple[str, list[HumanPeer]]]:
    """A hub with the scripted assistant, humans ``names`` in one lobby and the bot added (no greeting)."""
    async with open_media_loop(), serve_with_bots(bots=rig.spec()) as (_server, _hub, _worker, url), \
            connect(url) as owner:
        await owner.hello("owner")
        lobby_id = (await owner.create_lobby("room"))["id"]
        async with human(url, names[0], lobby_id, None) as first:
            peers = [first]
            if len(names) > 1:
                async with human(url, names[1], lobby_id, None) as second:
                    peers.append(second)
                    bot = (await first.client.request("bot.add", bot="assistant", greeting=""))["peer_id"]
                    for peer in peers:
                        await peer.track_from(bot, timeout=30)
                    yield bot, peers
                    return
            bot = (await first.client.request("bot.add", bot="assistant", greeting=""))["peer_id"]
            await first.track_from(bot, timeout=30)
            yield bot, peers


async def turn(peer: HumanPeer, bot: str, text: str = "Hello there, how are you?") -> dict[str, Any]:
    """``peer`` says ``text``; returns the bot's final caption."""
    watch = Watch(peer)
    await peer.say(bot, speech(text))
    return await watch.answer()


async def test_barge_in_flushes_audio_and_keeps_only_what_was_played() -> None:
    llm = ScriptedLLM("fake-llm", reply=STORY)
    rig = Rig(llm=[llm], tts=[ScriptedTTS("fake-tts", chunks=8, chunk_seconds=0.25)])  # 2 s per sentence
    with trio.fail_after(60):
        async with lobby_with(rig, "alice") as (bot, (alice,)):
            audio = AudioLog()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(audio.run, await alice.track_from(bot))
                watch = Watch(alice)
                await alice.say(bot, speech("Tell me a story please."))
                await watch.next(lambda e: e.get("type") == "bot.status" and e["state"] == "speaking")
                await trio.sleep(2.6)  # into the second sentence
                await alice.say(bot, speech("Stop, stop! What time is it?"))
                final = await watch.next(lambda e: e.get("type") == "caption" and e["role"] == "assistant"
                                         and e["final"])
                watch.arm()
                assistant = rig.bots[-1]
                assert assistant.last_barge_in is not None
                crossed, flushed = assistant.last_barge_in
                assert flushed - crossed < 0.05
                await trio.sleep(0.6)
                last_loud = audio.last_voiced()
                assert last_loud is not None
                # nothing queued kept playing: the loud audio ended soon after the threshold was crossed
                assert last_loud - crossed < 0.4, (last_loud - crossed)
                heard = final["text"]
                assert STORY.startswith(heard) and heard.startswith("Once upon a time there was a small robot.")
                assert len(heard) < len(STORY) * 0.6, heard
                await watch.answer()  # the interruption is answered next
                messages = llm.calls[-1]
                said = [m for m in messages if m.role == "assistant"]
                assert [m.content for m in said] == [heard]  # the next request holds only what was played
                assert [m.name for m in messages if m.role == "user"] == ["alice", "alice"]
                assert assistant.job.analytics.interruptions == 1
                nursery.cancel_scope.cancel()


async def test_llm_outage_fallback_deadline_and_recovery_of_the_primary() -> None:
    primary = ScriptedLLM("primary", reply="Primary here.", steps=["error"])
    backup = ScriptedLLM("backup", reply="Backup here.")
    config = ProviderConfig(failure_threshold=1, max_attempts=1, provider_recovery_timeout=4.0, llm_timeout=1.0)
    rig = Rig(llm=[primary, backup], config=config)
    with trio.fail_after(80):
        async with lobby_with(rig, "alice") as (bot, (alice,)):
            assert (await turn(alice, bot))["text"] == "Backup here."  # primary failed: fallback in the same turn
            opened = trio.current_time()
            assert (await turn(alice, bot))["text"] == "Backup here."  # breaker open: primary not even tried
            assert len(primary.calls) == 1
            await trio.sleep(max(0.0, 4.2 - (trio.current_time() - opened)))
            assert (await turn(alice, bot))["text"] == "Primary here."  # half-open probe: the primary is back
            primary.default = ("slow", 10.0)  # the primary stalls: its 1 s deadline moves the turn to the backup
            watch = Watch(alice)
            await alice.say(bot, speech("Hello there, how are you?"))
            user = await watch.next(lambda e: e.get("type") == "caption" and e["role"] == "user")
            started = trio.current_time()
            answer = await watch.answer()
            assert answer["text"] == "Backup here."
            assert trio.current_time() - started < 3.5
            analytics = rig.bots[-1].job.analytics
            assert analytics.fallbacks >= 3 and analytics.turns == 4
            assert user["about"] == alice.client.peer_id


async def test_stt_and_tts_outages() -> None:
    stt = ScriptedSTT("fake-stt", "hello", default="error")  # speculative calls during pauses fail too
    tts_primary = ScriptedTTS("tts-primary", chunks=2, chunk_seconds=0.2, steps=["error"])
    tts_backup = ScriptedTTS("tts-backup", chunks=2, chunk_seconds=0.2)
    rig = Rig(llm=[ScriptedLLM("fake-llm", reply="All good.")], stt=[stt], tts=[tts_primary, tts_backup],
              config=ProviderConfig(max_attempts=1))  # breakers open after 3 failed calls: these stay closed
    with trio.fail_after(60):
        async with lobby_with(rig, "alice") as (bot, (alice,)):
            watch = Watch(alice)
            await alice.say(bot, speech("Hello there, how are you?"))
            degraded = await watch.next(lambda e: e.get("type") == "bot.status" and e["state"] == "degraded")
            assert "speech-to-text" in degraded["detail"]
            apology = await watch.answer()
            assert apology["text"].startswith("Sorry")
            assert rig.local_tts.calls  # the apology was spoken by the local TTS
            stt.default = "ok"
            answer = await turn(alice, bot)  # STT back; the TTS primary fails → its fallback speaks
            assert answer["text"] == "All good."
            assert tts_backup.calls[-1] == "All good."
            tts_primary.default = tts_backup.default = "error"
            rig.local_tts.calls.clear()
            watch.arm()
            await alice.say(bot, speech("Hello again, are you there?"))
            degraded = await watch.next(lambda e: e.get("type") == "bot.status" and e["state"] == "degraded")
            assert "tts" in degraded["detail"] or "llm" in degraded["detail"]
            await watch.answer()
            assert rig.local_tts.calls


async def test_two_people_in_turn_attributed_by_name_and_context_survives_a_crash() -> None:
    llm = ScriptedLLM("fake-llm", reply="Noted.")
    rig = Rig(llm=[llm])
    with trio.fail_after(80):
        async with lobby_with(rig, "alice", "bob") as (bot, (alice, bob)):
            rig.stt[0].text = "my name is alice"
            await turn(alice, bot, "My name is Alice.")
            rig.stt[0].text = "my name is bob"
            watch = Watch(alice)
            await bob.say(bot, speech("And my name is Bob."))
            user = await watch.next(lambda e: e.get("type") == "caption" and e["role"] == "user")
            assert (user["about"], user["text"]) == (bob.client.peer_id, "my name is bob")
            await watch.answer()
            users = [(m.name, m.content) for m in llm.calls[-1] if m.role == "user"]
            assert users == [("alice", "my name is alice"), ("bob", "my name is bob")]
            first = rig.bots[-1]
            assert first.conversation is not None

            def bug(name: str, text: str) -> None:
                raise RuntimeError("injected bug in the bot")

            first.conversation.add_user = bug  # type: ignore[method-assign,assignment]
            await alice.say(bot, speech("This crashes the bot."))  # the bot crashes; the supervisor restarts it
            with trio.fail_after(30):
                while len(rig.bots) < 2 or not rig.bots[-1].playout.outputs:  # noqa: ASYNC110
                    await trio.sleep(0.1)
            rig.stt[0].text = "what did we say"
            await turn(alice, bot, "What did we say before?")
            restarted = rig.bots[-1]
            assert restarted.peer_id == bot and restarted.job.lives == 2
            users = [(m.name, m.content) for m in llm.calls[-1] if m.role == "user"]
            assert users[:2] == [("alice", "my name is alice"), ("bob", "my name is bob")]


async def test_openai_provider_over_real_http_turn_and_barge_in() -> None:
    """STT, LLM and TTS through the openai provider against the scripted OpenAI-compatible server (real HTTP, SSE,
    streamed PCM): a full turn, then a barge-in after which the next chat request holds only what was played."""
    async with open_fake_openai(reply=STORY, transcript="tell me a story", first_token=0.05,
                                first_audio=0.05) as fake:
        config = ProviderConfig(stt="openai", llm="openai", tts="openai", openai_base_url=fake.base_url)
        rig = Rig(llm=[], config=config)
        rig.providers = Providers(config)
        with trio.fail_after(60):
            async with lobby_with(rig, "alice") as (bot, (alice,)):
                watch = Watch(alice)
                await alice.say(bot, speech("Tell me a story please."))
                user = await watch.next(lambda e: e.get("type") == "caption" and e["role"] == "user")
                assert user["text"] == "tell me a story"
                await watch.next(lambda e: e.get("type") == "bot.status" and e["state"] == "speaking")
                await trio.sleep(2.0)
                fake.transcript = "stop"
                await alice.say(bot, speech("Stop, stop! What time is it?"))
                final = await watch.next(lambda e: e.get("type") == "caption" and e["role"] == "assistant"
                                         and e["final"])
                heard = final["text"]
                assert heard and STORY.startswith(heard) and len(heard) < len(STORY) * 0.6
                watch.arm()
                await watch.answer()
                last = fake.chat_messages()[-1]
                assert [m["content"] for m in last if m["role"] == "assistant"] == [heard]
                users = [m["content"] for m in last if m["role"] == "user"][-2:]
                assert users == ["alice: tell me a story", "alice: stop"]  # the speaker's name travels in the text
                assert fake.count("transcriptions") >= 2 and fake.count("speech") >= 2
        await rig.providers.aclose()
