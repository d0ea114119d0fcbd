"""The scripts deciding who passes on what a hub held for a peer, against a real ``redis-server``:
a claim takes the peer's messages still in the old hub's inbox (with their entry ids) and then refuses the old
hub's hand-over and copies; a hand-over that came first makes the claim take nothing; sends to the old hub for a
claimed peer go to its session's hub in order (dropped when it has no session), the rest stays; a takeover back
to the old hub ends the diversion; an old hub lost while the new hub still waits for its answer leaves what it had
unread for the peer in the peer's kept messages; the write-through copy keeps what a hub buffered for its peers in
grace and trims its inbox in the same script (refused for a claimed peer, nothing for a session that ended, the
session ended past the bounds)."""

from __future__ import annotations

import json

import pytest

from voicebot.cluster._inbox import decode_entry, next_id
from voicebot.cluster._link import RedisLink
from voicebot.hub import token_hash
from voicebot.testing import RedisEngine

from ._scripts import TTL_MS, batch, script_link, send, session_record

pytestmark = pytest.mark.slow


async def _inbox(link: RedisLink, hub: str) -> list[dict[str, object]]:
    return [decode_entry(fields) for _, _, fields in await link.read({link.inbox(hub): "0-0"}, wait=False)]


async def _hand(link: RedisLink, peer: str, hub: str, handed: bool, *numbers: int) -> list[str]:
    result: list[str] = await link.script("hand", peer, hub, int(handed), TTL_MS, 10, 10_000,
                                          *[json.dumps({"n": n}) for n in numbers])
    return result


async def test_claim_hand_and_divert(redis_server: RedisEngine) -> None:
    async with script_link(redis_server, "h1", "h2", "h3") as link:
        for peer in ("p1", "p2", "p3"):
            assert await link.script("save", "h1", peer, session_record(peer, "h1"), token_hash(f"t{peer}"), 30) == 1
        assert await send(link, "h1", batch("h3", (["p1", "p2"], 0), (["p2"], 1), (["p1"], 2))) == 1
        for peer in ("p1", "p2"):  # both move to h2; h1 stalls (p1) or answers (p2)
            _, previous, alive, _ = await link.script("takeover", token_hash(f"t{peer}"), "h2", 10, 10_000)
            assert (previous, alive) == ("h1", 1)

        # p2: h1 answers first, so a claim coming late takes nothing
        assert await _hand(link, "p2", "h1", True, 7) == ["ok"]
        assert await link.script("claim", "h1", "p2", "h2", TTL_MS) == ["handed"]
        assert [json.loads(m)["n"] for m in await link.script("drain", "p2")] == [7]

        # p1: h2 claims first: what is unread for p1 in h1's inbox, with the entry ids
        entry_id = (await link.read({link.inbox("h1"): "0-0"}, wait=False))[0][1]
        claimed = await link.script("claim", "h1", "p1", "h2", TTL_MS)
        assert claimed[0] == "claimed"
        assert claimed[1::2] == [entry_id, entry_id]
        assert [json.loads(m)["n"] for m in claimed[2::2]] == [0, 2]
        assert await _hand(link, "p1", "h1", True, 0, 2) == ["claimed"]  # h1's late hand-over: refused
        assert await _hand(link, "p1", "h1", False, 0) == ["claimed"]  # and its heartbeat's copy
        assert await link.script("drain", "p1") == []

        # what is sent to h1 for p1 from now on goes to h2, in order; the rest stays for h1
        before = len(await _inbox(link, "h2"))
        assert await send(link, "h1", batch("h3", (["p1", "p3"], 3), (["p3"], 4), (["p1"], 5))) == 1
        assert await send(link, "h1", {"from": "h3", "fence": "p1"}) == 1  # control envelopes stay whole
        assert (await _inbox(link, "h1"))[1:] == [batch("h3", (["p3"], 3), (["p3"], 4)),
                                                  {"from": "h3", "fence": "p1"}]
        assert (await _inbox(link, "h2"))[before:] == [batch("h3", (["p1"], 3), (["p1"], 5))]
        relayed = {"from": "h3", "via": "h1", "at": entry_id, "to": ["p1", "p3"], "msg": {"type": "chat", "n": 6}}
        assert await send(link, "h1", relayed) == 1  # the relay fields go along
        assert (await _inbox(link, "h2"))[-1] == {"from": "h3", "via": "h1", "at": entry_id,
                                                  "batch": [[["p1"], {"type": "chat", "n": 6}]]}

        # p1 back on h1: messages for it stay there again
        _, previous, _, _ = await link.script("takeover", token_hash("tp1"), "h1", 10, 10_000)
        assert previous == "h2"
        assert await send(link, "h1", batch("h3", (["p1"], 8))) == 1
        assert (await _inbox(link, "h1"))[-1] == batch("h3", (["p1"], 8))

        # a claimed peer whose session ended gets nothing through the old hub's inbox
        await link.script("takeover", token_hash("tp3"), "h2", 10, 10_000)
        assert (await link.script("claim", "h1", "p3", "h2", TTL_MS))[0] == "claimed"
        await link.call("end", lambda r: r.delete(["voicebot:sess:p3"]))
        count = (len(await _inbox(link, "h1")), len(await _inbox(link, "h2")))
        assert await send(link, "h1", batch("h3", (["p3"], 9))) == 1
        assert (len(await _inbox(link, "h1")), len(await _inbox(link, "h2"))) == count


async def test_a_hub_lost_while_the_new_hub_waits_leaves_its_unread_messages_kept(redis_server: RedisEngine) -> None:
    async with script_link(redis_server, "h1", "h2") as link:
        assert await link.script("save", "h1", "p1", session_record("p1", "h1"), token_hash("tp1"), 30) == 1
        assert await send(link, "h1", batch("h3", (["p1"], 0), (["p1"], 1))) == 1
        _, previous, alive, _ = await link.script("takeover", token_hash("tp1"), "h2", 10, 10_000)
        assert (previous, alive) == ("h1", 1)  # h2 now waits for h1's answer
        await link.call("lost", lambda r: r.delete([link.hub_key("h1")]))
        assert await send(link, "h1", batch("h3", (["p1"], 2))) == 0  # salvaged: kept for p1
        assert await link.script("claim", "h1", "p1", "h2", TTL_MS) == ["claimed"]  # nothing left in the inbox
        assert [json.loads(m)["n"] for m in await link.script("drain", "p1")] == [0, 1]


async def _copy(link: RedisLink, hub: str, trim: str, *groups: tuple[str, list[int]]) -> list[str]:
    args: list[object] = []
    for peer, numbers in groups:
        args += [peer, len(numbers), *[json.dumps({"n": n}) for n in numbers]]
    result: list[str] = await link.script("copy", hub, trim, 4, 10_000, *args)
    return result


async def test_copy_keeps_buffers_and_trims_the_inbox_in_one_step(redis_server: RedisEngine) -> None:
    async with script_link(redis_server, "h1") as link:
        for peer in ("p1", "p2", "p3"):
            assert await link.script("save", "h1", peer, session_record(peer, "h1"), token_hash(f"t{peer}"), 30) == 1
        for n in range(3):
            assert await send(link, "h1", batch("h2", (["p1"], n))) == 1
        ids = [str(e.identifier) for e in await link.call("xrange", lambda r: r.xrange(link.inbox("h1")))]
        # h1 read the first two entries: their messages are copied and the entries go, in the same script
        assert await _copy(link, "h1", next_id(ids[1]), ("p1", [0, 1]), ("p2", [7])) == ["ok", "ok"]
        left = [str(e.identifier) for e in await link.call("xrange", lambda r: r.xrange(link.inbox("h1")))]
        assert left == ids[2:]
        assert [json.loads(m)["n"] for m in await link.script("drain", "p1")] == [0, 1]
        assert [json.loads(m)["n"] for m in await link.script("drain", "p2")] == [7]
        # claimed away from h1 (the claim took what it needed), no session any more, past the bounds; no trim
        await link.call("setup", lambda r: r.hset("voicebot:claimed:h1", {"p1": "1"}))
        assert await _copy(link, "h1", "", ("p1", [2]), ("p4", [1]), ("p3", [1, 2, 3, 4, 5])) == [
            "claimed", "gone", "overflow"]
        assert await link.script("drain", "p1") == []
        assert redis_server.command("EXISTS", "voicebot:sess:p3") == b":0\r\n"  # its session ended
        left = [str(e.identifier) for e in await link.call("xrange", lambda r: r.xrange(link.inbox("h1")))]
        assert left == ids[2:]
