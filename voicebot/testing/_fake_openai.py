"""A scripted OpenAI-compatible HTTP server on loopback, for tests and benchmarks (real HTTP, real streaming).

::

    async with open_fake_openai(first_token=0.2, per_token=0.02) as fake:
        config = ProviderConfig(llm="openai", openai_base_url=fake.base_url)
        fake.replies.append("Scripted answer.")          # next chat reply (then ``fake.reply``)
        fake.fail("chat", status=503, times=2, retry_after=1)   # scripted failures, consumed in order
        fake.hang("speech")                               # never answers (until the client gives up)
        ...
        fake.requests                                     # every request received (endpoint, headers, body)
        fake.chat_messages()                              # the ``messages`` of every chat request

Endpoints: ``POST /chat/completions`` (``stream: true`` → server-sent events, word by word; else one JSON),
``POST /audio/transcriptions`` (multipart; answers ``{"text": ...}`` from ``transcripts`` then
``transcript``), ``POST /audio/speech`` (``response_format: "pcm"``: 24 kHz s16le mono, streamed in 100 ms
chunks; the audio is a quiet tone ``speech_seconds_per_char`` long per input character), ``GET /models``.
Latencies (seconds): ``first_token``, ``per_token``, ``first_audio``, ``per_chunk``, ``stt_delay``. With
``api_key`` set, requests without ``Authorization: Bearer <api_key>`` get 401 (whose body echoes the key it
got, the way real APIs partly do, so tests can prove it never reaches a log). Served by Hypercorn's Trio
worker (a well-kept ASGI server that runs natively on Trio) around a tiny ASGI app.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import attrs
import numpy as np
import trio

__all__ = ["FakeOpenAI", "FakeRequest", "open_fake_openai"]

_ENDPOINTS = {"/chat/completions": "chat", "/audio/transcriptions": "transcriptions", "/audio/speech": "speech",
              "/models": "models"}
Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


@attrs.frozen
class FakeRequest:
    """One request the fake received."""

    endpoint: str
    """``chat``, ``transcriptions``, ``speech``, ``models`` or ``unknown``."""
    method: str
    path: str
    headers: dict[str, str]
    """Lower-case names."""
    json: Any
    """The JSON body (chat, speech), else None."""
    fields: dict[str, str]
    """Multipart text fields (transcriptions)."""
    file: bytes
    """The multipart ``file`` part (transcriptions: the WAV)."""


@attrs.define
class _Failure:
    kind: str  # "status", "hang", "midstream"
    status: int = 500
    retry_after: float | None = None


class FakeOpenAI:
    """The scripted server's state (see the module docs); build with :func:`open_fake_openai`."""

    def __init__(self, *, reply: str = "Hello from the fake model.", transcript: str = "hello",
                 first_token: float = 0.0, per_token: float = 0.0, first_audio: float = 0.0,
                 per_chunk: float = 0.0, stt_delay: float = 0.0, speech_seconds_per_char: float = 0.06,
                 api_key: str | None = None) -> None:
        """Defaults: instant answers, no failures."""
        self.reply = reply
        self.replies: list[str] = []
        self.transcript = transcript
        self.transcripts: list[str] = []
        self.first_token = first_token
        self.per_token = per_token
        self.first_audio = first_audio
        self.per_chunk = per_chunk
        self.stt_delay = stt_delay
        self.speech_seconds_per_char = speech_seconds_per_char
        self.api_key = api_key
        self.requests: list[FakeRequest] = []
        self.base_url = ""
        self._failures: dict[str, list[_Failure]] = {}

    # -- scripting ---------------------------------------------------------------------------------------------

    def fail(self, endpoint: str, *, status: int = 500, times: int = 1, retry_after: float | None = None) -> None:
        """The next ``times`` requests to ``endpoint`` answer ``status`` (with ``Retry-After`` if given)."""
        self._failures.setdefault(endpoint, []).extend(
            _Failure("status", status, retry_after) for _ in range(times))

    def hang(self, endpoint: str, *, times: int = 1) -> None:
        """The next ``times`` requests to ``endpoint`` never answer."""
        self._failures.setdefault(endpoint, []).extend(_Failure("hang") for _ in range(times))

    def break_midstream(self, endpoint: str, *, times: int = 1) -> None:
        """The next ``times`` streamed answers of ``endpoint`` stop after their first piece (connection cut)."""
        self._failures.setdefault(endpoint, []).extend(_Failure("midstream") for _ in range(times))

    def clear_failures(self) -> None:
        """Forget scripted failures not yet consumed."""
        self._failures.clear()

    def chat_messages(self) -> list[list[dict[str, Any]]]:
        """The ``messages`` of every chat request, in order."""
        return [r.json["messages"] for r in self.requests if r.endpoint == "chat" and isinstance(r.json, dict)]

    def count(self, endpoint: str) -> int:
        """Requests received by ``endpoint``."""
        return sum(1 for r in self.requests if r.endpoint == endpoint)

    # -- ASGI --------------------------------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        """The ASGI application."""
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path = scope["path"]
        for prefix in ("/v1",):
            if path.startswith(prefix + "/"):
                path = path[len(prefix):]
        endpoint = _ENDPOINTS.get(path, "unknown")
        request = _parse(endpoint, scope["method"], scope["path"], headers, body)
        self.requests.append(request)
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            got = headers.get("authorization", "")
            await _json(send, 401, {"error": {"message": f"Incorrect API key provided: {got}",
                                              "type": "invalid_request_error", "code": "invalid_api_key"}})
            return
        failure = self._failures[endpoint].pop(0) if self._failures.get(endpoint) else None
        if failure is not None and failure.kind == "hang":
            await trio.sleep_forever()
        if failure is not None and failure.kind == "status":
            extra = [(b"retry-after", f"{failure.retry_after:g}".encode())] if failure.retry_after is not None else []
            await _json(send, failure.status, {"error": {"message": "scripted failure", "type": "server_error",
                                                         "code": None}}, extra)
            return
        midstream = failure is not None and failure.kind == "midstream"
        if endpoint == "chat":
            await self._chat(request, send, midstream)
        elif endpoint == "transcriptions":
            await trio.sleep(self.stt_delay)
            text = self.transcripts.pop(0) if self.transcripts else self.transcript
            await _json(send, 200, {"text": text})
        elif endpoint == "speech":
            await self._speech(request, send, midstream)
        elif endpoint == "models":
            await _json(send, 200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
        else:
            await _json(send, 404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    async def _chat(self, request: FakeRequest, send: Send, midstream: bool) -> None:
        text = self.replies.pop(0) if self.replies else self.reply
        body = request.json if isinstance(request.json, dict) else {}
        if not body.get("stream"):
            await trio.sleep(self.first_token)
            await _json(send, 200, {"id": "chatcmpl-fake", "object": "chat.completion", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]})
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})
        await trio.sleep(self.first_token)
        words = text.split(" ")
        for index, word in enumerate(words):
            if index:
                await trio.sleep(self.per_token)
            delta: dict[str, Any] = {"content": word if index == 0 else " " + word}
            if index == 0:
                delta["role"] = "assistant"
            await _event(send, {"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                                "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
            if midstream:
                raise RuntimeError("fake: scripted mid-stream cut")  # Hypercorn aborts the connection
        await _event(send, {"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})

    async def _speech(self, request: FakeRequest, send: Send, midstream: bool) -> None:
        body = request.json if isinstance(request.json, dict) else {}
        text = str(body.get("input", ""))
        seconds = max(0.2, len(text) * self.speech_seconds_per_char)
        rate = 24_000
        t = np.arange(int(seconds * rate)) / rate
        pcm = (np.sin(2 * np.pi * 220 * t) * 4000).astype("<i2").tobytes()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"audio/pcm")]})
        await trio.sleep(self.first_audio)
        step = rate // 10 * 2
        for index, offset in enumerate(range(0, len(pcm), step)):
            if index:
                await trio.sleep(self.per_chunk)
            await send({"type": "http.response.body", "body": pcm[offset: offset + step], "more_body": True})
            if midstream:
                raise RuntimeError("fake: scripted mid-stream cut")
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _parse(endpoint: str, method: str, path: str, headers: dict[str, str], body: bytes) -> FakeRequest:
    payload: Any = None
    fields: dict[str, str] = {}
    file = b""
    content_type = headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
    elif content_type.startswith("multipart/form-data"):
        fields, file = _multipart(content_type, body)
    return FakeRequest(endpoint=endpoint, method=method, path=path, headers=headers, json=payload,
                       fields=fields, file=file)


def _multipart(content_type: str, body: bytes) -> tuple[dict[str, str], bytes]:
    """Split a multipart/form-data body (headers parsed by the stdlib; the parts' bytes kept exactly)."""
    header = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode("latin-1"))
    boundary = header.get_param("boundary")
    fields: dict[str, str] = {}
    file = b""
    if not isinstance(boundary, str):
        return fields, file
    for chunk in body.split(b"--" + boundary.encode("latin-1"))[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        data = data.removesuffix(b"\r\n")
        part = BytesParser(policy=HTTP).parsebytes(head + b"\r\n\r\n")
        name = part.get_param("name", header="content-disposition")
        if part.get_param("filename", header="content-disposition") is not None:
            file = data
        elif isinstance(name, str):
            fields[name] = data.decode("utf-8", "replace")
    return fields, file


async def _json(send: Send, status: int, body: Any, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            *(extra or [])]})
    await send({"type": "http.response.body", "body": data, "more_body": False})


async def _event(send: Send, payload: Any) -> None:
    await send({"type": "http.response.body", "body": b"data: " + json.dumps(payload).encode() + b"\n\n",
                "more_body": True})


@asynccontextmanager
async def open_fake_openai(**options: Any) -> AsyncGenerator[FakeOpenAI, None]:
    """Serve a :class:`FakeOpenAI` (``options`` as its constructor) on a free loopback port for the block;
    ``fake.base_url`` is ``http://127.0.0.1:PORT/v1``. Needs ``hypercorn`` (the dev extra)."""
    from hypercorn.config import Config  # noqa: PLC0415 - test-only dependency
    from hypercorn.trio import serve  # noqa: PLC0415

    fake = FakeOpenAI(**options)
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = logging.getLogger("voicebot.testing.fake_openai")
    config.graceful_timeout = 0.1
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(serve, fake, config)
        fake.base_url = binds[0].rstrip("/") + "/v1"
        try:
            yield fake
        finally:
            nursery.cancel_scope.cancel()
