"""Issue 12 rows 5, 8, 9, 15: password, token and lobby-password checks are throttled in flight and per address
(autojump clock; the slow hasher sleeps on Trio's clock so every interleaving is deterministic)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from voicebot.client import RemoteError
from voicebot.server import Server
from voicebot.testing import open_client, open_test_server, settings_for_tests

ADMIN = "hardening-admin-token"


class SlowHasher:
    """A fake hasher whose checks take ``seconds`` of Trio time; counts what actually ran."""

    def __init__(self, seconds: float = 1.0) -> None:
        self.seconds = seconds
        self.verifies = 0
        self.keys: list[str | None] = []

    async def hash(self, password: str, *, key: str | None = None) -> str:
        self.keys.append(key)
        await trio.sleep(self.seconds)
        return "fake$" + password[::-1]

    async def verify(self, digest: str, password: str, *, key: str | None = None) -> bool:
        self.verifies += 1
        self.keys.append(key)
        await trio.sleep(self.seconds)
        return digest == "fake$" + password[::-1]


@pytest.fixture
async def slow() -> AsyncIterator[tuple[Server, SlowHasher]]:
    hasher = SlowHasher()
    settings = settings_for_tests(admin_token=ADMIN, connection_burst_per_address=1000, max_connections_per_address=0)
    async with open_test_server(settings, passwords=hasher) as server:
        yield server, hasher


async def _register(server: Server, name: str, password: str) -> None:
    async with open_client(server, name, remote="10.9.9.9:1") as owner:
        await owner.request("name.register", password=password)


async def _hello(server: Server, remote: str, name: str, results: list[str], **fields: object) -> None:
    async with open_client(server, remote=remote) as client:
        try:
            await client.hello(name, **fields)
            results.append("ok")
        except RemoteError as exc:
            results.append(exc.code)


async def _call_hello(server: Server, remote: str, results: list[str]) -> None:
    await _hello(server, remote, "carol", results, password="guess")


@pytest.mark.parametrize("distinct_addresses", [False, True])
async def test_parallel_wrong_passwords_cost_at_most_the_limit(
    slow: tuple[Server, SlowHasher], distinct_addresses: bool, autojump_clock: object
) -> None:
    """Row 5: 120 concurrent wrong hellos for one registered name -> at most K real checks (5 from one address,
    10 = the per-name limit from 120 addresses); then the real user, from a clean address, still gets in."""
    server, hasher = slow
    await _register(server, "carol", "carol's secret")
    results: list[str] = []
    async with trio.open_nursery() as nursery:
        for i in range(120):
            remote = f"6.6.{i // 250}.{i % 250 + 1}:4000" if distinct_addresses else f"6.6.6.6:{4000 + i}"
            nursery.start_soon(_call_hello, server, remote, results)
    assert hasher.verifies == (10 if distinct_addresses else 5)
    assert results.count("auth_failed") == hasher.verifies
    assert set(results) == {"auth_failed", "login_throttled"}
    victim: list[str] = []
    await _hello(server, "7.7.7.7:1", "carol", victim, password="carol's secret")
    assert victim == ["ok"]


async def test_locked_address_cannot_retry_other_names_but_victim_is_never_locked(
    slow: tuple[Server, SlowHasher], autojump_clock: object
) -> None:
    """Row 15: five wrong passwords from anywhere never lock the real user out; the guesser's address is locked."""
    server, _ = slow
    await _register(server, "carol", "carol's secret")
    await _register(server, "dave", "dave's secret")
    out: list[str] = []
    for i in range(12):
        await _hello(server, "6.6.6.6:1", "carol", out, password=f"guess{i}")
    assert out[:5] == ["auth_failed"] * 5 and set(out[5:]) == {"login_throttled"}
    out.clear()
    await _hello(server, "6.6.6.6:1", "dave", out, password="dave's secret")  # the address, not just the name
    await _hello(server, "7.7.7.7:1", "carol", out, password="carol's secret")
    assert out == ["login_throttled", "ok"]


async def test_wrong_admin_tokens_lock_only_token_logins_of_that_address(
    slow: tuple[Server, SlowHasher], autojump_clock: object
) -> None:
    """Row 15: five wrong admin tokens lock the address out of *token* logins, not out of ordinary ones."""
    server, _ = slow
    await _register(server, "carol", "carol's secret")
    out: list[str] = []
    for i in range(7):
        await _hello(server, "6.6.6.6:1", f"x{i}", out, admin_token=f"wrong-{i}")
    assert out == ["auth_failed"] * 5 + ["login_throttled"] * 2
    out.clear()
    await _hello(server, "6.6.6.6:1", "carol", out, password="carol's secret")
    await _hello(server, "6.6.6.6:1", "plain", out)
    await _hello(server, "6.6.6.6:1", "boss", out, admin_token=ADMIN)  # locked even with the right token
    await _hello(server, "8.8.8.8:1", "boss", out, admin_token=ADMIN)
    assert out == ["ok", "ok", "login_throttled", "ok"]


async def test_lobby_passwords_are_throttled_per_address_and_lobby(
    slow: tuple[Server, SlowHasher], autojump_clock: object
) -> None:
    """Row 9: guesses from many connections of one address -> at most 5 checks; concurrent guesses count in flight;
    members and other addresses are unaffected."""
    server, hasher = slow
    async with open_client(server, "host", remote="10.1.1.1:1") as host:
        lobby = await host.create_lobby("vault", password="opensesame")
        before = hasher.verifies
        codes: list[str] = []

        async def guess(i: int) -> None:
            async with open_client(server, f"g{i}", remote=f"6.6.6.6:{i}") as g:
                for j in range(5):
                    try:
                        await g.join(lobby["id"], password=f"guess-{i}-{j}")
                        codes.append("ok")
                    except RemoteError as exc:
                        codes.append(exc.code)

        async with trio.open_nursery() as nursery:
            for i in range(6):
                nursery.start_soon(guess, i)
        assert hasher.verifies - before == 5
        assert codes.count("wrong_password") == 5 and codes.count("password_throttled") == 25
        async with open_client(server, "friend", remote="7.7.7.7:1") as friend:
            assert (await friend.join(lobby["id"], password="opensesame"))["lobby"]["id"] == lobby["id"]
        entries = (await _admin_audit(server))
        assert sum(1 for e in entries if e["event"] == "lobby_password_failed") == 5


async def _admin_audit(server: Server) -> list[dict[str, object]]:
    await trio.sleep(1)  # let the job queue write
    async with open_client(server, "auditor", remote="10.2.2.2:1", admin_token=ADMIN) as admin:
        reply = await admin.request("admin.audit", limit=500)
    entries: list[dict[str, object]] = reply["entries"]
    return entries


async def test_password_work_is_keyed_by_client_address(
    slow: tuple[Server, SlowHasher], autojump_clock: object
) -> None:
    """Row 8 wiring: every hash/verify the server asks for names the client's address (IPv6 by /64)."""
    server, hasher = slow
    async with open_client(server, "v6", remote="[2001:db8:1:2::5]:9") as c:
        await c.create_lobby("x", password="pw-pw-pw")
    await _register(server, "erin", "erin's secret")
    assert hasher.keys == ["2001:db8:1:2::/64", "10.9.9.9"]
