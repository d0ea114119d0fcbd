"""The session scripts against a real ``redis-server``: takeover (token checked, atomic, old hub's refresh no
longer wins), kept messages (moved/ok/overflow bounds in count and bytes), drain order, forget."""

from __future__ import annotations

import json

import pytest

from voicebot.cluster._link import PREFIX
from voicebot.hub import token_hash
from voicebot.testing import RedisEngine

from ._scripts import script_link, session_record

pytestmark = pytest.mark.slow


async def test_takeover_stash_drain_and_forget(redis_server: RedisEngine) -> None:
    async with script_link(redis_server) as link:
        key = link.hub_key("h1")
        await link.call("setup", lambda r: r.set(key, "1"))
        assert await link.script("save", "h1", "p1", session_record("p1", "h1", "tok"), token_hash("tok"), 30) == 1
        assert await link.script("takeover", token_hash("wrong"), "h2") == []
        record, previous, alive, members = await link.script("takeover", token_hash("tok"), "h2")
        assert (json.loads(record)["hub"], previous, alive, members) == ("h2", "h1", 1, [])
        # the old hub's heartbeat in flight does not take it back
        assert await link.script("save", "h1", "p1", session_record("p1", "h1", "tok"), token_hash("tok"), 30) == 0

        assert await link.script("stash", "p1", "h1", 3, 1000, '{"n":0}') == ["moved", "h2"]
        assert await link.script("stash", "p1", "", 3, 1000, '{"n":1}', '{"n":2}') == ["ok"]
        assert await link.script("drain", "p1") == ['{"n":1}', '{"n":2}']
        assert await link.script("drain", "p1") == []
        assert await link.script("stash", "p1", "h2", 3, 20, '{"n":3}', '{"n":4}') == ["ok"]  # 14 bytes
        assert await link.script("stash", "p1", "h2", 3, 20, '{"n":5}') == ["overflow"]  # 21 bytes > 20
        assert await link.script("takeover", token_hash("tok"), "h3") == []  # that session ended
        assert await link.script("stash", "p1", "", 3, 20, '{"n":6}') == ["gone"]

        assert await link.script("save", "h1", "p2", session_record("p2", "h1", "t2"), token_hash("t2"), 30) == 1
        assert await link.script("stash", "p2", "h1", 3, 1000, *[f'{{"n":{i}}}' for i in range(3)]) == ["ok"]
        assert await link.script("stash", "p2", "h1", 3, 1000, '{"n":3}') == ["overflow"]  # one past the count
        assert await link.script("save", "h1", "p3", session_record("p3", "h1", "t3"), token_hash("t3"), 30) == 1
        assert await link.script("forget", "h2", "p3") == 0  # only the hub holding it may end it
        assert await link.script("forget", "h1", "p3") == 1
        assert await link.script("takeover", token_hash("t3"), "h2") == []


async def test_membership_scripts_keep_the_stored_session_lobby(redis_server: RedisEngine) -> None:
    """The join's admit names the lobby in the stored session; a record built before a join, leave or close
    does not undo it; the takeover resumes in a lobby only if the peer is in its member set."""
    async with script_link(redis_server, "h1") as link:
        for lobby_id in ("l1", "l2"):
            meta = json.dumps({"id": lobby_id, "max_members": 5, "persistent": True})
            assert await link.script("refresh", lobby_id, meta, 60) == []
        member = json.dumps({"peer": {"peer_id": "p1"}, "hub": "h1"})

        async def stored() -> object:
            raw = await link.call("get", lambda r: r.get(f"{PREFIX}sess:p1"))
            return json.loads(raw)["lobby_id"]

        stale = session_record("p1", "h1", "tok")  # built before the join: no lobby
        # the join stores the session even when its first save has not run yet
        assert (await link.script("admit", "p1", member, "l1", 60, stale, token_hash("tok"), 30))[0] == "ok"
        assert await stored() == "l1"
        assert await link.script("save", "h1", "p1", stale, token_hash("tok"), 30) == 1
        assert await stored() == "l1"  # the stale save kept it
        assert (await link.script("admit", "p1", member, "l2", 60, stale, token_hash("tok"), 30))[0] == "ok"
        assert await stored() == "l2"
        await link.script("leave", "p1", "l1")  # leaving the lobby it switched from keeps the new one
        assert await stored() == "l2"
        await link.script("leave", "p1", "l2")
        assert await stored() is None
        in_l2 = json.dumps({**json.loads(stale), "lobby_id": "l2"})  # built before that leave
        assert await link.script("save", "h1", "p1", in_l2, token_hash("tok"), 30) == 1
        record, _, _, members = await link.script("takeover", token_hash("tok"), "h1")
        assert (json.loads(record)["lobby_id"], members) == (None, [])  # not a member of l2 any more

        assert (await link.script("admit", "p1", member, "l1", 60, "", "", 0))[0] == "ok"  # not resumable: no save
        assert await stored() is None
        assert (await link.script("admit", "p1", member, "l1", 60, stale, token_hash("tok"), 30))[0] == "ok"
        assert await stored() == "l1"
        assert (await link.script("close", "l1", 60))[0] is not None
        assert await stored() is None
