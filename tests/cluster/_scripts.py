"""Helpers for tests of the cluster's Lua scripts against a real ``redis-server``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from voicebot.cluster._inbox import encode_envelope
from voicebot.cluster._link import RedisLink
from voicebot.hub import token_hash
from voicebot.resilience import BreakerRegistry
from voicebot.testing import RedisEngine

#: Inbox and mark TTL (ms) the script tests pass.
TTL_MS = 30_000


@asynccontextmanager
async def script_link(redis: RedisEngine, *live_hubs: str,
                      breakers: BreakerRegistry | None = None) -> AsyncIterator[RedisLink]:
    """A :class:`RedisLink` on ``redis``, flushed first, where the hubs ``live_hubs`` are alive (their keys set)."""
    redis.command("FLUSHALL")
    link = RedisLink(redis.url, breakers if breakers is not None else BreakerRegistry())
    async with AsyncExitStack() as stack:
        await link.open(stack)
        for hub in live_hubs:
            await link.call("setup", lambda r, hub=hub: r.set(link.hub_key(hub), "1"))
        yield link


def session_record(peer: str, hub: str, token: str | None = None) -> str:
    """A stored session record of ``peer`` on ``hub`` (resume token ``t{peer}`` unless given)."""
    return json.dumps({"peer_id": peer, "name": "n", "kind": "user", "admin": False, "session_id": "s",
                       "lobby_id": None, "hub": hub, "token": token_hash(token if token is not None else f"t{peer}")})


def batch(sender: str, *items: tuple[list[str], int]) -> dict[str, object]:
    """An envelope of chats ``{"n": n}`` from hub ``sender``, each for its receivers."""
    return {"from": sender, "batch": [[to, {"type": "chat", "n": n}] for to, n in items]}


async def send(link: RedisLink, hub: str, envelope: dict[str, object], max_count: int = 10) -> int:
    """The send script: ``envelope`` to ``hub``'s inbox (bound 100 entries; ``max_count`` kept messages per peer
    of a lost hub, 10,000 bytes)."""
    sent: int = await link.script("send", hub, TTL_MS, 100, max_count, 10_000, *encode_envelope(envelope))
    return sent
