"""Keeps ``scripts/bench_relay.py`` from rotting: a tiny real run (4 clients, 1 s) against hub and echo."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_relay.py"


@pytest.mark.slow
@pytest.mark.timeout(30)
def test_bench_relay_tiny_run() -> None:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--clients", "4", "--lobbies", "2", "--duration", "1", "--warmup", "0.5",
         "--drain", "1", "--rate", "10", "--json", "-"],
        capture_output=True, text=True, timeout=25, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert time.monotonic() - started < 20
    assert report["parameters"]["clients"] == 4
    assert {r["target"] for r in report["results"]} == {"hub", "echo"}
    for result in report["results"]:
        assert result.get("failed") is None, result
        assert result["connected"] == 4
        assert result["errors"] == {}
        assert result["misrouted"] == 0
        assert result["lost_window"] == 0
        assert result["delivered_window"] > 0
        assert result["latency_ms"]["p50"] is not None
        assert result["server_cpu_pct"] >= 0
    hub = next(r for r in report["results"] if r["target"] == "hub")
    assert hub["other_events"].get("peer.joined") == 2  # one per lobby of two: the first member sees the second
