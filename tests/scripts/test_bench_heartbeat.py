"""Keeps ``scripts/bench_heartbeat.py`` from rotting, and holds what it measures: with many sessions and lobbies a
hub's heartbeat is still one Redis round trip (the per-session work runs inside the ``tick`` script), and so is
the sweep of a lost hub's lobbies, bounded per heartbeat."""

from __future__ import annotations

import pytest

from voicebot.testing import PostgresEngine, RedisEngine

from ._run import engines, run_report


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_bench_heartbeat_tiny_run(redis_server: RedisEngine, postgres_server: PostgresEngine) -> None:
    report = run_report("bench_heartbeat.py", "--sessions", "40", "--per-lobby", "4", "--seconds", "4",
                        *engines(redis_server, postgres_server, "beat"))
    assert report["sessions"] == 40 and report["lobbies"] == 10
    assert report["heartbeats"] >= 2
    calls = report["hub_calls"]
    assert list(calls) == ["tick"], calls  # nothing per session or per lobby
    assert abs(calls["tick"] - report["heartbeats"]) <= 1  # one may be under way when the window opens or closes
    per_beat = report["redis_commands_per_heartbeat"]
    assert per_beat["evalsha"] == 1.0 and per_beat["hexists"] >= 40  # the per-session checks ran inside it
    assert per_beat.get("exists", 0) <= 2  # a member's hub is looked up once per call, not per member


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_bench_heartbeat_sweeps_a_lost_hubs_lobbies(redis_server: RedisEngine,
                                                   postgres_server: PostgresEngine) -> None:
    report = run_report("bench_heartbeat.py", "--sessions", "0", "--lost-lobbies", "250", "--seconds", "4.5",
                        *engines(redis_server, postgres_server, "sweep"))
    assert report["lost_lobbies_left"] == 0  # 100 a heartbeat: gone after three
    assert list(report["hub_calls"]) == ["tick"]
    per_beat = report["redis_commands_per_heartbeat"]
    assert per_beat["evalsha"] == 1.0
