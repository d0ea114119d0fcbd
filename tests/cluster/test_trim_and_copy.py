"""The write-through decisions, without Redis: when a hub's inbox may be trimmed and what a copy carries.

A fake cluster records the publisher's queue and the Redis calls. Covers: the hub core announces what it buffers
for a peer in grace (only in cluster mode, only in grace); a read with nothing buffered is trimmed by the trimmer;
a read that buffered something is trimmed only by the copy that carries it (one copy queued at a time, each
message copied once, in order); a pinned entry caps every trim until it is unpinned; a failed copy is copied again
(no trim meanwhile); a resume here discards the copy, a hand-over takes only what was not copied.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from voicebot.cluster._link import unavailable
from voicebot.cluster._writethrough import WriteThrough
from voicebot.errors import VoiceBotError
from voicebot.hub import Buffered, Hub, HubConfig, Lobby, Session


class FakeLink:
    """Records script calls and trims; ``fail`` makes the next script call fail like an unreachable Redis."""

    def __init__(self) -> None:
        self.scripts: list[tuple[str, tuple[Any, ...]]] = []
        self.trims: list[str] = []
        self.fail = False

    async def script(self, name: str, *args: Any) -> Any:
        await trio.sleep(0.01)
        if self.fail:
            raise unavailable("down")
        self.scripts.append((name, args))
        return []

    async def call(self, what: str, fn: Any) -> Any:
        link = self

        class Client:
            async def xtrim(self, inbox: str, token: Any, minimum: str) -> int:
                await trio.sleep(0.01)
                link.trims.append(minimum)
                return 0

        return await fn(Client())

    @staticmethod
    def inbox(hub_id: str) -> str:
        return f"voicebot:inbox:{hub_id}"


class FakeCluster:
    """What :class:`WriteThrough` uses of a cluster: its hub, queue, link and the peers being adopted."""

    def __init__(self) -> None:
        self.hub_id = "h1"
        self.hub = Hub(HubConfig(resume_buffer=8, announce_buffered=True))
        self.link = FakeLink()
        self.queue: list[tuple[str, Any]] = []
        self.sessions = self
        self.adopting: frozenset[str] = frozenset()

    def enqueue(self, kind: str, item: Any) -> bool:
        self.queue.append((kind, item))
        return True


def _in_grace(cluster: FakeCluster, peer_id: str) -> Session:
    session = Session(peer_id, peer_id, "user", "", None, grace_deadline=100.0)
    cluster.hub.sessions[peer_id] = session
    return session


def _buffer(cluster: FakeCluster, copies: WriteThrough, peer_id: str, n: int) -> None:
    """The hub core buffers message ``n`` for ``peer_id`` and the shell passes the announcement on."""
    actions = cluster.hub.deliver([peer_id], {"type": "chat", "n": n}, 0.0)
    announced = [a for a in actions if isinstance(a, Buffered)]
    assert announced == [Buffered((peer_id,))]
    copies.buffered(announced[0].peer_ids)


def _copied(args: tuple[Any, ...]) -> dict[str, list[int]]:
    """peer id → message numbers of a copy script's arguments (after hub, trim, max count, max bytes)."""
    out: dict[str, list[int]] = {}
    rest = list(args[4:])
    while rest:
        peer_id, count = rest[0], int(rest[1])
        out[peer_id] = [json.loads(m)["n"] for m in rest[2:2 + count]]
        rest = rest[2 + count:]
    return out


def test_only_messages_buffered_in_grace_are_announced_and_only_in_cluster_mode() -> None:
    for announce in (False, True):
        hub = Hub(HubConfig(announce_buffered=announce))
        lobby = Lobby(id="l_1", name="room", private=False, password_hash=None, max_members=8)
        hub.lobbies[lobby.id] = lobby
        hub.sessions["p_live"] = Session("p_live", "A", "user", "", 7)
        hub.sessions["p_held"] = Session("p_held", "B", "user", "", 8, held=True)
        hub.sessions["p_away"] = Session("p_away", "C", "user", "", None, grace_deadline=30.0)
        actions = hub.deliver(["p_live", "p_held", "p_away"], {"type": "chat"}, 0.0)
        assert [a for a in actions if isinstance(a, Buffered)] == ([Buffered(("p_away",))] if announce else [])
        assert hub.sessions["p_held"].buffer == hub.sessions["p_away"].buffer == [{"type": "chat"}]


async def test_trims_wait_for_the_copy_of_what_they_brought(autojump_clock: object) -> None:
    cluster = FakeCluster()
    copies = WriteThrough(cluster)  # type: ignore[arg-type]
    _in_grace(cluster, "p1")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(copies.trimmer)
        copies.read("5-1")  # nothing buffered: the trimmer drops it
        await trio.sleep(1)
        assert cluster.link.trims == ["5-1"] and cluster.queue == []

        _buffer(cluster, copies, "p1", 0)
        _buffer(cluster, copies, "p1", 1)
        copies.read("6-1")  # those came from entries up to 6-0: not trimmed before their copy
        await trio.sleep(1)
        assert cluster.link.trims == ["5-1"] and cluster.queue == [("copy", None)]  # one copy queued for both
        cluster.queue.clear()
        await copies.copy()
        (name, args), = cluster.link.scripts
        assert (name, args[:2], _copied(args)) == ("copy", ("h1", "6-1"), {"p1": [0, 1]})  # trimmed with it

        copies.pin("7-0")  # a message of entry 7-0 waits in memory (a relay, a hold)
        copies.read("9-1")
        await trio.sleep(1)
        assert cluster.link.trims == ["5-1", "7-0"]  # everything before it goes, not it
        copies.unpin("7-0")
        await trio.sleep(1)
        assert cluster.link.trims == ["5-1", "7-0", "9-1"]

        _buffer(cluster, copies, "p1", 2)
        copies.read("10-1")
        cluster.queue.clear()
        cluster.link.fail = True
        with pytest.raises(VoiceBotError):
            await copies.copy()
        cluster.link.fail = False
        await trio.sleep(1)
        assert cluster.link.trims == ["5-1", "7-0", "9-1"]  # not trimmed without the copy
        copies.backstop()  # the next heartbeat asks again
        assert cluster.queue == [("copy", None)]
        await copies.copy()
        assert [(a[1], _copied(a)) for _, a in cluster.link.scripts[1:]] == [("10-1", {"p1": [2]})]
        nursery.cancel_scope.cancel()


async def test_a_resume_discards_the_copy_and_a_hand_over_takes_the_rest(autojump_clock: object) -> None:
    cluster = FakeCluster()
    copies = WriteThrough(cluster)  # type: ignore[arg-type]
    bob = _in_grace(cluster, "p1")
    _buffer(cluster, copies, "p1", 0)
    await copies.copy()
    _buffer(cluster, copies, "p1", 1)
    assert copies.handed("p1") == 1  # the hand-over passes on message 1 only; 0 is in Redis
    await copies.copy()  # the queued copy has nothing left for p1 and nothing to trim
    assert len(cluster.link.scripts) == 1
    bob.buffer.clear()
    _buffer(cluster, copies, "p1", 2)
    await copies.copy()
    cluster.queue.clear()
    copies.resumed_here("p1")
    assert cluster.queue == [("discard", "p1")]
    copies.resumed_here("p1")  # nothing copied any more: nothing to discard
    assert cluster.queue == [("discard", "p1")]
    pin = copies.pin_untrimmed()
    copies.read("3-1")
    assert copies._trim_point() == pin == "0-0"  # a hand-over in flight keeps every untrimmed entry
    copies.unpin(pin)
    assert copies._trim_point() == "3-1"
