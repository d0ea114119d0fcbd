"""Races between hubs that the multi-hub chaos workload found, replayed deterministically on one in-process hub
in cluster mode (the message from the other hub is handed to the cluster layer as its subscription would)."""

from __future__ import annotations

import pytest
import trio

from voicebot.testing import PostgresEngine, RedisEngine, open_client, open_test_server, settings_for_tests

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("move", ["switch", "leave"])
async def test_message_in_flight_does_not_follow_a_member_out_of_its_lobby(
        move: str, redis_server: RedisEngine, postgres_server: PostgresEngine) -> None:
    settings = settings_for_tests(cluster=redis_server.url, db=postgres_server.new_database("race"))
    async with open_test_server(settings) as server:
        cluster = server.cluster
        assert cluster is not None
        async with open_client(server, "Ada") as ada:
            first = await ada.create_lobby("first")
            second = await ada.create_lobby("second")
            await ada.join(first["id"])
            # another hub published these for Ada while she was in the first lobby; they arrive after she moved
            late = [{"type": "chat", "lobby_id": first["id"], "from": "p_remote", "name": "Bob", "text": "late"},
                    {"type": "signal", "lobby_id": first["id"], "from": "p_remote", "kind": "offer", "sdp": "v=0"}]
            if move == "switch":
                await ada.join(second["id"])
            else:
                await ada.leave()
            for message in late:
                cluster._receive({"from": "otherhub", "to": [ada.peer_id], "msg": message})
            on_time = {"type": "chat", "lobby_id": first["id"] if move == "leave" else second["id"],
                       "from": "p_remote", "name": "Bob", "text": "on time"}
            if move == "switch":  # a message of the lobby she is in now still reaches her
                cluster._receive({"from": "otherhub", "to": [ada.peer_id], "msg": on_time})
                event = await ada.next_event("chat")
                assert event["text"] == "on time"
            with pytest.raises(trio.TooSlowError):
                await ada.next_event("chat", timeout=0.3)
            with pytest.raises(trio.TooSlowError):
                await ada.next_event("signal", timeout=0.3)
