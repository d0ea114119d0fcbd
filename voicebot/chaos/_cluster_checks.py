"""Invariants of the multi-hub chaos workload, seen from the hubs and from the clients.

Every check reports through :func:`voicebot.faults.invariant` (journalled, kept in the run's violations):

- ``delivery_within_lobby`` (each hub, on every lobby-scoped send, local or arriving from another hub) and
  ``client_lobby_scoped`` (each client, on receipt): no ``chat``/``signal``/``peer.*`` reaches a peer outside
  the message's lobby;
- ``sender_order`` (each client, on receipt): per sender → receiver, chats and signals arrive in the order sent;
- ``membership_consistent`` (checkpoints): every live hub's view of a lobby (its own members and the mirror of
  other hubs') equals the union of the live hubs' own members, and every connected client's view (its
  ``lobby.joined`` peers and the ``peer.joined``/``peer.left`` since) equals it too;
- ``acknowledged_chat_delivered`` (checkpoints): a chat the sender's hub accepted (echoed, no error) while every
  live hub was available reached every peer that the sender had been told was in the lobby when it was sent and
  that stayed connected and in it;
- ``request_answered``: every request gets its answer (every network wait has a deadline);
- ``lost_hub_peers_leave_disconnected`` (after the hub loss): every client on a live hub that had a peer of the
  lost hub in its lobby was told ``peer.left`` with reason ``disconnected``;
- per hub: ``member_has_session``, ``session_in_its_lobby``, ``session_live_or_in_grace``.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any

import attrs

from voicebot import faults
from voicebot.hub import Send
from voicebot.server import Server

from ._clients import SimClient
from ._invariants import LOBBY_SCOPED, ChaosServer, check_membership

__all__ = [
    "ChatRecord",
    "ClusterChaosServer",
    "ClusterSimClient",
    "check_hub_state",
    "hub_truth",
    "membership_problems",
    "undelivered_chats",
]

#: Slack for real-clock timers (the expiry loop runs a little after a deadline passes).
TIMER_SLACK = 0.5


class ClusterChaosServer(ChaosServer):
    """A :class:`ChaosServer` for cluster mode: the sender of a message that arrived from another hub is checked
    by its own hub (this hub's mirror of it may already be gone); every receiver is checked here."""

    def _check_send(self, action: Send, *, check_sender: bool) -> None:
        session = self.hub.sessions.get(str(action.message.get("from")))
        local_sender = session is not None and session.home is None
        super()._check_send(action, check_sender=check_sender and local_sender)


class ClusterSimClient(SimClient):
    """A simulated client that tracks its lobby's peers, its unanswered requests and what it received."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.hub: int | None = None
        self.view: set[str] = set()
        """The peers of its lobby as this client was told (``lobby.joined`` peers, ``peer.joined``/``left``)."""
        self.epoch = 0
        """Bumped whenever this client's connection or lobby changes (deliveries across it are not owed)."""
        self.seq = 0
        self.unanswered: dict[int, str] = {}
        self.errors: dict[int, str] = {}
        self.echoed: set[str] = set()
        self.got: set[tuple[str, str]] = set()
        """(sender peer id, chat text) of every chat received."""
        self.last_seq: dict[str, int] = {}
        self.left: dict[str, str] = {}
        """The reason of the last ``peer.left`` received for each peer."""

    async def send(self, type_: str, **fields: Any) -> None:
        """Send one request and remember it until its answer (a chat is answered by its echo or an error)."""
        if self.ws is None:
            return
        self.unanswered[self._ids + 1] = type_
        await super().send(type_, **fields)

    async def close(self, timeout: float = 0.5) -> None:
        """Close politely (1000) with a short bound: over memory streams the server's close frame arrives at once,
        but the client's ``aclose`` then waits out the whole bound (its reader task has already ended), which on
        the real clock would cost seconds per close."""
        await super().close(timeout)

    def forget(self) -> None:
        """The connection is gone: nothing it asked will be answered; its lobby and view with it."""
        self.unanswered.clear()
        self.view.clear()
        self.lobby_id = None
        self.peer_id = None
        self.epoch += 1

    def _on_message(self, raw: str | bytes) -> None:
        before = len(self.received)
        super()._on_message(raw)
        if len(self.received) == before:
            return
        message = self.received[-1]
        kind = message.get("type")
        reply_to = message.get("reply_to")
        if isinstance(reply_to, int):
            self.unanswered.pop(reply_to, None)
            if kind == "error":
                self.errors[reply_to] = str(message.get("code"))
        if kind in ("welcome", "lobby.left"):
            self.view.clear()
            self.epoch += 1
        elif kind == "lobby.joined":
            self.view = {str(p["peer_id"]) for p in message.get("peers", [])}
            self.epoch += 1
        if kind in LOBBY_SCOPED:
            faults.invariant(message.get("lobby_id") == self.lobby_id, "client_lobby_scoped", client=self.index,
                             type=kind, lobby=message.get("lobby_id"), own_lobby=self.lobby_id)
        if kind == "peer.joined":
            self.view.add(str(message["peer"]["peer_id"]))
        elif kind == "peer.left":
            self.view.discard(str(message["peer_id"]))
            self.left[str(message["peer_id"])] = str(message.get("reason"))
        elif kind == "chat":
            self._ordered(str(message.get("from")), str(message.get("text", "")).split(":")[-1], kind)
            if message.get("from") == self.peer_id:
                self.echoed.add(str(message.get("text")))
                self.unanswered = {i: t for i, t in self.unanswered.items() if t != "chat"}
            self.got.add((str(message.get("from")), str(message.get("text"))))
        elif kind == "signal" and isinstance(message.get("sdp"), str):
            self._ordered(str(message.get("from")), message["sdp"].split(" ")[1], kind)

    def _ordered(self, sender: str, seq_text: str, kind: str) -> None:
        if sender == self.peer_id or not seq_text.isdigit():
            return
        seq = int(seq_text)
        last = self.last_seq.get(sender, -1)
        faults.invariant(seq > last, "sender_order", client=self.index, sender=sender, type=kind, seq=seq,
                         after=last)
        self.last_seq[sender] = max(seq, last)

    def next_request_id(self) -> int:
        """The id :meth:`send` gives the next request."""
        return self._ids + 1

    def next_seq(self) -> int:
        """A fresh sequence number for this client's next chat or signal."""
        self.seq += 1
        return self.seq


@attrs.define
class ChatRecord:
    """One chat as sent: who should get it (client index → its epoch then)."""

    sender: ClusterSimClient
    sender_id: str
    text: str
    request_id: int
    fault_epoch: int
    receivers: dict[int, int]
    """The clients in the lobby that the sender had been told of (``lobby.joined`` peers, ``peer.joined``)."""
    unheard: dict[int, int]
    """Clients in the lobby (their join answered) that the sender had not been told of yet: a join through
    another hub reaches the sender's hub a moment after the joiner's answer, so these are not owed."""


def hub_truth(servers: Iterable[Server]) -> dict[str, set[str]]:
    """Each lobby's members as the live hubs hold them themselves (their own sessions, live or in grace)."""
    truth: dict[str, set[str]] = collections.defaultdict(set)
    for server in servers:
        for session in server.hub.sessions.values():
            if session.home is None and session.lobby_id is not None:
                truth[session.lobby_id].add(session.peer_id)
    return truth


def membership_problems(servers: list[Server], clients: list[ClusterSimClient]) -> list[dict[str, Any]]:
    """Where a live hub's or a connected client's view of a lobby differs from :func:`hub_truth` (empty: none)."""
    truth = hub_truth(servers)
    problems: list[dict[str, Any]] = []
    for index, server in enumerate(servers):
        for lobby in server.hub.lobbies.values():
            local = [p for p in lobby.members if (s := server.hub.sessions.get(p)) is not None and s.home is None]
            if local and set(lobby.members) != truth[lobby.id]:
                problems.append({"hub": index, "lobby": lobby.id, "members": sorted(lobby.members),
                                 "expected": sorted(truth[lobby.id])})
    for client in clients:
        if client.connected and client.lobby_id is not None and client.peer_id is not None:
            expected = truth[client.lobby_id] - {client.peer_id}
            if client.view != expected:
                problems.append({"client": client.index, "lobby": client.lobby_id, "view": sorted(client.view),
                                 "expected": sorted(expected)})
    return problems


def check_hub_state(server: Server, hub_index: int) -> None:
    """:func:`~voicebot.chaos._invariants.check_membership` for hub ``hub_index`` on the real clock (with
    :data:`TIMER_SLACK`): sessions homed elsewhere are their own hub's to keep alive."""
    check_membership(server, slack=TIMER_SLACK, hub=hub_index)


def undelivered_chats(
    records: list[ChatRecord], clients: list[ClusterSimClient], fault_epoch: int, *, unheard: bool = False,
) -> tuple[int, list[tuple[ChatRecord, int]]]:
    """How many deliveries ``records`` owe now, and which of them (record, receiver index) have not arrived.

    A chat is owed to a receiver when its hub accepted it (the sender got its echo and no error), no fault
    happened since it was sent (``fault_epoch``), the sender had been told the receiver was in the lobby, and
    the receiver stayed connected and in the lobby. With ``unheard`` the same is counted for the receivers the
    sender had not been told of yet (a statistic, not an invariant)."""
    owed = 0
    missing: list[tuple[ChatRecord, int]] = []
    for record in records:
        acked = record.text in record.sender.echoed and record.request_id not in record.sender.errors
        if not acked or record.fault_epoch != fault_epoch:
            continue
        for index, epoch in (record.unheard if unheard else record.receivers).items():
            receiver = clients[index]
            if receiver.epoch != epoch or not receiver.connected:
                continue
            owed += 1
            if (record.sender_id, record.text) not in receiver.got:
                missing.append((record, index))
    return owed, missing
