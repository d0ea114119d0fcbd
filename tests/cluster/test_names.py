"""Name registration across hubs (real hubs, one Redis, one PostgreSQL): two hubs racing to register one name →
exactly one wins and the other gets ``name_taken``; every hub protects the name at ``hello`` at once, without a
restart."""

from __future__ import annotations

import pytest
import trio

from voicebot.client import RemoteError, connect
from voicebot.testing import PostgresEngine, RedisEngine

from ._hubs import hubs

pytestmark = pytest.mark.slow


async def test_two_hubs_race_to_register_one_name(redis_server: RedisEngine, postgres_server: PostgresEngine) -> None:
    with hubs(redis_server, postgres_server, count=3) as (one, two, three):
        async with connect(one) as first, connect(two) as second:
            await first.hello("Zed")
            await second.hello("Zed")  # names in use are per hub: both may hold it until one registers it
            outcomes: dict[str, str] = {}

            async def register(client: object, label: str, password: str) -> None:
                try:
                    await client.request("name.register", password=password)  # type: ignore[attr-defined]
                    outcomes[label] = "registered"
                except RemoteError as exc:
                    outcomes[label] = exc.code

            async with trio.open_nursery() as nursery:
                nursery.start_soon(register, first, "one", "password-one")
                nursery.start_soon(register, second, "two", "password-two")
            assert sorted(outcomes.values()) == ["name_taken", "registered"], outcomes
            winner = "password-one" if outcomes["one"] == "registered" else "password-two"
            loser = "password-two" if winner == "password-one" else "password-one"

            await trio.sleep(0.5)  # the announcement reaches every hub
            for url in (one, two, three):  # every hub protects it now, the third one included
                async with connect(url) as someone:
                    with pytest.raises(RemoteError) as info:
                        await someone.hello("Zed")
                    assert info.value.code == "auth_failed"
                async with connect(url) as someone:
                    with pytest.raises(RemoteError) as info:
                        await someone.hello("zed", password=loser)
                    assert info.value.code == "auth_failed"
                async with connect(url) as owner:
                    assert (await owner.hello("Zed", password=winner))["name"] == "Zed"
