"""Issue 12 row 10: audit rows of security events are never dropped — under connection churn against a slow store
the producers wait for room (back-pressure) while routine rows may be dropped and counted."""

from __future__ import annotations

import pytest
import trio

from voicebot import faults
from voicebot.client import RemoteError
from voicebot.server import _persistence
from voicebot.testing import open_client, open_test_server, settings_for_tests

ADMIN = "audit-admin-token"


@pytest.mark.parametrize("churn", [200, 600])
async def test_security_rows_survive_connection_churn(monkeypatch: pytest.MonkeyPatch, churn: int,
                                                      autojump_clock: object) -> None:
    monkeypatch.setattr(_persistence, "JOB_QUEUE", 16)  # a small queue fills quickly: the churn case, scaled down
    settings = settings_for_tests(admin_token=ADMIN, max_connections_per_address=0, connection_rate_per_address=0,
                                  audit_wait=600.0)
    slow_disk = faults.Plan(rules=[faults.Rule(point="store.write", first=1, fault=faults.delay(0.05))])
    failed_codes: list[str] = []
    async with open_test_server(settings) as server:
        with faults.activate(slow_disk, seed=1, scope="global"):

            async def churner(i: int) -> None:
                async with open_client(server, f"c{i}", remote=f"10.0.{i // 250}.{i % 250}:1"):
                    pass

            async def attacker(i: int) -> None:
                await trio.sleep(i * 0.3)
                async with open_client(server, remote=f"6.6.6.{i}:1") as bad:
                    try:
                        await bad.hello("mallory", admin_token=f"wrong-{i}")
                    except RemoteError as exc:
                        failed_codes.append(exc.code)
                    try:
                        await bad.request("admin.stats")
                    except RemoteError as exc:
                        failed_codes.append(exc.code)

            async with trio.open_nursery() as nursery:
                for i in range(churn):
                    nursery.start_soon(churner, i)
                for i in range(5):
                    nursery.start_soon(attacker, i)
            stats = server.persistence.snapshot()
            assert stats["audit_waits"] > 0  # the queue was full while security rows were produced ...
            assert stats["dropped_jobs"] > 0  # ... (routine rows were dropped and counted) ...
            assert stats["audit_overflows"] == 0  # ... and no security row was lost
            await trio.sleep(120)  # drain
        async with open_client(server, "auditor", remote="7.7.7.7:1", admin_token=ADMIN) as admin:
            entries: list[dict[str, object]] = []
            while True:  # page through the whole log, newest first
                page = await admin.request("admin.audit", limit=1000,
                                           **({"before_id": entries[-1]["id"]} if entries else {}))
                if not page["entries"]:
                    break
                entries += page["entries"]
    assert sorted(failed_codes) == ["auth_failed"] * 5 + ["hello_required"] * 5
    failed = [e for e in entries if e["event"] == "auth_failed" and (e["detail"] or {}).get("field") == "admin_token"]
    assert sorted(e["remote"] for e in failed) == [f"6.6.6.{i}:1" for i in range(5)]
