"""The pytest plugin: fixtures work, and a failing test reports its seed and replay commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import trio
import trio.testing

from voicebot import faults
from voicebot.server import Server
from voicebot.testing import open_client
from voicebot.testing.pytest_plugin import DEFAULT_SEED, FaultActivator

FAILING_TEST = '''
from voicebot import faults
from voicebot.testing import open_client

async def test_fails(voicebot_server, fault_plan, autojump_clock):
    plan = faults.Plan(rules=[faults.Rule(point="ws.recv", at=2, fault=faults.drop())])
    with fault_plan(plan) as run:
        async with open_client(voicebot_server, "a") as c:
            await c.request("ping", timeout=1.0)  # dropped: TooSlowError
'''


def test_seed_fixture_default(voicebot_seed: int) -> None:
    assert voicebot_seed == DEFAULT_SEED


async def test_server_fixture_is_deterministic(
    voicebot_server: Server, fault_plan: FaultActivator, autojump_clock: trio.testing.MockClock
) -> None:
    with fault_plan() as run:  # an empty plan: journal only
        async with open_client(voicebot_server, "alice") as c:
            lobby = await c.create_lobby("room")
            await c.join(lobby["id"])
            await c.chat("hi")
            chat = await c.next_event("chat")
    assert chat["ts"] == 1_700_000_000_000 + int(trio.current_time() * 1000)
    assert c.resume_token is not None and c.resume_token.startswith("t")
    events = [fields["event"] for _, kind, fields in run.journal.entries() if kind == "session"]
    assert events[:3] == ["session.started", "lobby.created", "lobby.joined"]
    assert run.seed == DEFAULT_SEED and faults.current_run() is None


def test_failure_report_names_seed_and_replay(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["voicebot.testing.pytest_plugin"]\n', encoding="utf-8")
    (tmp_path / "pytest.ini").write_text("[pytest]\ntrio_mode = true\n", encoding="utf-8")
    (tmp_path / "test_planted.py").write_text(FAILING_TEST, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--voicebot-seed", "42", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "voicebot replay" in proc.stdout
    assert "seed: 42" in proc.stdout
    assert "rerun: pytest test_planted.py::test_fails --voicebot-seed 42" in proc.stdout
    assert "replay: voicebot chaos --seed 42" in proc.stdout
