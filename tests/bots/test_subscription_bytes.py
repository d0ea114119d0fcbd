"""Issue 12 row 4 for bots: a bot's event subscribers are bounded in bytes as well as events."""

from __future__ import annotations

import json
import random
from typing import Any

import trio

from voicebot.bots import BotSession
from voicebot.bots._session import Subscription


class _FakeClient:
    def __init__(self) -> None:
        self.send, self.events = trio.open_memory_channel[dict[str, Any]](10_000)
        self.peer_id = "p_bot"
        self.closed = None


def test_subscription_bounds() -> None:
    sub = Subscription(capacity=100, capacity_bytes=1000)
    assert sub.offer({"a": 1}, 5000)  # one big event fits an empty queue
    assert not sub.offer({"a": 2}, 1)
    sub2 = Subscription(capacity=2, capacity_bytes=10_000)
    assert sub2.offer({}, 1) and sub2.offer({}, 1) and not sub2.offer({}, 1)


async def test_slow_subscriber_is_bounded_in_bytes(autojump_clock: object) -> None:
    client = _FakeClient()
    session = BotSession(client, lobby_id="l_1", joined={"peers": [{"peer_id": "p_h", "kind": "user"}]})  # type: ignore[arg-type]
    slow = session.subscribe(capacity=10_000, capacity_bytes=50_000)
    session.leave_when_alone = False
    rng = random.Random(1)
    sizes = []
    for _ in range(200):
        text = "x" * rng.randint(1, 3000)
        event = {"type": "chat", "lobby_id": "l_1", "from": "p_h", "text": text}
        sizes.append(len(json.dumps(event)))
        client.send.send_nowait(event)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(session._pump)
        await trio.sleep(1)
        assert slow.queued_bytes <= 50_000
        assert session.dropped_events > 0
        kept = []
        while slow.queued_bytes:
            kept.append(await slow.receive())
        assert sum(len(json.dumps(e)) for e in kept) <= 50_000
        assert len(kept) + session.dropped_events == 200
        nursery.cancel_scope.cancel()
