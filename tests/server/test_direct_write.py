"""Direct writes: a message for an idle connection is framed and written from the sending task; the order of
frames stays exact across direct and queued writes, partial writes, the close frame and fault plans."""

from __future__ import annotations

import json
import os
import socket

import trio
import trio.lowlevel
import trio.testing

from voicebot import faults
from voicebot.server import Server
from voicebot.server._connection import Connection
from voicebot.testing import open_client, open_test_server, settings_for_tests
from voicebot.testing._rawws import OP_TEXT, RawWebSocket


async def _connect(server: Server) -> tuple[RawWebSocket, Connection]:
    host, port = server.addresses()[0].rsplit(":", 1)
    ws = await RawWebSocket.connect(host, int(port))
    await ws.send_text('{"type":"hello","name":"a"}')
    with trio.fail_after(5):
        got = await ws.read()
    assert got is not None and b"welcome" in got[1]
    (conn,) = server.connections.values()
    return ws, conn


def _shrink_send_buffer(conn: Connection, size: int = 4096) -> None:
    """Make the server's socket for ``conn`` take only a few KiB at a time (partial writes)."""
    fd = conn._batch._fd
    assert fd is not None
    sock = socket.socket(fileno=os.dup(fd))
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
    finally:
        sock.close()


async def _read_texts(ws: RawWebSocket, n: int) -> list[str]:
    texts = []
    with trio.fail_after(10):
        while len(texts) < n:
            got = await ws.read()
            assert got is not None
            if got[0] == OP_TEXT:
                texts.append(got[1].decode())
    return texts


def _message(seq: int, size: int = 0) -> str:
    return json.dumps({"type": "x", "seq": seq, "pad": "p" * size})


async def test_idle_connection_is_written_directly_without_a_writer(tcp_server: Server) -> None:
    ws, conn = await _connect(tcp_server)
    for seq in range(3):
        conn.enqueue(_message(seq))
        assert not conn.writing and conn._outbox is None  # written from this task: no writer, no outbox
    assert [json.loads(t)["seq"] for t in await _read_texts(ws, 3)] == [0, 1, 2]
    conn.enqueue("\ud800 lone surrogate")  # not UTF-8 encodable: framed with U+FFFD, like the queued path
    assert await _read_texts(ws, 1) == ["\ufffd lone surrogate"]
    await ws.aclose()


async def test_order_is_exact_across_direct_queued_and_partial_writes(tcp_server: Server) -> None:
    """The client reads nothing while 200 messages of 2 KB go out through a small socket buffer: the first are
    written directly, a partial write holds the rest of its frame and starts the writer, later ones queue; once
    the socket drains, writes are direct again. Every frame arrives whole and in order."""
    ws, conn = await _connect(tcp_server)
    _shrink_send_buffer(conn)
    ws.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    paths = []
    for seq in range(200):
        conn.enqueue(_message(seq, 2000))
        paths.append("queued" if conn.writing else "direct")
        if seq % 25 == 24:
            await trio.lowlevel.checkpoint()  # let the writer run meanwhile
    assert "direct" in paths and "queued" in paths
    texts = await _read_texts(ws, 200)
    assert [json.loads(t)["seq"] for t in texts] == list(range(200))
    with trio.fail_after(5):
        await trio.testing.wait_all_tasks_blocked()  # the writer has ended
    conn.enqueue(_message(200))
    assert not conn.writing  # drained: direct again
    assert json.loads((await _read_texts(ws, 1))[0])["seq"] == 200
    await ws.aclose()


async def test_partial_direct_write_holds_the_rest_ahead_of_queued_messages(tcp_server: Server) -> None:
    ws, conn = await _connect(tcp_server)
    _shrink_send_buffer(conn)
    conn.enqueue(_message(0, 1 << 20))  # far more than the socket takes at once
    assert conn.writing and conn._outbox is None and conn._batch.pending  # the writer flushes the held rest
    conn.enqueue(_message(1))
    conn.enqueue(_message(2))
    assert conn.out_bytes > 0  # queued behind the rest
    texts = await _read_texts(ws, 3)
    assert [json.loads(t)["seq"] for t in texts] == [0, 1, 2]
    assert len(json.loads(texts[0])["pad"]) == 1 << 20
    await ws.aclose()


async def test_close_frame_follows_direct_writes(tcp_server: Server) -> None:
    ws, conn = await _connect(tcp_server)
    for seq in range(3):
        conn.enqueue(_message(seq))
    conn.request_close(1000, "done")
    conn.enqueue(_message(3))  # decided to close: nothing more goes out
    with trio.fail_after(5):
        code, frames = await ws.read_close()
    assert code == 1000
    assert [json.loads(payload)["seq"] for op, payload in frames if op == OP_TEXT] == [0, 1, 2]
    await ws.aclose()


async def test_fault_plan_sends_through_the_writer_and_its_fault_points(tcp_server: Server) -> None:
    ws, conn = await _connect(tcp_server)
    plan = faults.Plan(rules=(faults.Rule(point="writer.send", at=2, fault=faults.drop()),
                              faults.Rule(point="writer.send", at=3, fault=faults.duplicate())))
    with faults.activate(plan, scope="global") as run:
        for seq in range(4):
            conn.enqueue(_message(seq))
            assert conn.writing  # queued: the fault points are on the writer's path
        texts = await _read_texts(ws, 4)
    assert [json.loads(t)["seq"] for t in texts] == [0, 2, 2, 3]
    assert run.stats()["hits"]["ws.send"] == 4
    await ws.aclose()


async def test_no_socket_means_the_queued_path(autojump_clock: trio.testing.MockClock) -> None:
    """In-memory (like TLS) streams have no socket to write to directly: the writer sends."""
    async with open_test_server(settings_for_tests()) as server, open_client(server, "a") as client:
        (conn,) = server.connections.values()
        conn.enqueue(_message(0))
        assert conn.writing
        assert (await client.next_event("x"))["seq"] == 0


async def test_a_message_never_overtakes_queued_ones(tcp_server: Server) -> None:
    """Messages queued (here while a fault plan was active) and not yet written keep their place: the next one
    queues behind them even though the socket has room."""
    ws, conn = await _connect(tcp_server)
    with faults.activate(faults.Plan(rules=()), scope="global"):
        conn.enqueue(_message(0))
        conn.enqueue(_message(1))
    conn.enqueue(_message(2))  # the writer has not run yet
    assert conn.writing
    assert [json.loads(t)["seq"] for t in await _read_texts(ws, 3)] == [0, 1, 2]
    conn.enqueue(_message(3))
    assert [json.loads(t)["seq"] for t in await _read_texts(ws, 1)] == [3]
    await ws.aclose()
