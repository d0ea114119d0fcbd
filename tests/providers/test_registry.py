"""Provider names, chains, settings and the registry."""

from __future__ import annotations

import argparse

import pytest
import trio

from voicebot.cli import _parser
from voicebot.providers import (
    ProviderConfig,
    Providers,
    ProviderUnavailable,
    UnknownProvider,
    add_provider_arguments,
    configure_providers,
    current_config,
    expand_chain,
    register_provider,
    unregister_provider,
)
from voicebot.server import Settings
from voicebot.server._settings import settings_from
from voicebot.testing import ScriptedLLM


def test_local_expands_to_the_offline_chain() -> None:
    assert expand_chain("tts", ("local",)) == ("piper", "espeak")
    assert expand_chain("stt", ("local",)) == ("whisper",)
    assert expand_chain("llm", ("local",)) == ("responder",)
    assert expand_chain("tts", ("espeak", "local")) == ("espeak", "piper")


def test_unknown_provider_names_the_setting() -> None:
    with pytest.raises(UnknownProvider, match=r"--llm: unknown llm provider 'nope'"):
        Providers(ProviderConfig(llm="nope,local"))


def test_malformed_chains() -> None:
    with pytest.raises(ValueError, match="--tts"):
        ProviderConfig(tts="piper,,espeak")
    with pytest.raises(ValueError, match="twice"):
        ProviderConfig(stt="local,local")
    assert ProviderConfig(llm=" OpenAI , local ").llm == ("openai", "local")


def test_register_a_provider() -> None:
    made: list[ProviderConfig] = []

    def factory(config: ProviderConfig) -> ScriptedLLM:
        made.append(config)
        return ScriptedLLM("mine", "From my provider.")

    register_provider("llm", "mine", factory)
    try:
        with pytest.raises(ValueError, match="already registered"):
            register_provider("llm", "mine", factory)
        with pytest.raises(ValueError, match="invalid"):
            register_provider("llm", "local", factory)
        config = ProviderConfig(llm="mine,local")
        providers = Providers(config)
        assert providers.llm.names == ("mine", "responder")
        assert made == [config]
    finally:
        unregister_provider("llm", "mine")


def test_unavailable_provider_is_a_startup_error() -> None:
    def factory(config: ProviderConfig) -> object:
        raise ProviderUnavailable("missing package")

    register_provider("stt", "broken", factory)
    try:
        with pytest.raises(ProviderUnavailable, match="missing package"):
            Providers(ProviderConfig(stt="broken"))
    finally:
        unregister_provider("stt", "broken")


def test_config_from_settings_env_and_flags() -> None:
    parser = argparse.ArgumentParser()
    add_provider_arguments(parser)
    args = parser.parse_args(["--llm", "openai,local", "--llm-timeout", "2.5", "--tts-voice", "nova"])
    environ = {"VOICEBOT_STT_MODEL": "whisper-large", "VOICEBOT_OPENAI_API_KEY": "sk-secret",
               "VOICEBOT_CONTEXT_BUDGET": "1234"}
    config = ProviderConfig.from_settings(settings_from(args, environ), environ)
    assert config.llm == ("openai", "local") and config.llm_timeout == 2.5 and config.tts_voice == "nova"
    assert config.stt_model == "whisper-large" and config.context_budget == 1234
    assert config.api_key == "sk-secret" and "sk-secret" not in repr(config)
    assert config.base_url("llm") == "https://api.openai.com/v1"
    defaults = ProviderConfig.from_settings(Settings(), {})
    assert defaults == ProviderConfig()
    assert (defaults.stt, defaults.llm, defaults.tts) == (("local",),) * 3


async def test_default_providers_answer_offline(autojump_clock: trio.testing.MockClock) -> None:
    providers = Providers(ProviderConfig())
    async with providers.stream([]) as reply:
        text = "".join([piece async for piece in reply])
    assert reply.provider == "responder" and text.startswith("Hello! I'm your assistant")


def test_configure_providers_checks_at_startup() -> None:
    with pytest.raises(ValueError, match="--llm: unknown"):
        configure_providers(ProviderConfig(llm="openai,nope"))

    def factory(config: ProviderConfig) -> object:
        raise ProviderUnavailable("the foo package is missing")

    register_provider("tts", "foo", factory)
    try:
        with pytest.raises(ValueError, match=r"--tts: provider 'foo' cannot run here: the foo package is missing"):
            configure_providers(ProviderConfig(tts="foo"))
    finally:
        unregister_provider("tts", "foo")
    config = ProviderConfig(llm="openai,local", llm_model="m")
    configure_providers(config)
    try:
        assert current_config() is config
    finally:
        configure_providers(ProviderConfig())


def test_worker_command_takes_provider_flags() -> None:
    args = _parser().parse_args(["worker", "--token", "t", "--llm", "openai,local", "--context-budget", "900"])
    config = ProviderConfig.from_settings(settings_from(args, {}), {})
    assert config.llm == ("openai", "local") and config.context_budget == 900
