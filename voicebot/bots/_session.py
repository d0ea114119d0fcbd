"""A bot's place in one lobby: its own hub client, the lobby's members, and the lobby's events."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import trio

from ..client import Client
from ..errors import WebSocketError
from ..hub import BOT_GONE_CLOSE
from ._api import Bot

__all__ = ["BOT_GONE_CLOSE", "SUBSCRIBER_BYTES", "BotSession", "LobbyGone", "Subscription"]

log = logging.getLogger("voicebot.bots")

# BOT_GONE_CLOSE (from the hub core): the close code with which the hub ends a bot's connection on purpose (not a
# crash: no restart).

SUBSCRIBER_BYTES = 1_048_576
"""Default byte bound of one subscriber's queue (encoded JSON size of the queued events)."""

_MEMBERSHIP = frozenset({"peer.joined", "peer.left", "lobby.left", "signal", "chat"})


class LobbyGone(Exception):
    """The bot is no longer in its lobby (removed, lobby closed): the job ends normally."""


class Subscription:
    """One consumer's bounded stream of lobby events: at most ``capacity`` events and ``capacity_bytes`` bytes (their
    JSON size) queued; :meth:`offer` refuses an event beyond either bound (a single event larger than
    ``capacity_bytes`` still fits an empty queue). Iterate with ``async for``; :meth:`aclose` unsubscribes."""

    def __init__(self, capacity: int, capacity_bytes: int) -> None:
        self._send, self._recv = trio.open_memory_channel[tuple[dict[str, Any], int]](capacity)
        self.capacity_bytes = capacity_bytes
        self.queued_bytes = 0
        """Bytes queued now."""

    def offer(self, event: dict[str, Any], size: int) -> bool:
        """Queue ``event`` (of ``size`` bytes) if both bounds allow; False if it was dropped.

        Raises ``trio.BrokenResourceError`` once the consumer closed its end.
        """
        if self.queued_bytes and self.queued_bytes + size > self.capacity_bytes:
            return False
        try:
            self._send.send_nowait((event, size))
        except trio.WouldBlock:
            return False
        self.queued_bytes += size
        return True

    async def receive(self) -> dict[str, Any]:
        """The next event (raises ``trio.EndOfChannel`` when the session ended)."""
        event, size = await self._recv.receive()
        self.queued_bytes -= size
        return event

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> dict[str, Any]:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    def close(self) -> None:
        """The producer side is done (the session ended)."""
        self._send.close()

    async def aclose(self) -> None:
        """Unsubscribe (the consumer side)."""
        await self._recv.aclose()


class BotSession:
    """What a running bot works with. Created by the worker after ``hello`` and ``lobby.join``.

    :attr:`peers` holds the other members (``{peer_id: {peer_id, name, kind}}``), kept current by the event
    pump in :meth:`run`. :meth:`subscribe` gives a bounded channel of the lobby's events (``peer.joined``,
    ``peer.left``, ``signal``, ``chat``); when a subscriber falls ``capacity`` events or ``capacity_bytes`` bytes
    behind, the *newest* event is dropped for that subscriber and counted in :attr:`dropped_events` (the hub
    client's reader is never blocked by a slow bot).
    """

    def __init__(self, client: Client, *, lobby_id: str, joined: Mapping[str, Any], job_id: str = "",
                 options: Mapping[str, Any] | None = None) -> None:
        self.client = client
        """The bot's own hub connection (``client.peer_id`` is the bot's peer id)."""
        self.lobby_id = lobby_id
        """The lobby the bot is in."""
        self.job_id = job_id
        """The hub's job id (empty outside a worker)."""
        self.options: dict[str, Any] = dict(options or {})
        """``bot.add`` options."""
        self.peers: dict[str, dict[str, Any]] = {p["peer_id"]: dict(p) for p in joined.get("peers", [])}
        """The other members of the lobby, by peer id."""
        self.dropped_events = 0
        """Events dropped because a subscriber was full."""
        self._subscribers: list[Subscription] = []
        self.leave_when_alone = True
        """Leave the lobby (ending the job and freeing its capacity) once no human member is left; members
        in their resume grace still count, so a human who reconnects finds the bot still there."""
        self._alone = False

    @property
    def peer_id(self) -> str:
        """The bot's own peer id."""
        assert self.client.peer_id is not None
        return self.client.peer_id

    def humans(self) -> list[str]:
        """Peer ids of the human (kind ``user``) members."""
        return [pid for pid, peer in self.peers.items() if peer.get("kind", "user") == "user"]

    def subscribe(self, capacity: int = 256, capacity_bytes: int = SUBSCRIBER_BYTES) -> Subscription:
        """A new bounded stream of lobby events (see the class docs for overflow)."""
        subscription = Subscription(capacity, capacity_bytes)
        self._subscribers.append(subscription)
        return subscription

    async def chat(self, text: str) -> None:
        """Say ``text`` in the lobby's chat."""
        await self.client.chat(text)

    async def signal(self, to: str, kind: str, **fields: Any) -> None:
        """Send a WebRTC signal to ``to`` (bounded: gives up after 5 s, a dead hub ends the session anyway)."""
        with trio.move_on_after(5.0):
            await self.client.signal(to, kind, **fields)

    async def run(self, bot: Bot) -> None:
        """Run ``bot`` while pumping the lobby's events. Returns when the bot returns or the bot leaves the lobby
        (:class:`LobbyGone` is absorbed: a normal end); raises ``WebSocketError`` if the hub connection is lost."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._pump)
                await bot.run(self)
                nursery.cancel_scope.cancel()
        except* LobbyGone:
            log.info("bot %s left lobby %s", self.client.peer_id, self.lobby_id)
        finally:
            for subscription in self._subscribers:
                subscription.close()

    async def _pump(self) -> None:
        async for event in self.client.events:
            kind = event.get("type")
            if kind not in _MEMBERSHIP or event.get("lobby_id", self.lobby_id) != self.lobby_id:
                continue
            if kind == "peer.joined":
                peer = event["peer"]
                self.peers[peer["peer_id"]] = dict(peer)
            elif kind == "peer.left":
                self.peers.pop(event["peer_id"], None)
                if self.leave_when_alone and not self.humans():
                    self._alone = True
            size = len(json.dumps(event)) if self._subscribers else 0
            for subscription in list(self._subscribers):
                try:
                    if not subscription.offer(event, size):
                        self.dropped_events += 1
                except (trio.ClosedResourceError, trio.BrokenResourceError):
                    self._subscribers.remove(subscription)
            if kind == "lobby.left":
                raise LobbyGone(event.get("reason", "left"))
            if self._alone:
                with trio.move_on_after(5.0):
                    await self.client.leave()
                raise LobbyGone("alone")
        closed = self.client.closed
        if closed is not None and closed.code == BOT_GONE_CLOSE:  # the hub ended this bot (bot.remove)
            raise LobbyGone(closed.reason or "removed")
        raise WebSocketError("bot lost its hub connection", code="bot_connection_lost", retryable=True)
