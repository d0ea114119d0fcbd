"""Start-up provider checks answer "can it run here?" without importing any engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from voicebot.providers import ProviderConfig, ProviderUnavailable, register_provider, unregister_provider
from voicebot.providers._registry import check_provider

ENGINES = ("numpy", "httpx", "faster_whisper", "ctranslate2", "piper", "onnxruntime", "llama_cpp", "av", "aiortc")


def test_configure_providers_imports_no_engine() -> None:
    code = (
        "import json, sys\n"
        "from voicebot.providers import ProviderConfig, configure_providers\n"
        "configure_providers(ProviderConfig(stt='local,openai', llm='openai,local', tts='local,openai'))\n"
        f"print(json.dumps(sorted(m for m in {ENGINES!r} if m in sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout) == []


def test_llama_check_names_the_missing_model(tmp_path: Path) -> None:
    with pytest.raises(ProviderUnavailable, match=r"is not a GGUF file|llama-cpp-python is not installed"):
        check_provider("llm", "llama", ProviderConfig(llm="llama", llm_model_path=str(tmp_path / "none.gguf")))


def test_provider_without_check_is_built_once() -> None:
    built: list[ProviderConfig] = []

    def factory(config: ProviderConfig) -> object:
        built.append(config)
        return object()

    def refuse(config: ProviderConfig) -> None:
        raise ProviderUnavailable("no foo here")

    register_provider("tts", "foo", factory)
    try:
        config = ProviderConfig(tts="foo")
        check_provider("tts", "foo", config)
        assert built == [config]
        register_provider("tts", "foo", factory, replace=True, check=refuse)
        with pytest.raises(ProviderUnavailable, match="no foo here"):
            check_provider("tts", "foo", config)
        assert built == [config]  # the check ran instead of the factory
    finally:
        unregister_provider("tts", "foo")
