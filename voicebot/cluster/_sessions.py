"""Sessions shared through Redis: ``hello {resume}`` on any hub, and messages kept for a peer whose hub was lost.

Each hub stores the sessions it holds (``sess:{peer}`` and ``tok:{token hash}``, see :mod:`._scripts`) when they
start, resume or disconnect, and refreshes them every heartbeat; a record outlives its hub by the resume grace.
A resume token this hub does not know is looked up there (:meth:`SessionShare.adopt`): the ``takeover`` script
moves the session and its lobby membership to this hub atomically; a live previous hub is asked to hand the
session over (it closes the old socket with 4001 and passes on what it buffered) and answers ``handed``; then
the messages kept in Redis are taken (oldest first) and the hubs of the lobby's other members are told where the
peer is now. What a hub buffers for its peers in grace is copied to Redis as it comes (:mod:`._writethrough`),
so that survives the hub's loss too. A message for a hub that is gone (its liveness key expired; what it left
unread in its inbox too) is kept in Redis for each of its peers whose session can still be resumed (bounded like
the hub's own resume buffer), or re-sent to the hub that took the session over meanwhile.

Order during a move from a live hub: the new hub publishes what it queued for the old hub before asking it (so
that lands in the buffer handed over); the old hub relays to the new one what other hubs still send it for the
peer; each other hub, told of the move, sends a fence through the old hub after all it sent there, and the new
hub holds back what that hub sends it directly for the peer until the fence arrives (or a window passes).

An old hub that does not answer the hand-over within a call deadline (lost before its key expired, or stalled)
loses the peer to a claim (see :mod:`._move_scripts`): the new hub takes the peer's messages still unread in the old
hub's inbox, later sends to the old hub for the peer go to the new hub, and whatever the old hub does for the
peer when it runs again is refused or dropped, so no message arrives twice.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import trio

from ..hub import Forward, Session, adopt, hand_off, prepend, token_hash
from ._link import ttl_seconds, unavailable

if TYPE_CHECKING:
    from ._cluster import Cluster

__all__ = ["SessionShare"]


class SessionShare:
    """The session side of a :class:`~voicebot.cluster.Cluster` (records, takeover, hand-over, kept messages)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.adopted = 0
        """Sessions taken over from another hub (or from a lost one)."""
        self.handed_off = 0
        """Sessions given to another hub."""
        self.stashed = 0
        """Messages kept in Redis for peers of a lost hub."""
        self._handed: dict[str, trio.Event] = {}
        self._adopting: set[str] = set()
        """Peers being taken over here: their buffer is not copied to Redis and their mirror entry is kept."""
        self._early: dict[str, tuple[int, list[tuple[dict[str, Any], str | None]]]] = {}
        """Peer id → (heartbeats seen, [(message, its pinned inbox entry)]) sent here for a peer whose takeover is
        not finished yet."""
        self._moved_away: dict[str, tuple[str, float]] = {}
        """Peer id → (its new hub, since when) of sessions this hub handed over: messages for them that still
        arrive here (from hubs that did not know yet) are relayed there."""
        self._holds: dict[tuple[str, str], tuple[float, list[tuple[dict[str, Any], str | None]]]] = {}
        """(peer id, sender hub) → (since, messages held): messages a hub sent straight here for a peer taken
        over from a live hub wait until that hub's fence, relayed by the old hub, says nothing older is behind."""
        self._taken: dict[tuple[str, str], tuple[float, set[str]]] = {}
        """(peer id, old hub) → (since, entry ids): entries of the old hub's inbox whose messages for the peer
        this hub claimed when that hub did not answer the hand-over in time; what it relays from them is dropped."""

    # -- records ------------------------------------------------------------------------------------
    def _record(self, session: Session) -> str:
        return json.dumps({"peer_id": session.peer_id, "name": session.name, "kind": session.kind,
                           "admin": session.admin, "session_id": session.session_id,
                           "lobby_id": session.lobby_id, "hub": self.cluster.hub_id,
                           "token": session.token_hash}, separators=(",", ":"))

    def _ttl(self, session: Session, now: float) -> int:
        if session.grace_deadline is not None:  # in grace: the record lives exactly as long as the grace
            return ttl_seconds(session.grace_deadline - now)
        return ttl_seconds(self.cluster.hub.config.resume_grace + self.cluster.heartbeat)

    def stored(self, session: Session) -> list[Any]:
        """``[record JSON, token hash, TTL]`` of a session held here, for a script that stores it along with
        another change (``admit``); ``['', '', 0]`` when it cannot be resumed."""
        if session.home is not None or not session.token_hash:
            return ["", "", 0]
        return [self._record(session), session.token_hash, self._ttl(session, trio.current_time())]

    def held(self, now: float) -> list[list[Any]]:
        """The heartbeat's part: ``[peer id, record, token hash, ttl]`` of every session this hub holds."""
        return [[s.peer_id, self._record(s), s.token_hash, self._ttl(s, now)]
                for s in self.cluster.hub.sessions.values() if s.home is None and s.token_hash]

    async def save(self, peer_id: str) -> None:
        """Store ``peer_id``'s session now (it started, resumed or disconnected here)."""
        session = self.cluster.hub.sessions.get(peer_id)
        if session is None or session.home is not None or not session.token_hash:
            return
        await self.cluster.link.script("save", self.cluster.hub_id, peer_id, self._record(session),
                                       session.token_hash, self._ttl(session, trio.current_time()))

    @property
    def adopting(self) -> frozenset[str]:
        """Peers this hub is taking over right now (their mirrors must not drop them meanwhile)."""
        return frozenset(self._adopting)

    def arrived(self, peer_id: str, message: dict[str, Any], entry: str | None = None) -> None:
        """A message for ``peer_id`` reached this hub (it moved here, say the other hubs) before or after its
        takeover here finished: delivered now if the session is here, else kept until the takeover ends.
        ``entry``: the inbox entry it came from, pinned by the caller (see ``WriteThrough.pin``), unpinned once
        the message is delivered or buffered."""
        cluster = self.cluster
        session = cluster.hub.sessions.get(peer_id)
        if session is not None and session.home is None:
            cluster.apply(cluster.hub.deliver([peer_id], message, trio.current_time()))
            cluster.copies.unpin(entry)  # a copy of the buffer, queued first, trims it
            return
        messages = self._early.setdefault(peer_id, (0, []))[1]
        if len(messages) < cluster.hub.config.resume_buffer:
            messages.append((message, entry))
        else:
            cluster.copies.unpin(entry)

    def expire_early(self) -> None:
        """Each heartbeat: forget messages kept for a takeover that did not happen here (two heartbeats on), and
        end relays and holds older than the window in which other hubs learn of a move."""
        now = trio.current_time()
        window = self.cluster.hub_ttl + 2 * self.cluster.link.call_timeout
        for peer_id, (_, since) in list(self._moved_away.items()):
            if now - since > window:
                del self._moved_away[peer_id]
        for key, (since, _) in list(self._holds.items()):
            if now - since > window:  # its fence was lost with the old hub or the sender: what is held goes now
                self._release(*key)
        inbox_life = self.cluster.hub_ttl + self.cluster.hub.config.resume_grace  # the old hub's unread inbox
        for key, (since, _) in list(self._taken.items()):
            if now - since > inbox_life:
                del self._taken[key]
        for peer_id, (seen, messages) in list(self._early.items()):
            if peer_id in self._adopting:
                continue
            if seen >= 1:
                for _, entry in self._early.pop(peer_id)[1]:
                    self.cluster.copies.unpin(entry)
            else:
                self._early[peer_id] = (seen + 1, messages)

    async def work(self, kind: str, item: Any) -> None:
        """Carry out session work the publisher task dequeued (``save``, ``forget``, ``handoff``, ``fence``), in
        order with this hub's messages."""
        if kind == "fence":
            await self.send_fence(*item)
        elif kind == "save":
            await self.save(item)
        elif kind == "forget":
            await self.forget(item)
        elif kind == "handoff":
            await self.hand_over(*item)

    async def forget(self, peer_id: str) -> None:
        """A session this hub held ended for good: it can no longer be resumed on any hub."""
        await self.cluster.link.script("forget", self.cluster.hub_id, peer_id)

    # -- takeover -----------------------------------------------------------------------------------
    async def adopt(self, token: str) -> None:
        """Before ``hello {resume: token}`` with a token this hub does not know: take the session over from the
        hub that holds it (or held it, if that hub was lost) so the core resumes it; nothing when the token
        resumes nothing anywhere (the core then starts a new session). ``cluster_unavailable`` without Redis, and for
        a token found nowhere while this hub is not available or for a heartbeat timeout after it came back from an
        outage (the hub holding the session may not have re-asserted it yet)."""
        cluster = self.cluster
        # What this hub already queued for that peer's old hub is kept in Redis before the takeover, so it is
        # drained below, ahead of anything newer.
        await cluster.flush()
        config = cluster.hub.config
        result = await cluster.link.script("takeover", token_hash(token), cluster.hub_id, config.resume_buffer,
                                           config.resume_buffer_bytes)
        if not result:
            if not cluster.settled():
                # Redis may have come back empty: the hub holding the session re-asserts it at its next heartbeat.
                raise unavailable("the cluster is resynchronising after an outage")
            return
        raw, previous, alive, members = result
        record = json.loads(raw)
        peer_id = str(record["peer_id"])
        self._adopting.add(peer_id)  # what arrives here meanwhile is newer than what is kept in Redis
        self._moved_away.pop(peer_id, None)  # back here: nothing to relay any more
        if int(alive) and previous != cluster.hub_id:
            # Hubs that still send to the old hub get a fence there; until it is relayed here, what they send
            # straight here waits behind what the old hub relays.
            now = trio.current_time()
            for other in self._hubs_of(members) - {cluster.hub_id, previous}:
                self._holds.setdefault((peer_id, other), (now, []))
        try:
            await self._adopt(token, record, previous, int(alive), members)
        finally:
            self._adopting.discard(peer_id)

    async def _adopt(self, token: str, record: dict[str, Any], previous: str, alive: int, members: list[str]) -> None:
        cluster, hub = self.cluster, self.cluster.hub
        peer_id, lobby_id = str(record["peer_id"]), record.get("lobby_id")
        if lobby_id is not None:
            cluster.hold(lobby_id)
        try:
            if lobby_id is not None:
                await cluster.lobbies.ensure_lobby(lobby_id)
            session = Session(peer_id, str(record["name"]), record["kind"], token_hash(token), None,
                              lobby_id=lobby_id, admin=bool(record["admin"]), session_id=str(record["session_id"]))
            now = trio.current_time()
            adopt(hub, session, now + hub.config.resume_grace)
            lobby = hub.lobbies.get(lobby_id or "")
            if lobby is not None and session.lobby_id == lobby.id:
                cluster.sync_members(lobby, members, exclude=peer_id)
        finally:
            if lobby_id is not None:
                cluster.unhold(lobby_id)
        unread: list[dict[str, Any]] = []
        if previous != cluster.hub_id and alive:
            handed = self._handed[peer_id] = trio.Event()
            try:
                # What this hub forwarded to the old hub before it adopted the session goes there first (into
                # the buffer handed over), not after the hand-over (relayed back, behind newer messages).
                await cluster.flush()
                if await cluster.send_to(previous, {"from": cluster.hub_id, "takeover": peer_id}):
                    with trio.move_on_after(cluster.link.call_timeout):  # a hub that does not answer is lost
                        await handed.wait()
                if not handed.is_set():  # lost or stalled: what it has not read for the peer is ours, unless it
                    claimed = await self._claim(previous, peer_id)  # answered in the meantime
                    if claimed is not None:
                        unread = claimed
                        alive = 0  # no fences through it: what other hubs send straight here is not held back
            finally:
                self._handed.pop(peer_id, None)
        kept = await cluster.link.script("drain", peer_id)  # older than what the old hub left unread
        early = self._early.pop(peer_id, (0, []))[1]  # sent here after the takeover, before the session was
        prepend(session, [json.loads(message) for message in kept] + unread + [message for message, _ in early])
        for _, entry in early:  # in the buffer now, which the resume that follows delivers (else a heartbeat
            cluster.copies.unpin(entry)  # copies it)
        if not alive:  # newer than all of the above
            for key in [key for key in self._holds if key[0] == peer_id]:
                self._release(*key)
        self.adopted += 1
        moved = {"from": cluster.hub_id, "moved": peer_id, "home": cluster.hub_id,
                 "previous": previous if alive else None}
        for other in sorted(self._hubs_of(members) - {cluster.hub_id}):
            await cluster.send_to(other, moved)

    async def _claim(self, hub_id: str, peer_id: str) -> list[dict[str, Any]] | None:
        """Claim ``peer_id`` away from ``hub_id``, which did not answer the hand-over in time: the messages for it
        still in that hub's inbox (oldest first), which that hub then no longer hands over, copies or relays (see
        :mod:`._move_scripts`); None when that hub handed the session over just before (its buffer is kept)."""
        cluster = self.cluster
        result = await cluster.link.script("claim", hub_id, peer_id, cluster.hub_id, cluster.delivery.inbox_ttl_ms)
        if result[0] == "handed":
            return None
        pairs = list(zip(result[1::2], result[2::2], strict=True))
        self._taken[(peer_id, hub_id)] = (trio.current_time(), {str(entry_id) for entry_id, _ in pairs})
        return [json.loads(raw) for _, raw in pairs]

    def untaken(self, via: str, at: str | None, to: list[str]) -> list[str]:
        """The receivers of a message hub ``via`` relayed from entry ``at`` of its inbox that did not get it yet
        (this hub claimed it for them from that inbox when ``via`` did not answer a hand-over in time)."""
        if at is None or not self._taken:
            return to
        return [peer_id for peer_id in to if at not in self._taken.get((peer_id, via), (0.0, set()))[1]]

    @staticmethod
    def _hubs_of(members: list[str]) -> set[str]:
        return {str(json.loads(members[i + 1])["hub"]) for i in range(0, len(members), 2)}

    def on_control(self, envelope: dict[str, Any]) -> bool:
        """Handle a control message from another hub (``takeover``/``handed``/``moved``); False for others."""
        cluster, hub = self.cluster, self.cluster.hub
        if "takeover" in envelope:  # another hub resumed one of our sessions: give it away
            peer_id, home = str(envelope["takeover"]), str(envelope["from"])
            for key in [key for key in self._holds if key[0] == peer_id]:  # into its buffer: handed over below
                self._release(*key)
            session = hub.sessions.get(peer_id)
            lobby_id = session.lobby_id if session is not None else None
            buffered, actions = hand_off(hub, peer_id, home)
            buffered = buffered[cluster.copies.handed(peer_id):]  # the rest is in Redis already
            if actions:
                cluster.apply(actions)
                self.handed_off += 1
            lobby = hub.lobbies.get(lobby_id or "")
            if lobby is not None:
                cluster.drop_if_unused(lobby)
            pin = cluster.copies.pin_untrimmed()  # what it hands over came from entries a copy could trim
            if not cluster.enqueue("handoff", (peer_id, home, buffered, pin)):
                cluster.copies.unpin(pin)
            self._moved_away[peer_id] = (home, trio.current_time())
            return True
        if "fence" in envelope:
            self._fence(envelope)
            return True
        if "handed" in envelope:
            event = self._handed.get(str(envelope["handed"]))
            if event is not None:
                event.set()
            return True
        if "moved" in envelope:
            peer_id, home, previous = str(envelope["moved"]), str(envelope["home"]), envelope.get("previous")
            ghost = hub.sessions.get(peer_id)
            if ghost is not None and ghost.home is not None:
                ghost.home = home
            if previous is not None and previous not in (cluster.hub_id, home):
                # After everything this hub queued for the old hub: the new hub holds what comes straight.
                cluster.enqueue("fence", (str(previous), home, peer_id))
            return True
        return False

    def relay(self, sender: str, to: list[str], message: dict[str, Any]) -> list[str]:
        """Messages for sessions this hub handed over that still arrive here go on to their new hub (through
        the publisher, in order with the fences that follow them); returns the peers of ``to`` left to
        deliver here. Messages a hub sent straight here for a peer it must fence first are held."""
        rest = []
        for peer_id in to:
            moved = self._moved_away.get(peer_id)
            hold = self._holds.get((peer_id, sender))
            here = self.cluster.hub.sessions.get(peer_id)
            if moved is not None and (here is None or here.home is not None):  # not back here meanwhile
                relayed = {"from": sender, "via": self.cluster.hub_id, "to": [peer_id], "msg": message}
                reading = self.cluster.delivery.reading
                if reading is not None:  # its entry: the new hub may have claimed it
                    relayed["at"] = reading
                if self.cluster.enqueue("send", (moved[0], relayed)):
                    self.cluster.copies.pin(reading)  # that entry stays in the inbox until it is sent
            elif hold is not None:
                hold[1].append((message, self.cluster.copies.pin(self.cluster.delivery.reading)))
            else:
                rest.append(peer_id)
        return rest

    async def send_fence(self, previous: str, home: str, peer_id: str) -> None:
        """The publisher's part of a fence: through the old hub (after what this hub sent there), or straight
        to the new hub when the old one is gone (what it missed was re-sent there in order already)."""
        envelope = {"from": self.cluster.hub_id, "fence": peer_id}
        if not await self.cluster.send_to(previous, envelope):
            await self.cluster.send_to(home, envelope)

    def _fence(self, envelope: dict[str, Any]) -> None:
        peer_id, sender = str(envelope["fence"]), str(envelope["from"])
        moved = self._moved_away.get(peer_id)
        if moved is not None and "via" not in envelope:  # the old hub: pass it on after what it relayed
            self.cluster.enqueue("send", (moved[0], {**envelope, "via": self.cluster.hub_id}))
        elif (peer_id, sender) in self._holds:
            self._release(peer_id, sender)

    def _release(self, peer_id: str, sender: str) -> None:
        _, held = self._holds.pop((peer_id, sender))
        for message, entry in held:
            self.arrived(peer_id, message, entry)

    async def hand_over(self, peer_id: str, home: str, buffered: list[dict[str, Any]], pin: str | None = None) -> None:
        """Pass on what this hub buffered for a session another hub took over, then tell that hub; nothing when
        that hub stopped waiting and claimed the peer first (it took what this hub had not read for the peer from
        the inbox, which ``pin`` kept until now). ``pin`` is unpinned once the hand-over is done or failed."""
        cluster, config = self.cluster, self.cluster.hub.config
        try:
            result = await cluster.link.script(
                "hand", peer_id, cluster.hub_id, 1, cluster.delivery.inbox_ttl_ms, config.resume_buffer,
                config.resume_buffer_bytes, *[json.dumps(m, separators=(",", ":")) for m in buffered])
        finally:
            cluster.copies.unpin(pin)
        if result[0] != "claimed":
            await cluster.send_to(home, {"from": cluster.hub_id, "handed": peer_id})

    # -- messages for a lost hub ----------------------------------------------------------------------
    async def keep(self, action: Forward) -> int:
        """``action``'s hub is gone: keep it for each peer whose session can still be
        resumed, or re-send it to the hub that took the session over. Returns how many peers it reached."""
        cluster = self.cluster
        payload = json.dumps(action.message, separators=(",", ":"))
        reached = 0
        for peer_id in action.peer_ids:
            result = await self._stash(peer_id, action.home, [payload])
            if result[0] == "ok":
                self.stashed += 1
                reached += 1
            elif result[0] == "moved" and result[1] == cluster.hub_id:  # it moved here
                self.arrived(peer_id, action.message)
                reached += 1
            elif result[0] == "moved":
                ghost = cluster.hub.sessions.get(peer_id)
                if ghost is not None and ghost.home is not None:
                    ghost.home = str(result[1])
                envelope = {"from": cluster.hub_id, "to": [peer_id], "msg": action.message}
                reached += await cluster.send_to(str(result[1]), envelope) > 0
        return reached

    async def _stash(self, peer_id: str, expected: str, payloads: list[str]) -> list[Any]:
        config = self.cluster.hub.config
        result: list[Any] = await self.cluster.link.script(
            "stash", peer_id, expected, config.resume_buffer, config.resume_buffer_bytes, *payloads)
        return result

    def snapshot(self) -> dict[str, int]:
        """Counters for ``admin.stats``."""
        return {"adopted": self.adopted, "handed_off": self.handed_off, "stashed": self.stashed}
