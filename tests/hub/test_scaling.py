"""O(1) per message: with 10,000 sessions, one relayed signal and one expiry examine a handful of items.

The hub counts what it looks at (``Hub.items_examined``: sessions, timers) — a work count, not a timing.
"""

from __future__ import annotations

import random

from voicebot.hub import Hub, HubConfig, Notice, Send, SessionGone
from voicebot.protocol import Hello, LobbyCreate, LobbyJoin, Signal

SESSIONS = 10_000
OFFER = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n"


def crowded_hub() -> tuple[Hub, list[str], list[str]]:
    """10,000 sessions in 5,000 lobbies of two; every other pair has one member in its resume grace."""
    tokens = iter(f"t{i}" for i in range(10 * SESSIONS))
    hub = Hub(HubConfig(resume_grace=30.0), rng=random.Random(1), new_token=lambda: next(tokens),
              wall_clock=lambda: 0.0)
    peers: list[str] = []
    tokens_out: list[str] = []
    for conn in range(SESSIONS):
        welcome = next(a for a in hub.hello(conn, Hello(name=f"p{conn}"), 0.0) if isinstance(a, Send))
        peers.append(str(welcome.message["peer_id"]))
        tokens_out.append(str(welcome.message["resume_token"]))
        if conn % 2 == 0:
            created = hub.request(conn, LobbyCreate(name=f"l{conn}"), 0.0)
            lobby_id = next(a for a in created if isinstance(a, Send)).message["lobby"]["id"]
            hub.request(conn, LobbyJoin(lobby_id=lobby_id), 0.0)
        else:
            hub.request(conn, LobbyJoin(lobby_id=hub.sessions[peers[conn - 1]].lobby_id or ""), 0.0)
    for conn in range(1, SESSIONS, 4):  # 2,500 peers in grace, each with its own timer
        hub.disconnect(conn, 1.0 + conn / SESSIONS)
    assert len(hub.sessions) == SESSIONS
    return hub, peers, tokens_out


def test_one_relayed_signal_examines_constant_work() -> None:
    hub, peers, _tokens = crowded_hub()
    hub.items_examined = 0
    actions = hub.request(2, Signal(to=peers[3], kind="offer", sdp=OFFER), 5.0)
    assert [a.conns for a in actions if isinstance(a, Send)] == [(3,)]
    assert hub.items_examined <= 2
    hub.items_examined = 0
    assert hub.next_deadline() == 31.0 + 1 / SESSIONS  # what the shell asks after every batch
    assert hub.items_examined <= 2


def test_one_expiry_examines_only_what_is_due() -> None:
    hub, peers, _tokens = crowded_hub()
    hub.items_examined = 0
    first_due = 31.0 + 1 / SESSIONS
    actions = hub.expire(first_due)
    gone = [a for a in actions if isinstance(a, SessionGone)]
    assert [g.peer_id for g in gone] == [peers[1]]
    assert [n.fields["peer_id"] for n in actions if isinstance(n, Notice) and n.event == "lobby.left"] == [peers[1]]
    assert hub.items_examined <= 4  # the due timer, the lobby-mate told peer.left, the next deadline's peek
    hub.items_examined = 0
    assert hub.expire(first_due) == [] and hub.items_examined == 0


def test_stale_timers_are_skipped_once() -> None:
    """A resumed or ended session leaves its timer behind; it is discarded when reached, never acted on."""
    hub, peers, tokens = crowded_hub()
    resumed = hub.hello(SESSIONS + 1, Hello(name="p1", resume=tokens[1]), 2.0)  # ends its timer
    assert any(isinstance(a, Send) and a.message.get("resumed") for a in resumed)
    hub.items_examined = 0
    actions = hub.expire(31.0 + 5 / SESSIONS)  # conn 1's stale timer, then conn 5's live one
    assert [a.peer_id for a in actions if isinstance(a, SessionGone)] == [peers[5]]
    assert hub.items_examined == 3  # two timers and the lobby-mate told peer.left
