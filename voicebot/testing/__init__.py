"""Tools for testing voicebot and code built on it: in-process servers on Trio's mock clock, simulated clients.

Determinism: :func:`deterministic_scheduling` (Trio's scheduler) and :func:`make_deterministic` (the hub's
tokens and timestamps). Scripted in-memory AI providers for the mock clock: :class:`ScriptedLLM`,
:class:`ScriptedSTT`, :class:`ScriptedTTS`; a scripted OpenAI-compatible HTTP server:
:func:`open_fake_openai`; :func:`word_error_rate` for speech accuracy. Real engines (PostgreSQL, redis-server) on
loopback: :func:`run_postgres`, :func:`run_redis`, and the session fixtures of
:mod:`voicebot.testing.engine_fixtures`. The pytest plugin (seed / fault-plan / server fixtures and replay hints
on failure) is :mod:`voicebot.testing.pytest_plugin`; enable it with
``pytest_plugins = ["voicebot.testing.pytest_plugin"]``.
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._determinism import EPOCH, deterministic_scheduling, make_deterministic
    from ._engines import EngineUnavailable, PostgresEngine, RedisEngine, free_port, run_postgres, run_redis
    from ._fake_openai import FakeOpenAI, FakeRequest, open_fake_openai
    from ._fake_providers import ScriptedLLM, ScriptedSTT, ScriptedTTS
    from ._harness import FakePasswordHasher, FreezableStream, open_client, open_test_server, settings_for_tests
    from ._process import child_pids, readyz_reasons, serve_process
    from ._wer import SPEECH_SENTENCES, normalise_words, word_error_rate

__all__ = [
    "EPOCH",
    "SPEECH_SENTENCES",
    "EngineUnavailable",
    "FakeOpenAI",
    "FakePasswordHasher",
    "FakeRequest",
    "FreezableStream",
    "PostgresEngine",
    "RedisEngine",
    "ScriptedLLM",
    "ScriptedSTT",
    "ScriptedTTS",
    "child_pids",
    "deterministic_scheduling",
    "free_port",
    "make_deterministic",
    "normalise_words",
    "open_client",
    "open_fake_openai",
    "open_test_server",
    "readyz_reasons",
    "run_postgres",
    "run_redis",
    "serve_process",
    "settings_for_tests",
    "word_error_rate",
]

__getattr__ = lazy_exports(__name__, {
    "EPOCH": "._determinism",
    "deterministic_scheduling": "._determinism",
    "make_deterministic": "._determinism",
    "EngineUnavailable": "._engines",
    "PostgresEngine": "._engines",
    "RedisEngine": "._engines",
    "free_port": "._engines",
    "run_postgres": "._engines",
    "run_redis": "._engines",
    "FakeOpenAI": "._fake_openai",
    "FakeRequest": "._fake_openai",
    "open_fake_openai": "._fake_openai",
    "ScriptedLLM": "._fake_providers",
    "ScriptedSTT": "._fake_providers",
    "ScriptedTTS": "._fake_providers",
    "FakePasswordHasher": "._harness",
    "FreezableStream": "._harness",
    "open_client": "._harness",
    "open_test_server": "._harness",
    "settings_for_tests": "._harness",
    "child_pids": "._process",
    "readyz_reasons": "._process",
    "serve_process": "._process",
    "normalise_words": "._wer",
    "word_error_rate": "._wer",
    "SPEECH_SENTENCES": "._wer",
})
