"""Keeps ``scripts/bench_heartbeat.py`` from rotting, and holds what it measures: with many sessions and lobbies a
hub's heartbeat is still one Redis round trip (the per-session work runs inside the ``tick`` script), and so is
the sweep of a lost hub's lobbies, bounded per heartbeat."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from voicebot.testing import PostgresEngine, RedisEngine

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_heartbeat.py"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_bench_heartbeat_tiny_run(redis_server: RedisEngine, postgres_server: PostgresEngine) -> None:
    redis_server.command("FLUSHALL")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--sessions", "40", "--per-lobby", "4", "--seconds", "4",
         "--redis-url", redis_server.url, "--db-url", postgres_server.new_database("beat")],
        capture_output=True, text=True, timeout=110, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout[proc.stdout.index("{"):])
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
    redis_server.command("FLUSHALL")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--sessions", "0", "--lost-lobbies", "250", "--seconds", "4.5",
         "--redis-url", redis_server.url, "--db-url", postgres_server.new_database("sweep")],
        capture_output=True, text=True, timeout=110, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert report["lost_lobbies_left"] == 0  # 100 a heartbeat: gone after three
    assert list(report["hub_calls"]) == ["tick"]
    per_beat = report["redis_commands_per_heartbeat"]
    assert per_beat["evalsha"] == 1.0
