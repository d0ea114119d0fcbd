"""Keeps ``scripts/bench_footprint.py`` from rotting: a tiny real run (idle serve, 20 idle connections, 1 s)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_footprint.py"


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_bench_footprint_tiny_run() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--skip", "worker", "--connections", "20", "--window", "1",
         "--settle", "0.2", "--heartbeat-interval", "0.5"],
        capture_output=True, text=True, timeout=80, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert 10.0 < report["idle_rss_mib"] < 500.0
    assert "worker_rss_mib" not in report
    held = report["connections"]
    assert held["connections"] == 20 and held["failures"] == 0
    assert held["loaded_rss_kib"] > 0 and held["heartbeat_cpu_pct"] >= 0.0


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_bench_footprint_counts_the_worker_process() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--skip", "idle,connections", "--settle", "0.2"],
        capture_output=True, text=True, timeout=110, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert 10.0 < report["worker_child_rss_mib"] < 500.0  # the default: the local worker in a child process
    assert report["worker_total_rss_mib"] == report["worker_rss_mib"] + report["worker_child_rss_mib"]
