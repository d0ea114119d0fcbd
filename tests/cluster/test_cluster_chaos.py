"""The multi-hub chaos workload with the real engines: 2–3 in-process hubs in cluster mode over one
``redis-server`` and one PostgreSQL database, one hub lost mid-run and a Redis outage window, every invariant
checked; and a planted cross-hub bug that the invariants find."""

from __future__ import annotations

import time
from typing import Any

import pytest

from voicebot.chaos import ClusterChaosConfig, ClusterChaosServer, run_cluster_seed
from voicebot.testing import PostgresEngine, RedisEngine

# The hubs log every handled error (Redis down, refused joins); the run counts them instead.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("quiet_voicebot_logs")]


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("hubs", "seed"), [(3, 1), (2, 4)])
def test_multi_hub_chaos_seed_keeps_every_invariant(hubs: int, seed: int, redis_server: RedisEngine,
                                                    postgres_server: PostgresEngine) -> None:
    started = time.monotonic()
    result = run_cluster_seed(seed, redis=redis_server, db_url=postgres_server.new_database("chaos"),
                              config=ClusterChaosConfig(hubs=hubs))
    assert result.ok, "\n".join(result.violations[:10])
    faults_seen = [line.split("\t")[2] for line in result.journal.splitlines() if line.split("\t")[1] == "fault"]
    assert faults_seen == [f'{{"hub":{int(result.schedule.split()[4])},"kind":"hub_lost"}}',
                           '{"kind":"redis_down"}', '{"kind":"redis_up"}']
    assert sum(result.actions.values()) == 60
    assert result.checks["membership checkpoints"] >= 8
    assert result.checks["messages from other hubs"] > 0  # the workload does cross hubs
    assert result.checks["chats sent in a lobby"] > 0
    assert time.monotonic() - started < 60


class LeakyRemoteServer(ClusterChaosServer):
    """Test-only planted bug: a lobby message arriving from another hub also reaches a member of another lobby
    on this hub (a routing bug only the cluster path has)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        hub = self.hub
        original = hub.deliver

        def leaky(peer_ids: Any, message: dict[str, Any], now: float) -> Any:
            peer_ids = list(peer_ids)
            sender = hub.sessions.get(str(message.get("from") or message.get("peer", {}).get("peer_id")))
            if message.get("type") in ("chat", "signal", "peer.joined") and sender is not None and sender.home:
                for lobby in hub.lobbies.values():
                    local = [p for p in lobby.members if (s := hub.sessions.get(p)) is not None and s.home is None]
                    if lobby.id != message.get("lobby_id") and local:
                        peer_ids.append(local[0])
                        break
            return original(peer_ids, message, now)

        hub.deliver = leaky  # type: ignore[method-assign]


@pytest.mark.timeout(90)
def test_planted_cross_hub_leak_is_found(redis_server: RedisEngine, postgres_server: PostgresEngine) -> None:
    config = ClusterChaosConfig(hubs=2, clients=6, steps=40, kill_hub=False, redis_outage=False, converge_timeout=2.0)
    found = None
    for seed in range(4):
        result = run_cluster_seed(seed, redis=redis_server, db_url=postgres_server.new_database("leak"),
                                  config=config, server_factory=LeakyRemoteServer)
        if not result.ok:
            found = result
            break
    assert found is not None
    assert {v.split(":")[0] for v in found.violations} & {"delivery_within_lobby", "client_lobby_scoped"}
