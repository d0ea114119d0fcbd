"""Which remote ICE candidates a server-side peer accepts (issue 12, item 3).

A client can hand a bot candidates pointing anywhere, which would make the bot send STUN connectivity checks to
internal addresses (cloud metadata at 169.254.169.254, services on loopback, multicast groups). The policy refuses
candidates whose address lies in a denied network — by default link-local (``169.254.0.0/16``, ``fe80::/10``),
multicast (``224.0.0.0/4``, ``ff00::/8``), "this network" (``0.0.0.0/8``), broadcast and the unspecified address,
plus loopback (``127.0.0.0/8``, ``::1``) unless loopback is allowed — and any host name other than an mDNS
``*.local`` name (browsers hide host addresses behind those; they resolve only on the local link). IPv4-mapped
IPv6 addresses are judged by their IPv4 address. Pure: no I/O; the peer connection counts and logs refusals.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

import attrs

__all__ = ["DEFAULT_ICE_DENY", "LOOPBACK_NETWORKS", "IcePolicy", "parse_networks"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_ICE_DENY = ("0.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "255.255.255.255/32", "::/128", "fe80::/10",
                    "ff00::/8")
"""Networks refused by default (``--ice-deny-networks``)."""
LOOPBACK_NETWORKS = ("127.0.0.0/8", "::1/128")
"""Added to the denied networks unless loopback is allowed (``--media-allow-loopback``)."""


def parse_networks(value: str | Iterable[str]) -> tuple[str, ...]:
    """A comma list (or iterable) of CIDRs, validated (``ValueError`` names the bad one) and normalised."""
    items = value.split(",") if isinstance(value, str) else list(value)
    out = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError as exc:
            raise ValueError(f"not a network: {item!r} ({exc})") from None
    return tuple(out)


@attrs.frozen
class IcePolicy:
    """Denied networks for remote ICE candidates; :meth:`refusal` says why a candidate address is refused."""

    deny: tuple[Network, ...]

    @classmethod
    def from_networks(cls, networks: Iterable[str], *, allow_loopback: bool) -> IcePolicy:
        """The policy for ``networks`` (CIDR strings), plus loopback unless ``allow_loopback``."""
        names = list(networks) + ([] if allow_loopback else list(LOOPBACK_NETWORKS))
        return cls(tuple(ipaddress.ip_network(n, strict=False) for n in names))

    def refusal(self, host: str) -> str | None:
        """None when a candidate at ``host`` may be checked; else the reason (the denied network, or a note)."""
        host = host.strip().strip("[]")
        try:
            ip = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            if host.lower().endswith(".local") and len(host) > len(".local"):
                return None
            return "host name (only IP addresses and mDNS .local names are accepted)"
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        for network in self.deny:
            if ip.version == network.version and ip in network:
                return f"in denied network {network}"
        return None

    def filter_sdp(self, sdp: str) -> tuple[str, list[tuple[str, str]]]:
        """``sdp`` without the ``a=candidate`` lines this policy refuses; also returns ``(address, reason)`` of each
        refused line. Lines that cannot be parsed are left for the WebRTC stack to reject."""
        kept: list[str] = []
        refused: list[tuple[str, str]] = []
        for line in sdp.splitlines(keepends=True):
            if line.startswith("a=candidate:"):
                fields = line.split()
                if len(fields) >= 6:
                    reason = self.refusal(fields[4])
                    if reason is not None:
                        refused.append((fields[4], reason))
                        continue
            kept.append(line)
        return "".join(kept), refused
