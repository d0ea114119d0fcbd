"""The real command: `voicebot serve` (its in-process worker) + two aiortc humans + the echo and speaker bots."""

from __future__ import annotations

import signal

import pytest
import trio
from bots_helpers import collect, frequency_of, human, rms

from voicebot.client import connect
from voicebot.media import open_media_loop
from voicebot.testing import serve_process

pytestmark = [pytest.mark.media, pytest.mark.slow]


async def test_echo_and_speaker_through_voicebot_serve() -> None:
    with serve_process("--db", ":memory:", "--log-level", "warning", "--media-allow-loopback", "true") as (proc, url):
        with trio.fail_after(60):
            async with open_media_loop(), connect(url) as owner:
                await owner.hello("owner")
                lobby_id = (await owner.create_lobby("served"))["id"]
                async with human(url, "alice", lobby_id, 440.0) as alice, human(url, "bob", lobby_id, 880.0) as bob:
                    echo = await alice.client.request("bot.add", bot="echo")
                    tracks = {"alice": await alice.track_from(echo["peer_id"]),
                              "bob": await bob.track_from(echo["peer_id"])}
                    got: dict[str, float] = {}
                    async with trio.open_nursery() as nursery:
                        for who, track in tracks.items():
                            async def measure(who: str = who, track: object = track) -> None:
                                got[who] = await frequency_of(track)  # type: ignore[arg-type]
                            nursery.start_soon(measure)
                    assert abs(got["alice"] - 440.0) < 10 and abs(got["bob"] - 880.0) < 10, got
                    speaker = await bob.client.request("bot.add", bot="speaker", text="Testing one two three.",
                                                       repeat=1.0)
                    samples = await collect(await bob.track_from(speaker["peer_id"]), skip=10, frames=150)
                    assert rms(samples) > 0.01
        proc.send_signal(signal.SIGTERM)
        assert await trio.to_thread.run_sync(proc.wait, 15) == 0
