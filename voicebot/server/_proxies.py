"""Client addresses behind trusted reverse proxies (``--trusted-proxies``), sans-IO.

A connection whose TCP peer is a trusted proxy is keyed — for quotas, throttles, audit and logs — by the right-most
address of ``X-Forwarded-For`` (or ``Forwarded: for=``) that is not itself a trusted proxy: each proxy appends the
address it received the request from, so everything left of the first untrusted hop (reading from the right) was
written by the client and may be invented. Headers from any other peer are never read. A header that cannot be
parsed — or ``X-Forwarded-For`` and ``Forwarded`` naming different clients (one of them may have come from the
client through a proxy that sets only the other) — is ignored: the proxy's own address is used.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping

import attrs

__all__ = ["MAX_PROBLEMS_REMEMBERED", "Forwarded", "ProxyPolicy", "format_remote", "parse_networks"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Distinct (proxy, header) pairs whose malformed headers were audited; beyond it nothing more is audited.
MAX_PROBLEMS_REMEMBERED = 1024
#: Hops read from one header (a longer chain is malformed).
MAX_HOPS = 64

_PORT = re.compile(r"\d{1,5}")


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """A comma list of CIDRs (or single addresses) → networks; ``ValueError`` naming a bad entry."""
    networks = []
    for item in filter(None, (i.strip() for i in text.split(","))):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ValueError(f"trusted_proxies: not a network: {item!r} ({exc})") from None
    return tuple(networks)


def format_remote(host: str, port: int | str) -> str:
    """``host:port`` as the server writes remotes (``[v6]:port`` for IPv6)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@attrs.frozen
class Forwarded:
    """What the headers of a proxied request say."""

    host: str
    """The client's address (the proxy's own when the headers were missing or ignored)."""
    port: int
    """The client's port when a header gave one, else 0."""
    problem: str | None = None
    """Why the headers were ignored (``None`` when they were used or absent)."""
    header: str | None = None
    """The header that was ignored."""

    @property
    def remote(self) -> str:
        """``host:port`` for logs and audit rows."""
        return format_remote(self.host, self.port)


class ProxyPolicy:
    """Which peers are trusted proxies, and the client address their requests name."""

    def __init__(self, trusted: str) -> None:
        self.networks = parse_networks(trusted)
        self._problems_seen: set[tuple[str, str]] = set()
        self.malformed = 0
        """Proxied requests whose forwarding headers were ignored since start."""

    def trusts(self, host: str) -> bool:
        """Whether ``host`` (an address without port) is a trusted proxy."""
        if not self.networks:
            return False
        address = _address(host)
        return address is not None and _within(address, self.networks)

    def client(self, peer: str, headers: Mapping[str, str]) -> Forwarded:
        """The client of a request received from the trusted proxy ``peer`` (address without port), from
        ``headers`` (lower-case names, repeated headers joined by ``", "``)."""
        chains: dict[str, list[tuple[IPAddress, int]]] = {}
        for name, parse in (("forwarded", _parse_forwarded), ("x-forwarded-for", _parse_xff)):
            value = headers.get(name)
            if value is None:
                continue
            try:
                chains[name] = parse(value)
            except ValueError as exc:
                return self._ignored(peer, name, str(exc))
        if not chains:
            return Forwarded(peer, 0)
        clients = {name: self._pick(chain) for name, chain in chains.items()}
        if len({address for address, _ in clients.values()}) > 1:
            return self._ignored(peer, "forwarded", "X-Forwarded-For and Forwarded name different clients")
        address, port = next(iter(clients.values()))
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return Forwarded(str(address), port)

    def first_problem(self, peer: str, header: str) -> bool:
        """Whether this is the first ignored ``header`` from ``peer`` (audit it once; later ones are counted)."""
        key = (peer, header)
        if key in self._problems_seen or len(self._problems_seen) >= MAX_PROBLEMS_REMEMBERED:
            return False
        self._problems_seen.add(key)
        return True

    def _pick(self, chain: list[tuple[IPAddress, int]]) -> tuple[IPAddress, int]:
        for address, port in reversed(chain):
            if not _within(address, self.networks):
                return address, port
        return chain[0]  # every hop is a trusted proxy: the left-most is as far as anyone can tell

    def _ignored(self, peer: str, header: str, problem: str) -> Forwarded:
        self.malformed += 1
        return Forwarded(peer, 0, problem=problem, header=header)


def _within(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in networks)


def _address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def _node(text: str) -> tuple[IPAddress, int]:
    """One hop: ``1.2.3.4``, ``1.2.3.4:5``, ``::1``, ``[::1]`` or ``[::1]:5``."""
    host, port = text, ""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"not an address: {text[:60]!r}")
        port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    address = _address(host)
    if address is None or (port and not _PORT.fullmatch(port)) or (port and int(port) > 65535):
        raise ValueError(f"not an address: {text[:60]!r}")
    return address, int(port or 0)


def _parse_xff(value: str) -> list[tuple[IPAddress, int]]:
    items = [item.strip() for item in value.split(",")]
    if len(items) > MAX_HOPS:
        raise ValueError("too many hops")
    return [_node(item) for item in items]


_PAIR = re.compile(r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)=("(?:[^"\\]|\\.)*"|[^;,"\s]*)\s*')


def _parse_forwarded(value: str) -> list[tuple[IPAddress, int]]:
    """RFC 7239: elements separated by commas, pairs by semicolons; every element needs a ``for`` naming an
    address (``unknown`` and obfuscated identifiers cannot key a quota, so they make the header unusable)."""
    chain: list[tuple[IPAddress, int]] = []
    pos = 0
    while True:
        found: str | None = None
        while True:
            match = _PAIR.match(value, pos)
            if match is None:
                raise ValueError(f"malformed Forwarded element at {pos}")
            key, raw = match.group(1).lower(), match.group(2)
            text = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\") if raw.startswith('"') else raw
            if key == "for":
                if found is not None:
                    raise ValueError("two for= in one Forwarded element")
                found = text
            pos = match.end()
            if pos < len(value) and value[pos] == ";":
                pos += 1
                continue
            break
        if found is None:
            raise ValueError("a Forwarded element without for=")
        chain.append(_node(found))
        if len(chain) > MAX_HOPS:
            raise ValueError("too many hops")
        if pos >= len(value):
            return chain
        if value[pos] != ",":
            raise ValueError(f"malformed Forwarded header at {pos}")
        pos += 1
