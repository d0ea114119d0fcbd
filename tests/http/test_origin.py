"""Origin policy on /ws: allowed, denied (403 + audit row), null, missing; the policy's rules in isolation."""

from __future__ import annotations

import pytest
import trio
import trio_websocket

from voicebot.http import OriginPolicy

from .http_helpers import tcp_server

pytestmark = pytest.mark.slow


async def handshake(port: int, origin: str | None, host: str | None = None) -> int:
    """101 when the WebSocket opened, else the HTTP status the server refused it with."""
    headers = [(b"origin", origin.encode())] if origin is not None else []
    try:
        with trio.fail_after(5):
            async with trio_websocket.open_websocket(host or "127.0.0.1", port, "/ws", use_ssl=False,
                                                     extra_headers=headers) as ws:
                await ws.send_message('{"type":"ping","id":1}')
                return 101
    except trio_websocket.ConnectionRejected as exc:
        return exc.status_code


async def test_default_policy_own_origin_and_localhost() -> None:
    async with tcp_server() as server:
        port = server.port
        assert await handshake(port, None) == 101  # non-browser clients send no Origin
        assert await handshake(port, f"http://127.0.0.1:{port}") == 101  # the page this server served
        assert await handshake(port, "http://localhost:3000") == 101  # a local dev page
        assert await handshake(port, "http://[::1]:8080") == 101
        assert await handshake(port, "https://evil.example") == 403
        assert await handshake(port, "null") == 403
        assert await handshake(port, "http://127.0.0.1.evil.example") == 403
        assert await handshake(port, "file://") == 403
        assert await handshake(port, f"https://127.0.0.1:{port}") == 101  # localhost by default, any scheme
        await trio.sleep(0.2)  # audit rows are written by the persistence job queue
        rows = await server.persistence.require().list_audit(limit=50)
        denied = [r for r in rows if r.event == "origin_denied"]
        assert {r.detail["origin"] for r in denied if r.detail} == {"https://evil.example", "null",
                                                                   "http://127.0.0.1.evil.example", "file://"}
        assert all(r.remote and r.remote.startswith("127.0.0.1:") for r in denied)


async def test_explicit_list_and_star() -> None:
    async with tcp_server(allowed_origins="https://app.example.com, http://other.example:8080") as server:
        port = server.port
        assert await handshake(port, "https://app.example.com") == 101
        assert await handshake(port, "https://APP.example.com:443") == 101  # normalised
        assert await handshake(port, "http://other.example:8080") == 101
        assert await handshake(port, "http://other.example") == 403  # another port is another origin
        assert await handshake(port, "http://localhost:3000") == 403  # the list replaces the localhost default
        assert await handshake(port, f"http://127.0.0.1:{port}") == 101  # same origin is never cross-site
        assert await handshake(port, None) == 101
    async with tcp_server(allowed_origins="*") as server:
        assert await handshake(server.port, "https://evil.example") == 101
        assert await handshake(server.port, "null") == 101


def test_policy_rules() -> None:
    policy = OriginPolicy("")
    assert policy.allows(None, host="hub.example:8765", tls=False)
    assert policy.allows("http://hub.example:8765", host="hub.example:8765", tls=False)
    assert not policy.allows("https://hub.example:8765", host="hub.example:8765", tls=False)  # other scheme
    assert policy.allows("https://hub.example", host="hub.example", tls=True)
    assert policy.allows("https://hub.example:443", host="hub.example", tls=True)
    assert not policy.allows("http://hub.example.evil:8765", host="hub.example:8765", tls=False)
    assert not policy.allows("http://user@localhost", host="x", tls=False)
    assert not policy.allows("http://localhost/path", host="x", tls=False)
    assert not policy.allows("", host="x", tls=False)
    with pytest.raises(ValueError, match="not an origin"):
        OriginPolicy("app.example.com")
