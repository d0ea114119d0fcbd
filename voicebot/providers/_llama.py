"""The optional ``llama`` LLM provider: any GGUF model (``--llm-model-path``) run by llama-cpp-python.

Install with the ``llama`` extra (``pip install -e '.[llama]'``): llama-cpp-python ships as an sdist and compiles
llama.cpp for several minutes (needs cmake and g++), so the project's scripts do not install it. The model is
loaded once per process and path; generation runs in a worker thread and hands tokens to Trio through a
channel. Leaving the stream early (barge-in, deadline) sets a stop flag the thread checks between tokens, so
generation stops within one token. The channel is unbounded but a reply is bounded by ``max_tokens`` (160:
voice answers are short).
"""

from __future__ import annotations

import math
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from ._api import ChatMessage
from ._checks import check_llama
from ._config import ProviderConfig

__all__ = ["LlamaLLM"]

_lock = threading.Lock()
_models: dict[str, Any] = {}


def _load(path: str, threads: int) -> Any:
    with _lock:
        model = _models.get(path)
        if model is None:
            from llama_cpp import Llama  # noqa: PLC0415 - optional extra

            model = _models[path] = Llama(model_path=path, n_ctx=2048, n_threads=threads, verbose=False)
        return model


class LlamaLLM:
    """A local GGUF model through llama-cpp-python (see the module docs)."""

    name = "llama"

    def __init__(self, config: ProviderConfig, *, threads: int = 2, max_tokens: int = 160) -> None:
        """:class:`ProviderUnavailable` when llama-cpp-python is missing or ``--llm-model-path`` is not a file."""
        check_llama(config)
        self.path = str(Path(config.llm_model_path).resolve())
        self.threads = threads
        self.max_tokens = max_tokens

    async def warm_up(self) -> None:
        """Load the model now (off the event loop)."""
        await trio.to_thread.run_sync(_load, self.path, self.threads)

    def _generate(self, messages: list[dict[str, str]], send: trio.MemorySendChannel[str],
                  stop: threading.Event) -> None:
        model = _load(self.path, self.threads)
        for chunk in model.create_chat_completion(messages=messages, stream=True, max_tokens=self.max_tokens):
            if stop.is_set():
                return
            content = chunk["choices"][0].get("delta", {}).get("content")
            if content:
                try:
                    trio.from_thread.run_sync(send.send_nowait, content)
                except (trio.BrokenResourceError, trio.ClosedResourceError, trio.RunFinishedError):
                    return

    @asynccontextmanager
    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncGenerator[AsyncIterator[str], None]:
        """The model's reply, token by token."""
        wire = [{"role": m.role, "content": f"{m.name}: {m.content}" if m.role == "user" and m.name else m.content}
                for m in messages]
        send, receive = trio.open_memory_channel[str](math.inf)
        stop = threading.Event()

        async def produce() -> None:
            async with send:
                await trio.to_thread.run_sync(self._generate, wire, send, stop)

        async with trio.open_nursery() as nursery, receive:
            nursery.start_soon(produce)
            try:
                yield receive
            finally:
                stop.set()
