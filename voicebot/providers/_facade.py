"""The facade bots use: one :class:`ProviderChain` per kind, built from :class:`ProviderConfig`.

::

    async with Providers(config) as providers:           # or Providers.from_chains(...) in tests
        text = (await providers.transcribe(pcm, language="en")).text
        async with providers.stream(conversation.messages()) as reply:
            async for delta in reply: ...
        async with providers.synthesize("Hello there.") as audio:   # audio.sample_rate
            async for chunk in audio: ...
        async with providers.apology() as audio: ...     # the local TTS saying a short apology

Breakers and statistics are process-wide by default (:data:`PROVIDER_BREAKERS`, :data:`PROVIDER_STATS`), so
every bot of a worker process shares each provider's health. Heavy local models are loaded once per process.
"""

from __future__ import annotations

import random
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any

import attrs
import trio

from voicebot.resilience import BreakerRegistry

from ._api import ChatMessage, ProviderKind
from ._chain import ProviderChain, Reply
from ._config import ProviderConfig
from ._registry import create_provider, expand_chain
from ._stats import PROVIDER_STATS, ProviderStats

__all__ = ["APOLOGY", "PROVIDER_BREAKERS", "Providers", "Transcript"]

PROVIDER_BREAKERS = BreakerRegistry()
"""This process's provider breakers (``provider:<kind>:<name>``), shared by every bot."""

APOLOGY = "Sorry, I'm having trouble answering right now. Please try again in a moment."
"""What :meth:`Providers.apology` says when a whole chain failed."""

if TYPE_CHECKING:  # annotations only: numpy loads where audio is actually processed
    import numpy as np
    import numpy.typing as npt

    _AUDIO = npt.NDArray[np.int16]


@attrs.frozen
class Transcript:
    """A speech-to-text result: ``text`` (``""`` when nothing was said), who produced it and how fast."""

    text: str
    provider: str
    seconds: float
    """From the call to the result, failed providers included."""
    fallbacks: int
    """Providers tried before ``provider``."""


@asynccontextmanager
async def _transcription(provider: Any, pcm: _AUDIO, language: str) -> AsyncGenerator[AsyncIterator[str], None]:
    """STT as a one-piece stream, so the chain logic is one for all kinds."""
    text: str = await provider.transcribe(pcm, language=language)

    async def one() -> AsyncIterator[str]:
        yield text

    yield one()


class Providers:
    """STT, LLM and TTS chains plus the local TTS used for apologies (see the module docs).

    Construct from a config (providers created through the registry; an unknown name or an unavailable
    provider raises at once, naming the setting) or, for tests and embedding, :meth:`from_chains` with
    provider instances. Close with ``aclose()`` / ``async with`` (HTTP clients).
    """

    def __init__(self, config: ProviderConfig | None = None, *, breakers: BreakerRegistry | None = None,
                 stats: ProviderStats | None = None, rng: random.Random | None = None,
                 instances: dict[str, Sequence[Any]] | None = None) -> None:
        """Build the chains; ``instances`` (per kind) replaces the registry lookup for that kind."""
        self.config = config if config is not None else ProviderConfig()
        self._breakers = breakers if breakers is not None else PROVIDER_BREAKERS
        self._stats = stats if stats is not None else PROVIDER_STATS
        self._rng = rng if rng is not None else random.Random()
        self._owned: list[Any] = []
        self._cache: dict[tuple[str, str], Any] = {}
        given = instances or {}
        self.stt = self._chain("stt", given.get("stt"))
        self.llm = self._chain("llm", given.get("llm"))
        self.tts = self._chain("tts", given.get("tts"))
        local = given.get("local_tts")
        self.local_tts = self._chain("tts", local, names=expand_chain("tts", ("local",)) if local is None else None)

    @classmethod
    def from_chains(cls, *, stt: Sequence[Any], llm: Sequence[Any], tts: Sequence[Any],
                    local_tts: Sequence[Any] | None = None, config: ProviderConfig | None = None,
                    breakers: BreakerRegistry | None = None, stats: ProviderStats | None = None,
                    rng: random.Random | None = None) -> Providers:
        """Chains of ready provider instances (tests, embedding); ``local_tts`` defaults to ``tts``'s last member.
        Breakers and stats default to fresh, private ones here (tests must not share health by accident)."""
        instances = {"stt": stt, "llm": llm, "tts": tts, "local_tts": local_tts or [tts[-1]]}
        return cls(config, breakers=BreakerRegistry() if breakers is None else breakers,
                   stats=ProviderStats() if stats is None else stats, rng=rng,
                   instances=instances)

    def _chain(self, kind: ProviderKind, members: Sequence[Any] | None,
               names: tuple[str, ...] | None = None) -> ProviderChain:
        if members is None:
            wanted = names if names is not None else expand_chain(kind, self.config.chain(kind))
            members = [self._provider(kind, name) for name in wanted]
        return ProviderChain(kind, members, timeout=self.config.timeout(kind), breakers=self._breakers,
                             stats=self._stats, recovery_timeout=self.config.provider_recovery_timeout,
                             failure_threshold=self.config.failure_threshold, max_attempts=self.config.max_attempts,
                             rng=self._rng)

    def _provider(self, kind: ProviderKind, name: str) -> Any:
        key = (kind, name)
        if key not in self._cache:
            self._cache[key] = create_provider(kind, name, self.config)
            self._owned.append(self._cache[key])
        return self._cache[key]

    # -- calls -------------------------------------------------------------------------------------------------

    async def transcribe(self, pcm: _AUDIO, *, language: str = "en") -> Transcript:
        """The text said in ``pcm`` (16 kHz mono s16) from the first STT provider that answers in time."""
        async with self.stt.open(lambda provider: _transcription(provider, pcm, language)) as reply:
            text = "".join([piece async for piece in reply])
            return Transcript(text=text.strip(), provider=reply.provider, seconds=reply.first_latency,
                              fallbacks=reply.fallbacks)

    def stream(self, messages: Sequence[ChatMessage]) -> AbstractAsyncContextManager[Reply[str]]:
        """``async with providers.stream(messages) as reply`` — the LLM's answer as text deltas (a
        :class:`Reply`); raises ``ProviderError`` ``provider_failed`` if no provider gave a first token."""
        return self.llm.open(lambda provider: provider.stream(messages))

    def synthesize(self, text: str, *, voice: str | None = None,
                   language: str | None = None) -> AbstractAsyncContextManager[Reply[_AUDIO]]:
        """``async with providers.synthesize(text) as audio`` — mono s16 chunks at ``audio.sample_rate``."""
        return self.tts.open(lambda provider: provider.synthesize(text, voice=voice, language=language))

    def apology(self, text: str = APOLOGY) -> AbstractAsyncContextManager[Reply[_AUDIO]]:
        """The local (offline) TTS saying ``text``: what a bot plays when a whole chain failed."""
        return self.local_tts.open(lambda provider: provider.synthesize(text))

    async def warm_up(self) -> None:
        """Load every local model of the chains now (off the event loop), so the first turn is not slowed by
        loading (whisper ~0.5-2.5 s, piper ~0.5-2 s) and does not hit a deadline because of it."""
        seen: set[int] = set()
        for chain in (self.stt, self.llm, self.tts, self.local_tts):
            for member in chain.members:
                warm = getattr(member, "warm_up", None)
                if warm is not None and id(member) not in seen:
                    seen.add(id(member))
                    await warm()

    def stats(self) -> dict[str, Any]:
        """JSON-ready statistics of every provider and breaker (for ``admin.stats``)."""
        now = trio.current_time()
        breakers = {}
        for chain in (self.stt, self.llm, self.tts, self.local_tts):
            for breaker in chain.breakers.values():
                breakers[breaker.name] = {"state": str(breaker.core.state_at(now)),
                                          "retry_after": breaker.core.retry_after(now)}
        return {"chains": {"stt": list(self.stt.names), "llm": list(self.llm.names), "tts": list(self.tts.names)},
                "providers": self._stats.snapshot(), "breakers": breakers}

    # -- lifetime ----------------------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close providers created here (HTTP connection pools); shielded and bounded."""
        owned, self._owned = self._owned, []
        with trio.CancelScope(shield=True, deadline=trio.current_time() + 2.0):
            for provider in owned:
                close = getattr(provider, "aclose", None)
                if close is not None:
                    await close()

    async def __aenter__(self) -> Providers:
        """Itself."""
        return self

    async def __aexit__(self, etype: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        """:meth:`aclose`."""
        await self.aclose()


