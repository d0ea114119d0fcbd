"""The HTTP surface over real TCP: every route, 404/405/HEAD/426/304/gzip, traversal, slow and oversized heads."""

from __future__ import annotations

import gzip
import json
import pathlib

import h11
import pytest
import trio

from voicebot import __version__
from voicebot.client import connect
from voicebot.http import web_root
from voicebot.server import _http

from .http_helpers import exchange, fetch, open_stream, tcp_server

pytestmark = pytest.mark.slow


async def test_index_and_static_files_with_types_etag_and_gzip() -> None:
    async with tcp_server() as server:
        page = await fetch(server.port, "GET", "/")
        assert page.status == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert page.body == (web_root() / "index.html").read_bytes()
        etag = page.headers["etag"]
        assert page.headers["cache-control"] == "no-cache"
        again = await fetch(server.port, "GET", "/", {"if-none-match": etag})
        assert again.status == 304 and again.body == b"" and again.headers["etag"] == etag
        assert (await fetch(server.port, "GET", "/", {"if-none-match": '"other", ' + etag})).status == 304
        assert (await fetch(server.port, "GET", "/", {"if-none-match": '"other"'})).status == 200
        same = await fetch(server.port, "GET", "/static/index.html")
        assert same.body == page.body and same.headers["etag"] == etag


async def test_gzip_only_when_accepted_and_worth_it(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = trio.Path(tmp_path)
    await (root / "index.html").write_text("<!doctype html><p>hi</p>")
    await (root / "app.js").write_text("console.log('voicebot');\n" * 200)
    await (root / "sub").mkdir()
    await (root / "sub" / "style.css").write_text("body { color: black; }\n" * 100)
    await (root / "noise.png").write_bytes(bytes(range(256)) * 8)
    monkeypatch.setattr(_http, "web_root", lambda: tmp_path)
    async with tcp_server() as server:
        port = server.port
        plain = await fetch(port, "GET", "/static/app.js")
        assert plain.status == 200 and plain.headers["content-type"] == "text/javascript; charset=utf-8"
        assert "content-encoding" not in plain.headers and plain.headers["vary"] == "Accept-Encoding"
        packed = await fetch(port, "GET", "/static/app.js", {"accept-encoding": "br, gzip"})
        assert packed.headers["content-encoding"] == "gzip"
        assert gzip.decompress(packed.body) == plain.body and len(packed.body) < len(plain.body) / 4
        assert packed.headers["etag"] != plain.headers["etag"]  # variants never share a validator
        assert (await fetch(port, "GET", "/static/app.js", {"accept-encoding": "gzip",
                                                              "if-none-match": packed.headers["etag"]})).status == 304
        refused = await fetch(port, "GET", "/static/app.js", {"accept-encoding": "gzip;q=0, identity"})
        assert "content-encoding" not in refused.headers
        css = await fetch(port, "GET", "/static/sub/style.css", {"accept-encoding": "gzip"})
        assert css.headers["content-type"] == "text/css; charset=utf-8" and css.headers["content-encoding"] == "gzip"
        png = await fetch(port, "GET", "/static/noise.png", {"accept-encoding": "gzip"})
        assert png.headers["content-type"] == "image/png" and "content-encoding" not in png.headers
        small = await fetch(port, "GET", "/", {"accept-encoding": "gzip"})
        assert small.body == b"<!doctype html><p>hi</p>" and "content-encoding" not in small.headers
        await (root / "app.js").write_text("changed\n")  # a new version of the file is served (new ETag)
        changed = await fetch(port, "GET", "/static/app.js", {"if-none-match": plain.headers["etag"]})
        assert changed.status == 200 and changed.body == b"changed\n"


@pytest.mark.parametrize("path", [
    "/static/../__init__.py", "/static/%2e%2e/__init__.py", "/static/%2E%2E%2F__init__.py", "/static/..%2f__init__.py",
    "/static/..\\__init__.py", "/static/%5c..%5c__init__.py", "/static//etc/passwd", "/static/%2fetc%2fpasswd",
    "/static/./index.html", "/static/.hidden", "/static/index.html%00.js", "/static/", "/static/%ff%fe",
    "/static/../../../../etc/passwd", "/static/sub/../../__init__.py",
])
async def test_no_path_traversal(path: str) -> None:
    async with tcp_server() as server:
        reply = await fetch(server.port, "GET", path)
        assert reply.status == 404, (path, reply)
        assert b"import" not in reply.body and b"root:" not in reply.body


async def test_symlink_out_of_the_root_is_refused(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "web"
    root.mkdir()
    (root / "index.html").write_text("x")
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    (root / "link.txt").symlink_to(secret)
    monkeypatch.setattr(_http, "web_root", lambda: root)
    async with tcp_server() as server:
        assert (await fetch(server.port, "GET", "/static/link.txt")).status == 404


async def test_health_readiness_and_errors() -> None:
    async with tcp_server() as server:
        port = server.port
        health = await fetch(port, "GET", "/healthz")
        assert health.status == 200 and json.loads(health.body) == {"status": "ok", "version": __version__}
        assert health.headers["content-type"] == "application/json"
        assert health.headers["date"].endswith(" GMT")
        missing = await fetch(port, "GET", "/nope")
        assert missing.status == 404
        wrong = await fetch(port, "POST", "/healthz")
        assert wrong.status == 405 and wrong.headers["allow"] == "GET, HEAD"
        assert (await fetch(port, "DELETE", "/static/index.html")).status == 405
        head = await fetch(port, "HEAD", "/")
        full = await fetch(port, "GET", "/")
        assert head.status == 200 and head.body == b""
        assert head.headers["content-length"] == full.headers["content-length"] == str(len(full.body))
        plain_ws = await fetch(port, "GET", "/ws")
        assert plain_ws.status == 426 and plain_ws.headers["upgrade"] == "websocket"
        assert plain_ws.body.count(b"\n") == 1 and b"WebSocket" in plain_ws.body
        assert (await fetch(port, "POST", "/ws")).status == 405


async def test_keep_alive_then_websocket_on_the_same_listener() -> None:
    async with tcp_server() as server:
        stream = await open_stream(server.port)
        conn = h11.Connection(h11.CLIENT)
        for path in ("/healthz", "/", "/nope", "/healthz"):
            reply = await exchange(stream, conn, "GET", path)
            assert reply.status in (200, 404)
            conn.start_next_cycle()
        await stream.aclose()
        async with connect(f"ws://127.0.0.1:{server.port}/ws") as client:
            welcome = await client.hello("alice")
            assert welcome["type"] == "welcome"
            assert (await client.request("ping"))["type"] == "pong"


async def test_websocket_upgrade_on_an_unknown_path_is_404() -> None:
    async with tcp_server() as server:
        reply = await fetch(server.port, "GET", "/other", {"connection": "Upgrade", "upgrade": "websocket",
                                                            "sec-websocket-version": "13",
                                                            "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ=="})
        assert reply.status == 404


async def test_slow_request_head_is_cut_at_the_deadline() -> None:
    async with tcp_server(hello_timeout=0.5) as server:
        stream = await open_stream(server.port)
        start = trio.current_time()
        with trio.fail_after(5):
            await stream.send_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
            for _ in range(8):  # a byte every 100 ms does not extend the deadline
                await trio.sleep(0.1)
                try:
                    await stream.send_all(b"X")
                except trio.BrokenResourceError:
                    break
            while await stream.receive_some(1024):
                pass
        assert trio.current_time() - start < 2.0
        await stream.aclose()
        assert (await fetch(server.port, "GET", "/healthz")).status == 200  # neighbours unaffected


async def test_oversized_and_malformed_heads() -> None:
    async with tcp_server(max_http_head=2048) as server:
        big = await fetch(server.port, "GET", "/healthz", {"x-pad": "a" * 4096})
        assert big.status == 431
        stream = await open_stream(server.port)
        await stream.send_all(b"NOT HTTP AT ALL\r\n\r\n")
        conn = h11.Connection(h11.CLIENT)
        conn.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
        data = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(4096):
                data += chunk
        assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        await stream.aclose()


async def test_a_failing_route_answers_500_with_a_correlation_id() -> None:
    async with tcp_server() as server:

        async def broken(request: object) -> object:
            raise RuntimeError("bug in a route")

        server.http.app.route("/boom", broken)  # type: ignore[arg-type]
        reply = await fetch(server.port, "GET", "/boom")
        body = json.loads(reply.body)
        assert reply.status == 500 and body["code"] == "internal_error" and body["correlation_id"]
        assert server.errors.count("internal_error") == 1
        assert (await fetch(server.port, "GET", "/healthz")).status == 200
