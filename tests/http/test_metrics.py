"""/metrics over real TCP: parses with prometheus_client's parser and moves when traffic flows."""

from __future__ import annotations

import json

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from voicebot.bots import BotSession, BotSpec
from voicebot.client import connect
from voicebot.http import Request
from voicebot.metrics import HubCounters, observe_turn_stage
from voicebot.resilience import CircuitState
from voicebot.workers import BotHubSettings, Worker, WorkerConfig, install_bot_hub, memory_connector

from .http_helpers import fetch, tcp_server

pytestmark = pytest.mark.slow

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class _Idle:
    async def run(self, session: BotSession) -> None:
        await trio.sleep_forever()


IDLE = {"idle": BotSpec("idle", "does nothing", lambda _o: _Idle(), needs_media=False)}


async def scrape(port: int) -> Samples:
    reply = await fetch(port, "GET", "/metrics")
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/plain; version=")
    out: Samples = {}
    for family in text_string_to_metric_families(reply.body.decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_move_with_traffic() -> None:
    async with tcp_server() as server, trio.open_nursery() as nursery:
        bot_hub = install_bot_hub(server, BotHubSettings())
        before = await scrape(server.port)
        assert value(before, "voicebot_connections") == 0
        assert value(before, "voicebot_bot_workers") == 0
        assert value(before, "voicebot_circuit_breaker_state", breaker="persistence", state="closed") == 1
        assert value(before, "voicebot_circuit_breaker_state", breaker="persistence", state="open") == 0
        worker = Worker(IDLE, WorkerConfig(token=bot_hub.local_token, capacity=2, name="w"))
        await nursery.start(lambda task_status: worker.run(memory_connector(server), task_status=task_status))
        url = f"ws://127.0.0.1:{server.port}/ws"
        async with connect(url) as alice, connect(url) as bob:
            await alice.hello("alice")
            await bob.hello("bob")
            lobby = await alice.create_lobby("room")
            await alice.join(lobby["id"])
            await bob.join(lobby["id"])
            await alice.chat("hi")
            await bob.next_event("chat")
            await alice.request("ping")
            await alice.send_raw("{not json")
            await alice.next_event("error")
            await alice.send({"type": "no.such.type", "id": 1})
            await alice.next_event("error")
            added = await alice.request("bot.add", bot="idle")
            assert added["type"] == "bot.added"
            observe_turn_stage("stt", 0.2)
            during = await scrape(server.port)
            assert value(during, "voicebot_connections") == 4  # alice, bob, the worker's control link, the bot
            assert value(during, "voicebot_sessions") >= 3
            assert value(during, "voicebot_lobbies") == 1
            assert value(during, "voicebot_bot_workers") == 1
            assert value(during, "voicebot_bots", bot="idle") == 1
            assert value(during, "voicebot_messages_received_total", type="hello") >= 2
            assert value(during, "voicebot_messages_received_total", type="chat") == 1
            assert value(during, "voicebot_messages_received_total", type="ping") == 1
            assert value(during, "voicebot_messages_received_total", type="other") == 2  # bad JSON, unknown type
            assert not any(k[0] == "voicebot_messages_received_total" and ("type", "no.such.type") in k[1]
                           for k in during)
            assert value(during, "voicebot_messages_sent_total", type="welcome") >= 2
            assert value(during, "voicebot_messages_sent_total", type="chat") == 2  # both members get it
            assert value(during, "voicebot_messages_sent_total", type="pong") == 1
            assert value(during, "voicebot_messages_sent_total", type="error") == 2
            assert value(during, "voicebot_errors_total", category="validation", severity="low",
                         code="unknown_type") == 1
            assert sum(v for k, v in during.items() if k[0] == "voicebot_errors_total") >= 2
            assert value(during, "voicebot_request_duration_seconds_count", type="chat") == 1
            assert value(during, "voicebot_request_duration_seconds_bucket", type="ping", le="+Inf") == 1
            assert value(during, "voicebot_request_duration_seconds_sum", type="ping") > 0
            assert any(k[0] == "voicebot_circuit_breaker_state" and ("state", "closed") in k[1]
                       and dict(k[1])["breaker"] != "persistence" for k in during)  # the worker's breaker
            assert value(during, "voicebot_turn_latency_seconds_count", stage="stt") >= 1  # bot-side registry
            assert value(during, "voicebot_http_requests_total", route="/ws", code="101") == 4  # as connections
            assert value(during, "voicebot_http_requests_total", route="/metrics", code="200") == 1
        await trio.sleep(0.2)
        after = await scrape(server.port)
        assert value(after, "voicebot_connections") == 2  # the worker and its bot
        assert value(after, "voicebot_connections_closed_total", code="1000") == 2
        assert value(after, "voicebot_sessions") >= 2  # alice and bob in their resume grace
        nursery.cancel_scope.cancel()


async def test_servers_in_one_process_do_not_share_counters() -> None:
    async with tcp_server() as one, tcp_server() as two:
        async with connect(f"ws://127.0.0.1:{one.port}/ws") as c:
            await c.hello("x")
        assert value(await scrape(one.port), "voicebot_messages_received_total", type="hello") == 1
        assert value(await scrape(two.port), "voicebot_messages_received_total", type="hello") == 0


async def test_readyz_reasons() -> None:
    async with tcp_server() as server, trio.open_nursery() as nursery:
        reply = await fetch(server.port, "GET", "/readyz")
        assert reply.status == 503 and json.loads(reply.body) == {"status": "not_ready", "reasons": ["no_bot_worker"]}
        bot_hub = install_bot_hub(server, BotHubSettings())
        worker = Worker(IDLE, WorkerConfig(token=bot_hub.local_token, capacity=1, name="w"))
        scope = trio.CancelScope()

        async def run(task_status: trio.TaskStatus[Worker] = trio.TASK_STATUS_IGNORED) -> None:
            with scope:
                await worker.run(memory_connector(server), task_status=task_status)

        await nursery.start(run)
        ready = await fetch(server.port, "GET", "/readyz")
        assert ready.status == 200 and json.loads(ready.body)["status"] == "ready"
        server.persistence.breaker.transition_to_open()
        broken = await fetch(server.port, "GET", "/readyz")
        assert broken.status == 503 and json.loads(broken.body)["reasons"] == ["persistence_breaker_open"]
        assert value(await scrape(server.port), "voicebot_circuit_breaker_state", breaker="persistence",
                     state="open") == 1
        server.persistence.breaker.transition_to_closed()
        assert server.persistence.breaker.state is CircuitState.CLOSED
        scope.cancel()
        await trio.sleep(0.2)
        gone = await fetch(server.port, "GET", "/readyz")
        assert json.loads(gone.body)["reasons"] == ["no_bot_worker"]
        server.shutdown()
        # the listener closes at once; a request on a connection accepted just before still gets the truth
        stopping = await server.http.app.respond(Request("GET", "/readyz", {}))
        assert stopping.status == 503 and json.loads(stopping.body)["reasons"] == ["stopping", "no_bot_worker"]
        nursery.cancel_scope.cancel()


def test_counting_a_frame_is_cheap_and_bounded() -> None:
    counters = HubCounters()
    for i in range(1000):
        counters.frame(f"attacker-{i}", 0.001)
        counters.count_sent(f"made-up-{i}")
        counters.count_http(f"/probe-{i}", 404)
    assert set(counters.received) == {"other"} and set(counters.sent) == {"other"}
    assert set(counters.http) == {("other", "404")}
    counters.frame("ping", 20.0)  # beyond the last bucket: +Inf only
    assert counters.durations["ping"][-2] == 1
