"""The inbox script against a real ``redis-server``: a send to a live hub appends one entry (read back as the
envelope sent, in order, once after a read from the last id); a send to a lost hub answers 0 after keeping what
that hub left unread for its peers whose sessions still name it (oldest first, bounded), for nobody else; a
takeover from a lost hub does the same before the drain."""

from __future__ import annotations

import json

import pytest

from voicebot.cluster._inbox import decode_entry, encode_envelope, messages_for
from voicebot.hub import token_hash
from voicebot.testing import RedisEngine

from ._scripts import TTL_MS, batch, script_link, send, session_record

pytestmark = pytest.mark.slow


async def test_send_read_and_salvage(redis_server: RedisEngine) -> None:
    async with script_link(redis_server, "h1") as link:
        first = {"from": "h2", "batch": [[["p1", "p2"], {"type": "chat", "n": 0, "peers": []}], [["p3"], {"n": 1}]]}
        assert await send(link, "h1", first) == 1
        assert await send(link, "h1", {"from": "h2", "kick": "p1"}) == 1  # a control envelope
        entries = await link.read({link.inbox("h1"): "0-0"})
        # messages as sent (an empty list stays a list), in order
        assert [decode_entry(fields) for _, _, fields in entries] == [first, {"from": "h2", "kick": "p1"}]
        assert await link.read({link.inbox("h1"): entries[-1][1]}) == []  # from the last id: nothing twice
        ttl = int(redis_server.command("PTTL", link.inbox("h1")).decode().strip(":\r\n"))
        assert 0 < ttl <= TTL_MS

        # h1 is lost: p1 and p2 still name it, p3 was handed over to h3 (it took what it needed), p4 is unknown
        assert await send(link, "h1", batch("h2", (["p1", "p4"], 2), (["p2"], 3))) == 1
        assert await send(link, "h1", batch("h2", *[(["p2"], n) for n in range(4, 14)])) == 1
        for peer, hub in (("p1", "h1"), ("p2", "h1"), ("p3", "h3")):
            assert await link.script("save", hub, peer, session_record(peer, hub), token_hash(f"t{peer}"), 30)
        assert await link.script("hand", "p3", "h1", 1, TTL_MS, 10, 10_000) == ["ok"]  # h1 handed it over
        unread = await link.call("xrange", lambda r: r.xrange(link.inbox("h1")))
        assert [m["n"] for m in messages_for("p2", (e.field_values for e in unread))] == [0, 3, *range(4, 14)]
        await link.call("lost", lambda r: r.delete([link.hub_key("h1")]))
        assert await send(link, "h1", batch("h2", (["p1"], 99))) == 0  # gone: the sender keeps its own next
        assert [json.loads(m)["n"] for m in await link.script("drain", "p1")] == [0, 2]
        assert await link.script("drain", "p2") == []  # 13 messages > 10: its session ended, as on overflow
        assert await link.script("takeover", token_hash("tp2"), "h2", 10, 10_000) == []
        assert await link.script("drain", "p3") == []
        assert redis_server.command("EXISTS", link.inbox("h1")) == b":0\r\n"


async def test_takeover_from_a_lost_hub_keeps_its_unread_inbox_first(redis_server: RedisEngine) -> None:
    async with script_link(redis_server, "h1") as link:
        assert await link.script("save", "h1", "p1", session_record("p1", "h1", "tok"), token_hash("tok"), 30) == 1
        assert await link.script("stash", "p1", "", 10, 10_000, '{"n":0}') == ["ok"]  # its buffer, copied
        assert await send(link, "h1", batch("h2", (["p1"], 1), (["p1"], 2))) == 1
        await link.call("lost", lambda r: r.delete([link.hub_key("h1")]))
        record, previous, alive, _ = await link.script("takeover", token_hash("tok"), "h2", 10, 10_000)
        assert (json.loads(record)["hub"], previous, alive) == ("h2", "h1", 0)
        assert [json.loads(m)["n"] for m in await link.script("drain", "p1")] == [0, 1, 2]


async def test_a_full_inbox_drops_its_oldest_entry_and_counts_it(redis_server: RedisEngine) -> None:
    async with script_link(redis_server, "h1") as link:
        for n in range(7):  # a bound of 4 entries: the first three go, one by one, each counted
            envelope = encode_envelope(batch("h2", (["p1"], n)))
            assert await link.script("send", "h1", TTL_MS, 4, 10, 10_000, *envelope) == 1
        kept = await link.call("xrange", lambda r: r.xrange(link.inbox("h1")))
        assert [m["n"] for m in messages_for("p1", (e.field_values for e in kept))] == [3, 4, 5, 6]
        result = await link.script("tick", "h1", 5, '{"lobbies":[],"sessions":[],"bots":{},"jobs":[]}', TTL_MS,
                                   60, 10)
        assert result[0] == 3  # the hub's heartbeat learns how many of its entries were lost
        for n in range(7):  # the inbox every hub reads is bounded the same way, uncounted (no one hub's loss)
            envelope = encode_envelope({"from": "h2", "name": f"n{n}"})
            assert await link.script("send", "*", TTL_MS, 4, 10, 10_000, *envelope) == 1
        assert redis_server.command("XLEN", link.inbox("*")) == b":4\r\n"
        assert redis_server.command("EXISTS", "voicebot:lost:*") == b":0\r\n"
