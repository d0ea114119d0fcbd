"""The persistence janitor: hourly removal of expired session rows and audit rows past the retention."""

from __future__ import annotations

import trio

from voicebot.testing import open_client, open_test_server, settings_for_tests

DAY = 86_400.0


async def test_janitor_prunes_old_audit_rows_and_expired_sessions(autojump_clock: object) -> None:
    async with open_test_server(settings_for_tests(audit_retention_days=30)) as server:
        wall = [1_000_000.0]
        server.persistence.wall_clock = lambda: wall[0]
        store = server.persistence.require()
        old = await store.append_audit("connect", name="old")
        async with open_client(server, "someone"):
            pass  # a session that disconnects: its row expires after the 30 s grace
        await trio.sleep(1)  # background audit/session writes
        assert len(await store.list_audit(100)) >= 2
        assert await store.list_sessions(now=wall[0])
        wall[0] += 31 * DAY
        recent = await store.append_audit("connect", name="recent")
        await trio.sleep(3600)  # one janitor pass
        ids = [e.id for e in await store.list_audit(100)]
        assert old not in ids and recent in ids
        assert await store.list_sessions(now=0.0) == []


async def test_janitor_keeps_a_long_connected_session_resumable(autojump_clock: object) -> None:
    """Sessions are saved at hello, join and leave, not per message: a call longer than the stored row's 24 h
    lifetime must still be in the store (refreshed by the janitor), or a restart would lose its resume."""
    async with open_test_server(settings_for_tests()) as server:
        wall = [1_000_000.0]
        server.persistence.wall_clock = lambda: wall[0]
        store = server.persistence.require()
        async with open_client(server, "ann", admin_token=server.admin_token) as ann:
            room = await ann.create_lobby("long call", persistent=True)
            await ann.join(room["id"])
            await trio.sleep(1)
            for _hour in range(30):  # 30 h of chatting: no hello, join or leave
                wall[0] += 3600
                await ann.chat("still here")
                await trio.sleep(3600)
            rows = await store.list_sessions(now=wall[0])
            assert [(r.peer_id, r.lobby_id) for r in rows] == [(ann.peer_id, room["id"])]
            assert rows[0].expires_at > wall[0] + 12 * 3600
