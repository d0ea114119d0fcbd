"""``voicebot worker --server wss://… --ca-file … --metrics-port 0`` as a real process: it verifies the hub,
registers, and serves its own /metrics, /healthz and /readyz."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest
import trio
import trustme
from prometheus_client.parser import text_string_to_metric_families

from voicebot.workers import BotHubSettings, install_bot_hub

from .http_helpers import fetch, tcp_server

pytestmark = pytest.mark.slow


async def test_worker_process_over_wss_serves_its_metrics(tmp_path: pathlib.Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    async with tcp_server(tls_cert=str(tmp_path / "cert.pem"), tls_key=str(tmp_path / "key.pem")) as server, \
            trio.open_nursery() as nursery:
        bot_hub = install_bot_hub(server, BotHubSettings(worker_token="tok-9"))
        url = f"wss://localhost:{server.port}/ws"
        env = {**os.environ, "VOICEBOT_WORKER_TOKEN": "tok-9"}

        async def worker_process(task_status: trio.TaskStatus[trio.Process] = trio.TASK_STATUS_IGNORED) -> None:
            await trio.run_process(
                [sys.executable, "-m", "voicebot.cli", "worker", "--server", url, "--ca-file", str(tmp_path / "ca.pem"),
                 "--metrics-port", "0", "--capacity", "1", "--log-level", "warning"],
                env=env, check=False, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, task_status=task_status)

        proc: trio.Process = await nursery.start(worker_process)
        assert proc.stdout is not None
        with trio.fail_after(30):
            line = b""
            while b"\n" not in line:
                line += await proc.stdout.receive_some(1024)
            match = re.search(rb"http://[\d.]+:(\d+)/metrics", line)
            assert match, line
            port = int(match.group(1))
            while not bot_hub.scheduler.workers:  # noqa: ASYNC110 -- the hub has no "registered" event
                await trio.sleep(0.05)
            ready = await fetch(port, "GET", "/readyz")
            while ready.status != 200:  # the worker learns it is registered a moment after the hub does
                await trio.sleep(0.05)
                ready = await fetch(port, "GET", "/readyz")
        assert json.loads((await fetch(port, "GET", "/healthz")).body)["status"] == "ok"
        page = await fetch(port, "GET", "/metrics")
        names = {f.name for f in text_string_to_metric_families(page.body.decode())}
        assert {"voicebot_turn_latency_seconds", "voicebot_provider_requests"} <= names
        assert (await fetch(port, "GET", "/")).status == 404
        proc.terminate()
        nursery.cancel_scope.cancel()
