"""End to end with real media: aiortc client peers ↔ hub on a real TCP port ↔ in-process worker's bots."""

from __future__ import annotations

import pytest
import trio
from bots_helpers import LOOPBACK, collect, frequency_of, human, rms, serve_with_bots

from voicebot import faults
from voicebot.bots import BotSession, BotSpec, EchoBot
from voicebot.client import connect
from voicebot.errors import WebRTCError
from voicebot.media import open_media_loop

pytestmark = pytest.mark.media


async def test_echo_and_speaker_end_to_end() -> None:
    with trio.fail_after(40):
        async with open_media_loop(), serve_with_bots() as (_server, _hub, _worker, url), connect(url) as owner:
            await owner.hello("owner")
            lobby = await owner.create_lobby("media room")
            lobby_id = lobby["id"]
            async with human(url, "alice", lobby_id, 440.0) as alice, human(url, "bob", lobby_id, 660.0) as bob:
                bots = (await alice.client.request("bot.list"))["bots"]
                assert {b["name"] for b in bots} == {"assistant", "echo", "speaker"}
                echo = await alice.client.request("bot.add", bot="echo")
                assert echo["type"] == "bot.added"
                a_track = await alice.track_from(echo["peer_id"])
                b_track = await bob.track_from(echo["peer_id"])
                async with trio.open_nursery() as nursery:
                    got: dict[str, float] = {}

                    async def measure(who: str, track: object) -> None:
                        got[who] = await frequency_of(track)  # type: ignore[arg-type]

                    nursery.start_soon(measure, "alice", a_track)
                    nursery.start_soon(measure, "bob", b_track)
                assert abs(got["alice"] - 440.0) < 10, got
                assert abs(got["bob"] - 660.0) < 10, got
                assert alice.setup_times and max(alice.setup_times) < 5
                speaker = await bob.client.request("bot.add", bot="speaker", text="Hello, this is a test.",
                                                   repeat=1.0)
                s_track = await bob.track_from(speaker["peer_id"])
                samples = await collect(s_track, skip=10, frames=150)
                assert rms(samples) > 0.01, rms(samples)
                removed = await alice.client.request("bot.remove", peer_id=echo["peer_id"])
                assert removed["type"] == "bot.removed"
                await alice.wait_for(lambda: any(e.get("type") == "peer.left" for e in alice.events))


async def test_ice_failure_rebuilds_only_that_peer() -> None:
    """Scripted plan: the first ICE check of the bot's first peer fails → ICE restart unsupported → rebuild."""
    plan = faults.Plan(rules=[faults.Rule(point="bot.ice.*", at=1, times=1, fault=faults.raises(
        WebRTCError, "injected ICE failure", code="ice_failed"))])
    with trio.fail_after(40), faults.activate(plan, seed=1, scope="global") as run:
        async with open_media_loop(), serve_with_bots() as (_server, _hub, _worker, url), \
                human(url, "alice", None, 500.0) as alice:
            lobby = await alice.client.create_lobby("ice")
            await alice.client.join(lobby["id"])
            async with human(url, "bob", lobby["id"], 700.0) as bob:
                echo = await alice.client.request("bot.add", bot="echo")
                bot = echo["peer_id"]
                with trio.fail_after(15):  # two humans: poll (wait_for watches one HumanPeer only)
                    while alice.connections[bot] + bob.connections[bot] < 3:  # noqa: ASYNC110 -- polls two HumanPeers
                        await trio.sleep(0.05)
                assert alice.byes[bot] + bob.byes[bot] == 1  # exactly one peer was rebuilt
                for peer, tone in ((alice, 500.0), (bob, 700.0)):
                    track = await peer.track_from(bot)
                    assert abs(await frequency_of(track) - tone) < 10
        journal = run.journal.getvalue()
    assert "bot.ice.p_" in journal and "ice_failed" in journal


async def test_repeated_failure_drops_only_that_peer() -> None:
    with trio.fail_after(40):
        async with open_media_loop(), serve_with_bots() as (_server, _hub, _worker, url), \
                human(url, "alice", None, None) as alice:
            lobby = await alice.client.create_lobby("drop")
            await alice.client.join(lobby["id"])
            async with human(url, "bob", lobby["id"], 600.0) as bob:
                plan = faults.Plan(rules=[faults.Rule(point=f"bot.call.{alice.client.peer_id}", fault=faults.raises(
                    WebRTCError, "injected setup failure", code="setup_failed"))])
                with faults.activate(plan, seed=2, scope="global") as run:
                    echo = await bob.client.request("bot.add", bot="echo")
                    bot = echo["peer_id"]
                    await alice.wait_for(lambda: any(e.get("type") == "chat" for e in alice.events))
                    assert alice.byes[bot] == 3 and alice.connections[bot] == 0
                    notice = next(e for e in alice.events if e.get("type") == "chat")
                    assert notice["from"] == bot and "alice" in notice["text"]
                    assert abs(await frequency_of(await bob.track_from(bot)) - 600.0) < 10
                    assert bob.byes[bot] == 0
                    assert run.stats()  # the journal saw the injections


class CrashOnceEcho(EchoBot):
    """An echo bot with a bug: its whole session crashes once, 0.5 s after its first peer connected."""

    crashes_left = 1

    async def run(self, session: BotSession) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(super().run, session)
            if CrashOnceEcho.crashes_left:
                while not self.stats.connected:  # noqa: ASYNC110 -- test bot, polls its own counter
                    await trio.sleep(0.05)
                await trio.sleep(0.5)
                CrashOnceEcho.crashes_left -= 1
                raise RuntimeError("bot bug")


async def test_crashed_media_bot_is_restarted_and_reconnects() -> None:
    crashy = {"echo": BotSpec("echo", "echo with a bug", lambda _o: CrashOnceEcho(LOOPBACK))}
    CrashOnceEcho.crashes_left = 1
    with trio.fail_after(40):
        async with open_media_loop(), serve_with_bots(bots=crashy) as (server, _hub, worker, url), \
                human(url, "alice", None, 450.0) as alice:
            lobby = await alice.client.create_lobby("crash")
            await alice.client.join(lobby["id"])
            added = await alice.client.request("bot.add", bot="echo")
            bot = added["peer_id"]
            first = await alice.track_from(bot)
            await alice.wait_for(lambda: alice.connections[bot] >= 2)  # the restarted bot offered again
            track = await alice.track_from(bot, newer_than=first)
            assert abs(await frequency_of(track) - 450.0) < 10
            job = worker.jobs[added["job_id"]]
            assert job.sessions == 2 and job.peer_id == bot  # resumed its session: same peer id, same lobby
            assert server.hub.sessions[bot].lobby_id == lobby["id"]
            assert not any(e.get("type") == "peer.left" for e in alice.events)
