"""Keeps ``scripts/bench_speech.py`` from rotting: one sentence with espeak, transcribed by whisper."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_speech.py"


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_bench_speech_tiny_run() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--sentences", "1", "--voices", "espeak", "--json", "-"],
                          capture_output=True, text=True, timeout=170, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    (result,) = report["results"]
    assert result["voice"] == "espeak" and result["utterances"] == 1 and result["words"] == 5
    assert result["rows"][0]["transcript"]  # whisper heard something
    assert "WER" in proc.stderr  # the table went to stderr
