"""Garbage-collector settings for the long-running processes (``voicebot serve``, ``voicebot worker`` and the
local worker process that serve supervises)."""

from __future__ import annotations

import gc
import os

__all__ = ["GC_THRESHOLDS", "release_free_memory", "tune_gc"]

#: ``gc.set_threshold`` once start-up is done: young passes every 5,000 allocations, a middle pass every 100 young
#: ones and a full pass every 10 middle ones (about every 5 million allocations, as with 50,000 / 10 / 10).
GC_THRESHOLDS = (5_000, 100, 10)


def tune_gc() -> None:
    """GC settings for a long-running server, applied once start-up is done (imports made, settings read).

    Everything alive after start-up (modules, classes, restored state) is frozen out of the collector's sight
    (``gc.freeze``), so full passes walk only what serving allocated, and the thresholds are :data:`GC_THRESHOLDS`:
    full collections every ~5 million allocations instead of 70,000 (with 1,000 connections the defaults gave full
    collections of up to ~190 ms and a relay p99 in the hundreds of ms), while young collections stay small (every
    5,000 allocations: at 50,000, a young pass while bots were being started took up to ~90 ms of CPU; see README
    "Benchmarks"). ``VOICEBOT_GC=default`` keeps CPython's defaults. Either way, the heap memory start-up freed is
    handed back to the system (:func:`release_free_memory`).
    """
    if os.environ.get("VOICEBOT_GC", "").lower() != "default":
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
    release_free_memory()


def release_free_memory() -> bool:
    """Return free heap memory to the system (glibc's ``malloc_trim``); False where that is not available.

    Start-up (imports, building validators, restoring state) frees about 1 MiB that the C allocator would
    otherwise keep mapped, counted in the idle server's resident size.
    """
    import ctypes  # noqa: PLC0415 (loaded by trio already)

    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):  # not glibc
        return False
    trim(0)
    return True
