"""Media settings: ICE servers, loopback policy, queue sizes and deadlines."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from ._icepolicy import DEFAULT_ICE_DENY, IcePolicy, parse_networks

__all__ = ["IceServer", "MediaConfig"]


def _urls(value: str | Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    urls = tuple(value)
    if not urls:
        raise ValueError("an ICE server needs at least one url")
    return urls


@attrs.frozen
class IceServer:
    """One STUN/TURN server, as in the WebRTC ``RTCIceServer`` dictionary."""

    urls: tuple[str, ...] = attrs.field(converter=_urls)
    """``stun:host:port`` / ``turn:host:port?transport=udp`` / ``turns:…`` URLs."""
    username: str | None = None
    """TURN username (None for STUN)."""
    credential: str | None = None
    """TURN password (None for STUN)."""

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> IceServer:
        """Build from a settings/JSON mapping ``{"urls": ..., "username"?: ..., "credential"?: ...}``."""
        return cls(urls=data["urls"], username=data.get("username"), credential=data.get("credential"))


def _ice_servers(value: Iterable[IceServer | Mapping[str, Any]]) -> tuple[IceServer, ...]:
    return tuple(item if isinstance(item, IceServer) else IceServer.from_mapping(item) for item in value)


def _addresses(value: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


@attrs.frozen(kw_only=True)
class MediaConfig:
    """Settings of one :class:`~voicebot.media.PeerConnection` (immutable; share one per process).

    The default has **no** ICE servers (aiortc's own default would add a public Google STUN server) and offers
    only the host's non-loopback addresses, like every browser.
    """

    ice_servers: tuple[IceServer, ...] = attrs.field(default=(), converter=_ice_servers)
    """STUN/TURN servers; accepts ``IceServer`` objects or mappings ``{urls, username?, credential?}``."""
    allow_loopback: bool = False
    """Also offer ``127.0.0.1`` as a host candidate (aioice never does). For tests and loopback-only hosts."""
    host_addresses: tuple[str, ...] | None = attrs.field(default=None, converter=_addresses)
    """If set, offer exactly these local addresses as host candidates instead of enumerating interfaces
    (e.g. ``("127.0.0.1",)`` to simulate a loopback-only host, or to pin one interface)."""
    negotiation_timeout: float = attrs.field(default=10.0, validator=_positive)
    """Deadline in seconds for each offer/answer/description/candidate operation."""
    close_timeout: float = attrs.field(default=5.0, validator=_positive)
    """Deadline in seconds for closing one peer connection (the close itself is never cancelled)."""
    outgoing_queue_frames: int = attrs.field(default=50, validator=_positive)
    """Capacity of the outgoing audio queue in 20 ms frames (50 = 1 s). Full: ``send`` waits,
    ``send_nowait`` drops the oldest queued frame and counts it."""
    incoming_queue_frames: int = attrs.field(default=50, validator=_positive)
    """Capacity of each received track's frame channel in frames. Full: the oldest frame is dropped and
    counted; the asyncio side never blocks."""
    ice_deny_networks: tuple[str, ...] = attrs.field(default=DEFAULT_ICE_DENY, converter=parse_networks)
    """Remote ICE candidates in these networks are refused (plus loopback unless ``allow_loopback`` or a loopback
    ``host_addresses`` entry); see
    :class:`~voicebot.media.IcePolicy`. Accepts a comma list or an iterable of CIDRs."""
    event_queue_size: int = attrs.field(default=32, validator=_positive)
    """Capacity of each event channel (states, tracks). Full: the oldest event is dropped and counted;
    the current state stays readable through the properties."""

    @property
    def ice_policy(self) -> IcePolicy:
        """The remote-candidate policy these settings describe."""
        loopback_host = any(a.startswith("127.") or a == "::1" for a in self.host_addresses or ())
        return IcePolicy.from_networks(self.ice_deny_networks, allow_loopback=self.allow_loopback or loopback_host)

    @property
    def patches_host_addresses(self) -> bool:
        """True when this config changes aioice's host-address enumeration."""
        return self.allow_loopback or self.host_addresses is not None
