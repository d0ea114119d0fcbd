"""The ``assistant`` bot: hears every person separately, answers one at a time, speaks to everyone.

Floor control — **merge**: one reply at a time. Utterances that finish while a reply is being prepared or spoken
wait in a bounded inbox (:data:`INBOX_SIZE`; when full the oldest waiting utterance is dropped and counted) and
are answered *together* by the next reply, each as its own attributed user message in the order they ended. A
person who speaks over the bot for ``barge_in_min`` seconds of voiced audio — while it thinks or speaks — cancels
the reply (barge-in): the outgoing audio is flushed at once, the conversation keeps only what was played, and
their utterance is answered next (merged with anything else that arrived). A reply cut before any of it was
heard is owed: it is answered again even when the interrupting sound transcribes to nothing.

Everything the people see: a final ``user`` caption per transcribed utterance (``about`` = the speaker), partial
``assistant`` captions per sentence as it starts playing and a final one holding exactly what was played, and
``bot.status`` on every state change (``listening``, ``thinking``, ``speaking``, ``degraded`` when a whole
provider chain failed — the bot then says a short apology with the offline TTS). Messages to the hub go through
one bounded outbox (:data:`OUTBOX_SIZE`, oldest dropped when full) so audio never waits for the WebSocket.
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import Any

import attrs
import trio

from ...errors import ProviderError, classify
from ...media import MediaConfig
from ...providers import APOLOGY, Conversation, Providers, current_config
from .._peers import MediaBot, PeerLink
from .._session import BotSession
from ._listener import Listener, Utterance
from ._memory import MEMORY, AssistantMemory, JobMemory
from ._options import AssistantConfig, AssistantOptions
from ._playout import Playout
from ._reply import Reply

__all__ = ["INBOX_SIZE", "OUTBOX_SIZE", "AssistantBot"]

log = logging.getLogger("voicebot.assistant")

INBOX_SIZE = 32
"""Finished utterances (and greeting/apology requests) waiting for the floor."""
OUTBOX_SIZE = 128
"""Captions and status messages waiting to be sent to the hub."""


@attrs.frozen
class _Greet:
    pass


@attrs.frozen
class _Failed:
    kind: str
    detail: str


@attrs.define(eq=False)
class _Prepared:
    """A reply started speculatively from a transcription that finished during the endpointing silence."""

    utterance: Utterance
    reply: Reply
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    done: trio.Event = attrs.field(factory=trio.Event)
    error: Exception | None = None


class AssistantBot(MediaBot):
    """See the module docs. Built per ``bot.add`` (and again per supervised restart, finding its memory)."""

    def __init__(self, options: AssistantOptions, config: AssistantConfig | None = None,
                 media: MediaConfig | None = None, *, providers: Any = None,
                 memory: AssistantMemory | None = None) -> None:
        super().__init__(media)
        self.options = options
        self.config = config if config is not None else AssistantConfig()
        self.memory_store = memory if memory is not None else MEMORY
        self.providers: Any = providers
        """The provider facade (:class:`~voicebot.providers.Providers`); built from the config when None."""
        self._own_providers = providers is None
        self.playout = Playout()
        self.state = ""
        """Last announced ``bot.status`` state."""
        self.inbox_dropped = 0
        self.last_barge_in: tuple[float, float] | None = None
        """(time the threshold was crossed, time the audio was flushed) of the latest barge-in."""
        self.conversation: Conversation | None = None
        self.job: JobMemory = JobMemory()
        self._inbox_send, self._inbox = trio.open_memory_channel[Any](INBOX_SIZE)
        self._inbox_drain = self._inbox.clone()
        self._out_send, self._out_recv = trio.open_memory_channel[dict[str, Any]](OUTBOX_SIZE)
        self._out_drain = self._out_recv.clone()
        self._reply_scope: trio.CancelScope | None = None
        self._unplayed = 0
        self._owed = False
        self._counter = itertools.count(1)
        self._nursery: trio.Nursery | None = None
        self._prepared: _Prepared | None = None
        self._busy = False

    # -- life ---------------------------------------------------------------------------------------
    @property
    def peer_id(self) -> str:
        """The bot's peer id (empty before it runs)."""
        return self.session.peer_id if self.session is not None else ""

    def new_turn_id(self, prefix: str) -> str:
        """A turn id unique in this job (also the turn's correlation id in logs)."""
        return f"{prefix}{self.job.lives}-{next(self._counter)}"

    async def run(self, session: BotSession) -> None:
        """Restore the job's conversation, then run the floor, the outbox and the peers until the session ends."""
        self.session = session
        self.job = self.memory_store.job(session.job_id or session.peer_id)
        self.job.lives += 1
        self.job.peer_id, self.job.lobby_id = session.peer_id, session.lobby_id
        if self.job.conversation is not None:
            self.conversation = Conversation.from_dict(self.job.conversation)
        else:
            self.conversation = Conversation(self.options.persona, budget=self.config.context_budget)
        if self.providers is None:
            self.providers = Providers(self.config.providers or current_config())
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                if self._own_providers:  # load local models now, not during the first turn
                    nursery.start_soon(self.providers.warm_up)
                nursery.start_soon(self._writer)
                nursery.start_soon(self._floor)
                await super().run(session)
                nursery.cancel_scope.cancel()
        finally:
            if self._own_providers:
                await self.providers.aclose()

    async def on_peer(self, link: PeerLink) -> None:
        """Play to and listen to one person (their connection's life)."""
        self.playout.attach(link.peer_id, link.audio_out)
        try:
            if not self.job.greeted and self.options.greeting:
                self.job.greeted = True
                self._enqueue(_Greet())
            await Listener(self, link).run()
        finally:
            self.playout.detach(link.peer_id, link.audio_out)

    # -- from the listeners -------------------------------------------------------------------------
    def submit(self, utterance: Utterance) -> None:
        """A person's turn ended: caption it and queue it for the floor."""
        if utterance.text:
            self._send({"type": "caption", "text": utterance.text[:2000], "role": "user", "about": utterance.peer_id,
                        "final": True, "turn_id": utterance.turn_id})
            self.job.analytics.observe("stt", utterance.stt_seconds, utterance.provider)
            self.job.analytics.fallbacks += utterance.fallbacks
            log.info("turn %s: %s said %r (stt %.3f s by %s)", utterance.turn_id, utterance.name, utterance.text,
                     utterance.stt_seconds, utterance.provider)
        self._enqueue(utterance)

    def preview(self, utterance: Utterance) -> None:
        """A transcription finished while its speaker is still within the endpointing silence: if the floor is
        free, start writing and synthesising the reply now (held back until the turn really ends)."""
        if (self._prepared is not None or self._busy or self._reply_scope is not None or self._nursery is None
                or self.conversation is None or self._inbox.statistics().current_buffer_used):
            return
        draft = Conversation.from_dict(self.conversation.to_dict())
        draft.add_user(utterance.name, utterance.text)
        reply = self._new_reply(Reply, turn_id=self.new_turn_id("r"), messages=draft.messages(),
                                end_of_speech=utterance.end_of_speech)
        reply.gate = trio.Event()
        prepared = self._prepared = _Prepared(utterance, reply)
        self.job.analytics.speculative["prepared"] += 1
        self._nursery.start_soon(self._run_prepared, prepared)

    def withdraw(self, key: int) -> None:
        """The speaker went on talking: drop the reply prepared from transcription ``key``."""
        prepared = self._prepared
        if prepared is not None and prepared.utterance.key == key:
            self._prepared = None
            prepared.scope.cancel()
            self.job.analytics.speculative["withdrawn"] += 1

    async def _run_prepared(self, prepared: _Prepared) -> None:
        with prepared.scope:
            try:
                await prepared.reply.run()
            except Exception as exc:  # re-raised by the floor when it commits this reply
                prepared.error = exc
        prepared.done.set()

    def stt_failed(self, peer_id: str, error: Exception) -> None:
        """Every speech-to-text provider failed for ``peer_id``'s turn: apologise (degraded)."""
        self._enqueue(_Failed("stt", f"speech-to-text unavailable ({classify(error).error.code})"))

    def heard_voice(self, peer_id: str, voiced: float, at: float) -> None:
        """``peer_id`` has spoken ``voiced`` seconds so far: barge in when it reaches ``barge_in_min``."""
        scope = self._reply_scope
        if scope is None or scope.cancel_called or voiced < self.config.barge_in_min:
            return
        self._unplayed = self.playout.queued()
        self.playout.flush()
        scope.cancel()
        self.last_barge_in = (at, trio.current_time())
        self.job.analytics.interruptions += 1
        self.job.analytics.barge_in.append(self.last_barge_in[1] - at)
        self.job.analytics.last_barge_in_wall = time.time()
        log.info("assistant %s: barge-in by %s after %.2f s of voice", self.peer_id, peer_id, voiced)

    def _enqueue(self, item: Any) -> None:
        try:
            self._inbox_send.send_nowait(item)
        except trio.WouldBlock:  # documented bound: drop the oldest waiting item
            self._inbox_drain.receive_nowait()
            self.inbox_dropped += 1
            self._inbox_send.send_nowait(item)

    # -- to the hub ---------------------------------------------------------------------------------
    def _send(self, message: dict[str, Any]) -> None:
        try:
            self._out_send.send_nowait(message)
        except trio.WouldBlock:
            self._out_drain.receive_nowait()
            self._out_send.send_nowait(message)

    def _status(self, state: str, detail: str | None = None) -> None:
        if state != self.state or detail:
            self.state = state
            self._send({"type": "bot.status", "state": state, **({"detail": detail} if detail else {})})

    async def _writer(self) -> None:
        assert self.session is not None
        async for message in self._out_recv:
            with trio.move_on_after(5.0):
                await self.session.client.send(message)

    # -- the floor ----------------------------------------------------------------------------------
    async def _floor(self) -> None:
        self._status("listening")
        async for first in self._inbox:
            batch = [first]
            while True:
                try:
                    batch.append(self._inbox.receive_nowait())
                except trio.WouldBlock:
                    break
            failures = [item for item in batch if isinstance(item, _Failed)]
            utterances = [item for item in batch if isinstance(item, Utterance) and item.text]
            prepared, self._prepared = self._prepared, None
            if prepared is not None and not (len(batch) == 1 and utterances
                                             and utterances[0].key == prepared.utterance.key):
                prepared.scope.cancel()
                self.job.analytics.speculative["withdrawn"] += 1
                prepared = None
            self._busy = True
            try:
                await self._take(batch, failures, utterances, prepared)
            finally:
                self._busy = False

    async def _take(self, batch: list[Any], failures: list[_Failed], utterances: list[Utterance],
                    prepared: _Prepared | None) -> None:
        if failures and not utterances:
            await self._degraded(failures[0].kind, failures[0].detail)
            return
        if any(isinstance(item, _Greet) for item in batch) and not utterances:
            await self._speak(self._new_reply(Reply, turn_id=self.new_turn_id("g"), text=self.options.greeting))
            return
        assert self.conversation is not None
        for utterance in utterances:
            self.conversation.add_user(utterance.name, utterance.text)
        if not utterances and not self._owed:
            return
        self._save()
        await self._answer(max((u.end_of_speech for u in utterances), default=None), prepared)

    def _new_reply(self, cls: type[Reply], **fields: Any) -> Reply:
        reply = cls(providers=self.providers, playout=self.playout, analytics=self.job.analytics,
                    voice=self.options.voice, language=self.options.language, **fields)
        reply.on_sentence = lambda text: self._send({"type": "caption", "text": text[:2000], "role": "assistant",
                                                      "final": False, "turn_id": reply.turn_id})
        reply.on_first_audio = lambda: self._status("speaking")
        return reply

    async def _answer(self, end_of_speech: float | None, prepared: _Prepared | None = None) -> None:
        assert self.conversation is not None
        self.job.analytics.turns += 1
        if prepared is not None:
            reply = prepared.reply
            self.job.analytics.speculative["used"] += 1
        else:
            reply = self._new_reply(Reply, turn_id=self.new_turn_id("r"), messages=self.conversation.messages(),
                                    end_of_speech=end_of_speech)
        turn_id = reply.turn_id
        self._status("thinking")
        heard, interrupted, failed = "", False, None
        try:
            heard, interrupted = await self._speak(reply, prepared)
        except* ProviderError as group:
            failed = group.exceptions[0]
        if failed is not None:  # a whole chain failed before its first piece: keep what was played, apologise
            self._owed = False
            unplayed = self.playout.queued()
            self.playout.flush()
            heard = reply.speech.heard(unplayed)
            if heard:
                self.conversation.add_assistant(heard)
                self._send({"type": "caption", "text": heard[:2000], "role": "assistant", "final": True,
                            "turn_id": reply.turn_id})
            self._save()
            await self._degraded("llm" if "llm_first_token" not in reply.timings else "tts",
                                 f"providers unavailable ({classify(failed).error.code})")
            return
        self._owed = interrupted and not heard
        self.job.analytics.fallbacks += reply.fallbacks
        if heard:
            self.conversation.add_assistant(heard)
        self._save()
        t = reply.timings
        log.info("turn %s: llm_first_token=%s tts_first_audio=%s voice_to_voice=%s providers=%s interrupted=%s "
                 "heard=%r", turn_id, _ms(t.get("llm_first_token")), _ms(t.get("tts_first_audio")),
                 _ms(t.get("voice_to_voice")), reply.providers_used, interrupted, heard)

    async def _speak(self, reply: Reply, prepared: _Prepared | None = None) -> tuple[str, bool]:
        """Run ``reply`` in its barge-in scope (or release the ``prepared`` one, already running in its own);
        caption and return (what was heard, whether it was cut)."""
        self._unplayed = 0
        if prepared is None:
            with trio.CancelScope() as scope:
                self._reply_scope = scope
                try:
                    await reply.run()
                finally:
                    self._reply_scope = None
            interrupted = scope.cancelled_caught
        else:
            self._reply_scope = prepared.scope
            try:
                assert reply.gate is not None
                reply.gate.set()
                await prepared.done.wait()
            finally:
                self._reply_scope = None
            interrupted = prepared.scope.cancelled_caught
            if prepared.error is not None:
                raise prepared.error
        heard = reply.speech.heard(self._unplayed if interrupted else 0)
        if heard:
            self._send({"type": "caption", "text": heard[:2000], "role": "assistant", "final": True,
                        "turn_id": reply.turn_id})
        self._status("listening")
        return heard, interrupted

    async def _degraded(self, kind: str, detail: str) -> None:
        self.job.analytics.degraded += 1
        self._status("degraded", f"{kind}: {detail}")
        reply = self._new_reply(Reply, turn_id=self.new_turn_id("a"), text=APOLOGY, apology=True)
        try:
            await self._speak(reply)
        except* ProviderError:
            log.warning("assistant %s: even the offline apology failed", self.peer_id)
            self._status("listening")

    def _save(self) -> None:
        assert self.conversation is not None
        self.job.conversation = self.conversation.to_dict()


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}ms"
