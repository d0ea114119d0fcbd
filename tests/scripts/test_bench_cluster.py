"""Keeps ``scripts/bench_cluster.py`` from rotting: a tiny real run of every set-up (1 hub and 2 hubs over the
session's redis-server and PostgreSQL, same-hub and cross-hub pairs) with every message delivered."""

from __future__ import annotations

import pytest

from voicebot.testing import PostgresEngine, RedisEngine

from ._run import engines, run_report


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_bench_cluster_tiny_run(redis_server: RedisEngine, postgres_server: PostgresEngine) -> None:
    report = run_report("bench_cluster.py", "--clients", "8", "--lobbies", "2", "--duration", "1", "--warmup", "0.5",
                        "--drain", "1", "--rate", "10", "--json", "-", *engines(redis_server, postgres_server, "bench"))
    assert report["parameters"]["clients"] == 8
    results = {r["config"]["name"]: r for r in report["results"]}
    assert list(results) == ["1 hub, no cluster", "1 hub, cluster", "2 hubs, same-hub pairs",
                             "2 hubs, cross-hub pairs"]
    for result in results.values():
        assert result.get("failed") is None, result
        assert result["connected"] == 8
        assert result["errors"] == {} and result["misrouted"] == 0
        assert result["delivered_window"] > 0 and result["lost_window"] == 0
        assert all(result["latency_ms"][q] is not None for q in ("p50", "p95", "p99"))
        assert result["server_cpu_us_per_msg"] > 0
        assert len(result["server_rss_mb_per_process"]) == result["config"]["hubs"]
        assert all(rss > 0 for rss in result["server_rss_mb_per_process"])
        assert len(result["loadavg_before"]) == 3
    assert results["2 hubs, same-hub pairs"]["clients_per_hub"] == [4, 4]
    assert results["2 hubs, same-hub pairs"]["cross_hub_peer_share"] == 0
    assert results["2 hubs, cross-hub pairs"]["clients_per_hub"] == [4, 4]
    assert results["2 hubs, cross-hub pairs"]["cross_hub_peer_share"] == 1
    # a lobby of 4 split 2/2 over the hubs: every member hears of the later joiners, across hubs too
    assert results["2 hubs, cross-hub pairs"]["other_events"].get("peer.joined") == 2 * (3 + 2 + 1)
