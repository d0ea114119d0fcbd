"""Simulated chaos clients: raw WebSocket over in-memory streams, fire-and-forget requests, tolerant reader.

Unlike :class:`voicebot.client.Client`, a simulated client never waits for a reply (a dropped request
must not stall the workload) and survives garbage from the server (a corrupted outgoing message).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import trio
import trio.testing
import trio_websocket

from voicebot.server import Server

__all__ = ["SimClient"]


class SimClient:
    """One simulated user; may connect, drop and resume many times during a run."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.name = f"user{index}"
        self.ws: trio_websocket.WebSocketConnection | None = None
        self.stream: trio.abc.Stream | None = None
        self.scope: trio.CancelScope | None = None
        self.done = trio.Event()
        self.done.set()
        self.peer_id: str | None = None
        self.token: str | None = None
        self.lobby_id: str | None = None
        self.received: list[dict[str, Any]] = []
        self.garbled = 0
        self.close_codes: list[int | None] = []
        self._ids = 0

    @property
    def connected(self) -> bool:
        """True while the WebSocket is open (as far as this client knows)."""
        return self.ws is not None

    async def connect(self, server: Server, nursery: trio.Nursery) -> bool:
        """Open a new connection (handshake included); False if the server refused or went away."""
        self.done = trio.Event()
        try:
            await nursery.start(self._run, server)
        except (trio_websocket.HandshakeError, trio_websocket.ConnectionClosed, trio.BrokenResourceError):
            self.done.set()
            return False
        return True

    async def _run(self, server: Server, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        client_end, server_end = trio.testing.memory_stream_pair()
        self.stream = client_end
        server.connect_stream(server_end, f"sim-{self.index}")
        try:
            with trio.CancelScope() as scope:
                self.scope = scope
                async with trio.open_nursery() as nursery:
                    ws = await trio_websocket.wrap_client_stream(nursery, client_end, "localhost", "/ws")  # type: ignore[arg-type]
                    self.ws = ws
                    task_status.started()
                    try:
                        while True:
                            self._on_message(await ws.get_message())
                    except trio_websocket.ConnectionClosed as exc:
                        self.close_codes.append(exc.reason.code if exc.reason is not None else None)
                    nursery.cancel_scope.cancel()
        finally:
            self.ws = None
            self.scope = None
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(client_end)
            self.done.set()

    def _on_message(self, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            self.garbled += 1
            return
        if not isinstance(message, dict):
            self.garbled += 1
            return
        self.received.append(message)
        kind = message.get("type")
        if kind == "welcome":
            self.peer_id = message.get("peer_id")
            self.token = message.get("resume_token")
            self.lobby_id = message.get("lobby_id")
        elif kind == "lobby.joined" and isinstance(message.get("lobby"), dict):
            self.lobby_id = message["lobby"].get("id")
        elif kind == "lobby.left" and message.get("lobby_id") == self.lobby_id:
            self.lobby_id = None

    async def send(self, type_: str, **fields: Any) -> None:
        """Send one request with a fresh id (no waiting for the reply); ignored if the socket is gone."""
        if self.ws is None:
            return
        self._ids += 1
        with contextlib.suppress(trio_websocket.ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError):
            await self.ws.send_message(json.dumps({"type": type_, "id": self._ids, **fields}))

    async def drop(self) -> None:
        """Vanish without a close frame (a network drop): the server sees EOF, the session enters grace."""
        if self.scope is not None:
            self.scope.cancel()
        if self.stream is not None:
            await trio.aclose_forcefully(self.stream)
        await self.done.wait()

    async def close(self, timeout: float = 3.0) -> None:
        """Close politely (1000), bounded; falls back to :meth:`drop`."""
        ws = self.ws
        if ws is not None:
            with trio.move_on_after(timeout):
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await ws.aclose(1000, "bye")
        await self.drop()
