"""``--trusted-proxies``: behind a trusted reverse proxy the client is the right-most untrusted address of
``X-Forwarded-For`` / ``Forwarded``, for quotas, throttles, audit and logs; headers from anyone else are never read;
headers that cannot be used are ignored (the proxy's address is used) and audited once."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
import trio_websocket

from voicebot.server import Server
from voicebot.server._proxies import ProxyPolicy
from voicebot.testing import open_test_server, settings_for_tests

PROXY = "10.0.0.1"


def _client(policy: ProxyPolicy, **headers: str) -> tuple[str, int, str | None]:
    forwarded = policy.client(PROXY, {k.replace("_", "-"): v for k, v in headers.items()})
    return forwarded.host, forwarded.port, forwarded.problem


def test_right_most_untrusted_hop_is_the_client() -> None:
    policy = ProxyPolicy("10.0.0.0/8, 192.168.1.0/24")
    assert policy.trusts("10.0.0.1") and policy.trusts("::ffff:10.0.0.1") and not policy.trusts("6.6.6.6")
    assert _client(policy, x_forwarded_for="6.6.6.6")[:2] == ("6.6.6.6", 0)
    # whatever the client wrote left of the hop our proxies saw is ignored
    assert _client(policy, x_forwarded_for="1.1.1.1, 2.2.2.2, 6.6.6.6, 192.168.1.7")[0] == "6.6.6.6"
    assert _client(policy, x_forwarded_for="10.9.9.9, 6.6.6.6")[0] == "6.6.6.6"  # a spoofed "trusted" hop too
    assert _client(policy, x_forwarded_for="10.0.0.5, 192.168.1.2")[0] == "10.0.0.5"  # all trusted: left-most
    assert _client(policy, x_forwarded_for="6.6.6.6:4711")[:2] == ("6.6.6.6", 4711)
    assert _client(policy, x_forwarded_for="::ffff:6.6.6.6")[0] == "6.6.6.6"
    assert _client(policy)[:2] == (PROXY, 0)  # no header: the proxy itself


def test_forwarded_header_and_ipv6() -> None:
    policy = ProxyPolicy("10.0.0.0/8,fd00::/8")
    assert _client(policy, forwarded='for=192.0.2.60;proto=http;by=203.0.113.43, for="10.0.0.7"')[0] == "192.0.2.60"
    assert _client(policy, forwarded='For="[2001:db8:cafe::17]:4711"') == ("2001:db8:cafe::17", 4711, None)
    assert _client(policy, forwarded='for=1.2.3.4, for="[2001:db8::9]", for="[fd00::2]"')[0] == "2001:db8::9"
    assert _client(policy, x_forwarded_for="2001:db8::1, fd00::2, [fd00::3]")[0] == "2001:db8::1"
    # both headers naming the same client are fine
    assert _client(policy, x_forwarded_for="6.6.6.6", forwarded="for=6.6.6.6")[0] == "6.6.6.6"


@pytest.mark.parametrize("headers", [
    {"x_forwarded_for": "not-an-address"},
    {"x_forwarded_for": "1.2.3.4,,5.6.7.8"},
    {"x_forwarded_for": ""},
    {"x_forwarded_for": "1.2.3.4:99999"},
    {"x_forwarded_for": "[2001:db8::1"},
    {"x_forwarded_for": ", ".join(["1.2.3.4"] * 65)},
    {"forwarded": "for=unknown"},
    {"forwarded": "for=_hidden"},
    {"forwarded": "proto=https"},
    {"forwarded": 'for="[2001:db8::1"'},
    {"forwarded": "for=1.2.3.4;for=5.6.7.8"},
    {"forwarded": "for=1.2.3.4 junk"},
    {"forwarded": "for=1.2.3.4,"},
    {"x_forwarded_for": "6.6.6.6", "forwarded": "for=7.7.7.7"},  # disagreeing: one may be the client's
])
def test_unusable_headers_are_ignored(headers: dict[str, str]) -> None:
    policy = ProxyPolicy("10.0.0.0/8")
    host, port, problem = _client(policy, **headers)
    assert (host, port) == (PROXY, 0) and problem
    assert policy.malformed == 1


def test_settings_refuse_a_bad_network() -> None:
    with pytest.raises(ValueError, match="trusted_proxies"):
        settings_for_tests(trusted_proxies="10.0.0.0/8, nonsense")
    assert not ProxyPolicy("").trusts("10.0.0.1")


@asynccontextmanager
async def _connect(server: Server, peer: str, *headers: tuple[str, str]) -> AsyncIterator[
        trio_websocket.WebSocketConnection]:
    """A WebSocket from TCP peer ``peer`` (in memory) sending ``headers`` with its upgrade request."""
    client_end, server_end = trio.testing.memory_stream_pair()
    server.connect_stream(server_end, f"{peer}:5000")
    async with trio.open_nursery() as nursery:
        ws = await trio_websocket.wrap_client_stream(
            nursery, client_end, "localhost", "/ws",  # type: ignore[arg-type]
            extra_headers=[(k.encode(), v.encode()) for k, v in headers])
        yield ws
        await ws.aclose()
        nursery.cancel_scope.cancel()


async def _hello(ws: trio_websocket.WebSocketConnection, name: str, **fields: object) -> dict[str, object]:
    await ws.send_message(json.dumps({"type": "hello", "name": name, **fields}))
    while True:
        message: dict[str, object] = json.loads(await ws.get_message())
        if message["type"] in ("welcome", "error"):
            return message


async def _refused(server: Server, peer: str, *headers: tuple[str, str]) -> bool:
    refused = False
    try:
        async with _connect(server, peer, *headers) as ws:
            await _hello(ws, "probe")
    except* trio_websocket.ConnectionRejected:
        refused = True
    return refused


async def test_quotas_and_audit_follow_the_forwarded_client(autojump_clock: trio.testing.MockClock) -> None:
    settings = settings_for_tests(trusted_proxies="10.0.0.0/8", max_connections_per_address=2,
                                  connection_rate_per_address=0, admin_token="the-admin-token")
    xff = ("X-Forwarded-For", "1.1.1.1, 6.6.6.6")
    async with open_test_server(settings) as server:
        async with _connect(server, PROXY, xff) as one, _connect(server, "10.0.0.2", xff) as two, \
                _connect(server, PROXY, ("X-Forwarded-For", "7.7.7.7")) as other, \
                _connect(server, "8.8.8.8", ("X-Forwarded-For", "9.9.9.9")) as spoofer:
            for i, ws in enumerate((one, two, other, spoofer)):
                assert (await _hello(ws, f"user{i}"))["type"] == "welcome"
            # per client, not per proxy; an untrusted peer's header is never read
            assert server.quotas.connections == {"6.6.6.6": 2, "7.7.7.7": 1, "8.8.8.8": 1}
            assert await _refused(server, PROXY, xff)
            assert not await _refused(server, PROXY, ("X-Forwarded-For", "5.5.5.5"))
            # throttles and audit rows name the client
            async with _connect(server, PROXY, ("X-Forwarded-For", "7.7.7.7")) as guesser:
                reply = await _hello(guesser, "x", admin_token="wrong")
                assert reply["type"] == "error" and reply["code"] == "auth_failed"
            # unusable headers: the proxy's address, audited once per proxy and header, counted always
            for _ in range(2):
                async with _connect(server, PROXY, ("X-Forwarded-For", "garbage")) as bad:
                    assert (await _hello(bad, "bad"))["type"] == "welcome"
                    assert server.quotas.connections[PROXY] == 1
        await trio.sleep(1)
        rows = await server.persistence.require().list_audit(limit=100)
        failed = [r for r in rows if r.event == "auth_failed"]
        assert [r.remote for r in failed] == ["7.7.7.7:0"]
        refused = [r for r in rows if r.event == "connection_refused"]
        assert [r.remote for r in refused] == ["6.6.6.6:0"]
        ignored = [r for r in rows if r.event == "forwarded_ignored"]
        assert len(ignored) == 1 and ignored[0].remote == f"{PROXY}:5000"
        assert ignored[0].detail is not None and ignored[0].detail["value"] == "garbage"
        assert server.statistics()["quotas"]["forwarded_ignored"] == 2
    assert server.quotas.connections == {}
