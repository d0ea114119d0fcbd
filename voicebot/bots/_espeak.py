"""espeak-ng text-to-speech through ctypes (library and voice data from the ``espeakng-loader`` wheel).

Synthesis is synchronous (``AUDIO_OUTPUT_SYNCHRONOUS``): ``espeak_Synth`` returns once every sample went through
our callback. espeak-ng is not thread-safe, so one process-wide lock serialises it. The 22,050 Hz output is
resampled to 48 kHz mono s16 with PyAV's resampler.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

import numpy as np
import numpy.typing as npt

from ..providers._audio import resample_mono

__all__ = ["EspeakUnavailable", "espeak_available", "speak"]

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_EE_OK = 0
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_lock = threading.Lock()
_state: dict[str, Any] = {}


class EspeakUnavailable(RuntimeError):
    """espeak-ng could not be loaded or initialised."""


def espeak_available() -> bool:
    """True when the espeak-ng library loads and initialises (tried once per process)."""
    try:
        _engine()
    except EspeakUnavailable:
        return False
    return True


def _engine() -> tuple[Any, int]:
    if "error" in _state:
        raise EspeakUnavailable(_state["error"])
    if "lib" not in _state:
        try:
            import espeakng_loader  # noqa: PLC0415 - optional dependency (the ``tts`` extra)

            lib = ctypes.CDLL(espeakng_loader.get_library_path())
            data = espeakng_loader.get_data_path().encode()
        except (ImportError, OSError, RuntimeError) as exc:
            _state["error"] = f"espeak-ng unavailable: {exc}"
            raise EspeakUnavailable(_state["error"]) from exc
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, 0)
        if rate <= 0:
            _state["error"] = f"espeak_Initialize failed ({rate})"
            raise EspeakUnavailable(_state["error"])
        chunks: list[npt.NDArray[np.int16]] = []

        def collect(wav: Any, count: int, events: Any) -> int:
            if wav and count > 0:
                chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
            return 0

        callback = _CALLBACK(collect)
        lib.espeak_SetSynthCallback(callback)
        _state.update(lib=lib, rate=rate, chunks=chunks, callback=callback)  # keep the callback alive
    return _state["lib"], int(_state["rate"])


def speak(text: str, *, voice: str = "en-us", rate: int = 48_000) -> npt.NDArray[np.int16]:
    """``text`` spoken by espeak-ng as mono s16 samples at ``rate`` Hz. Raises EspeakUnavailable."""
    with _lock:
        lib, native = _engine()
        chunks: list[npt.NDArray[np.int16]] = _state["chunks"]
        chunks.clear()
        if lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise EspeakUnavailable(f"espeak-ng has no voice {voice!r}")
        raw = text.encode("utf-8") + b"\0"
        status = lib.espeak_Synth(raw, len(raw), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None)
        if status != _EE_OK:
            raise EspeakUnavailable(f"espeak_Synth failed ({status})")
        samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
        chunks.clear()
    return resample_mono(samples, native, rate)
