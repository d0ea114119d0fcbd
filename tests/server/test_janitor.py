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
