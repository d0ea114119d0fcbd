"""TLS on the one listener (trustme certificates): wss:// and https://, worker verification, wrong CA refused."""

from __future__ import annotations

import json
import pathlib
import ssl

import pytest
import trio
import trustme

from voicebot.bots import BotSession, BotSpec
from voicebot.client import connect
from voicebot.workers import BotHubSettings, Worker, WorkerConfig, install_bot_hub
from voicebot.workers._worker import url_connector

from .http_helpers import fetch, tcp_server

pytestmark = pytest.mark.slow


class _Idle:
    async def run(self, session: BotSession) -> None:
        await trio.sleep_forever()


IDLE = {"idle": BotSpec("idle", "does nothing", lambda _o: _Idle(), needs_media=False)}


@pytest.fixture
def tls_files(tmp_path: pathlib.Path) -> tuple[trustme.CA, str, str]:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return ca, str(cert_path), str(key_path)


def verify_failed(exc: BaseException | None) -> bool:
    """Whether ``exc`` (through groups, causes and contexts) comes from a failed certificate verification."""
    if exc is None:
        return False
    if isinstance(exc, ssl.SSLCertVerificationError):
        return True
    if isinstance(exc, BaseExceptionGroup) and any(verify_failed(e) for e in exc.exceptions):
        return True
    return verify_failed(exc.__cause__) or verify_failed(exc.__context__)


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_https_and_wss_on_the_same_port(tls_files: tuple[trustme.CA, str, str]) -> None:
    ca, cert, key = tls_files
    async with tcp_server(tls_cert=cert, tls_key=key) as server:
        context = client_context(ca)
        health = await fetch(server.port, "GET", "/healthz", ssl_context=context)
        assert health.status == 200 and json.loads(health.body)["status"] == "ok"
        assert (await fetch(server.port, "GET", "/", ssl_context=context)).status == 200
        async with connect(f"wss://localhost:{server.port}/ws", ssl_context=context) as client:
            assert (await client.hello("alice"))["type"] == "welcome"
            assert (await client.request("ping"))["type"] == "pong"
        # the page's own origin over https is allowed
        async with connect(f"wss://localhost:{server.port}/ws", ssl_context=context) as client:
            assert (await client.hello("bob"))["type"] == "welcome"


async def test_plain_http_and_wrong_ca_are_refused(tls_files: tuple[trustme.CA, str, str]) -> None:
    _, cert, key = tls_files
    async with tcp_server(tls_cert=cert, tls_key=key) as server:
        stranger = client_context(trustme.CA())
        with pytest.raises(trio.BrokenResourceError):
            await fetch(server.port, "GET", "/healthz", ssl_context=stranger)
        with pytest.raises(BaseException) as refused:  # noqa: PT011
            async with connect(f"wss://localhost:{server.port}/ws", ssl_context=stranger):
                pass
        assert verify_failed(refused.value)
        with trio.fail_after(5):  # a plain-text client gets nothing it can use, and the server lives on
            stream = await trio.open_tcp_stream("127.0.0.1", server.port)
            await stream.send_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            try:
                while chunk := await stream.receive_some(4096):
                    data += chunk
            except trio.BrokenResourceError:
                pass
            assert b"200" not in data
            await stream.aclose()
        assert (await fetch(server.port, "GET", "/healthz", ssl_context=client_context(tls_files[0]))).status == 200


async def test_worker_verifies_the_hub(tls_files: tuple[trustme.CA, str, str]) -> None:
    ca, cert, key = tls_files
    async with tcp_server(tls_cert=cert, tls_key=key) as server, trio.open_nursery() as nursery:
        bot_hub = install_bot_hub(server, BotHubSettings(worker_token="tok"))
        url = f"wss://localhost:{server.port}/ws"
        good = Worker(IDLE, WorkerConfig(token="tok", capacity=1, name="good"))
        with trio.fail_after(10):
            await nursery.start(lambda task_status: good.run(url_connector(url, client_context(ca)),
                                                              task_status=task_status))
        assert len(bot_hub.scheduler.workers) == 1
        bad = Worker(IDLE, WorkerConfig(token="tok", capacity=1, name="bad"))
        for context in (client_context(trustme.CA()), None):  # a wrong CA; the system store (does not know it)
            with pytest.raises(BaseException) as refused:  # noqa: PT011
                await bad.run(url_connector(url, context))
            assert verify_failed(refused.value)
        assert len(bot_hub.scheduler.workers) == 1
        nursery.cancel_scope.cancel()


def test_tls_settings_must_come_in_pairs() -> None:
    from voicebot.server import Settings  # noqa: PLC0415

    with pytest.raises(ValueError, match="together"):
        Settings(tls_cert="cert.pem")
