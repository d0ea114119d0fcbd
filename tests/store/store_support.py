"""Helpers shared by the store tests (imported as a top-level module: tests/store is on sys.path)."""

from __future__ import annotations

from voicebot.store import SessionKind, SessionRecord


class FakeClock:
    """A settable ``now`` callable for the store's stored timestamps."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def session(
    session_id: str = "s1", *, token_hash: str = "h1", lobby_id: str | None = None, expires_at: float = 1_700_000_100.0,
    disconnected_at: float | None = None, kind: SessionKind = "user",
) -> SessionRecord:
    """A session record with sensible defaults."""
    return SessionRecord(
        session_id=session_id, peer_id=f"peer-{session_id}", name="Alice", lobby_id=lobby_id,
        resume_token_hash=token_hash, kind=kind,
        disconnected_at=disconnected_at, expires_at=expires_at,
    )
