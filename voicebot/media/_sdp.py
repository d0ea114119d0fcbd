"""Session descriptions as exchanged over signaling, and the aiortc configuration built from MediaConfig."""

from __future__ import annotations

from typing import Literal

import attrs
from aiortc import RTCConfiguration, RTCIceServer

from ._config import MediaConfig

__all__ = ["SessionDescription", "rtc_configuration"]


@attrs.frozen
class SessionDescription:
    """An SDP offer or answer as exchanged over signaling."""

    type: Literal["offer", "answer"]
    """``"offer"`` or ``"answer"``."""
    sdp: str
    """The SDP text (aiortc puts all its candidates in it; it does not trickle)."""

    def to_json(self) -> dict[str, str]:
        """``{"type": ..., "sdp": ...}`` as browsers use it."""
        return {"type": self.type, "sdp": self.sdp}


def rtc_configuration(config: MediaConfig) -> RTCConfiguration:
    """aiortc configuration with exactly the configured ICE servers (none by default)."""
    servers = [
        RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential) for s in config.ice_servers
    ]
    return RTCConfiguration(iceServers=servers)  # [] explicitly: never aiortc's default Google STUN
