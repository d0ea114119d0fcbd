"""Trio-native wrapper around ``aiortc.RTCPeerConnection``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Any, Literal, TypeVar

import trio
from aiortc import RTCIceCandidate, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.sdp import candidate_from_sdp

from voicebot import faults
from voicebot.errors import VoiceBotError, WebRTCError, split_passthrough
from voicebot.metrics import count_refused_candidate

from ._channels import DropOldestChannel
from ._config import MediaConfig
from ._hostaddr import host_address_policy, reset_host_address_policy
from ._runtime import MediaRuntime, current_media_runtime, logger
from ._sdp import SessionDescription, rtc_configuration
from ._tracks import AudioSender, IncomingTrack

__all__ = ["PeerConnection"]

T = TypeVar("T")
_TERMINAL = frozenset({"failed", "closed"})


class PeerConnection:
    """One WebRTC peer connection, used from Trio::

        async with open_media_loop():
            async with PeerConnection(MediaConfig()) as pc:
                audio = await pc.add_audio_sender()
                answer = await pc.create_answer(offer)
                ...

    Events arrive on bounded channels (``connection_states``, ``ice_states``, ``incoming_tracks``); every
    coroutine has a deadline (``MediaConfig.negotiation_timeout``) and raises :class:`WebRTCError` on failure.
    Leaving the ``async with`` (or :meth:`aclose`) closes the connection shielded and bounded.
    """

    def __init__(self, config: MediaConfig | None = None, *, runtime: MediaRuntime | None = None) -> None:
        self.config = config if config is not None else MediaConfig()
        """The settings this connection was created with."""
        self._ice_policy = self.config.ice_policy
        self.refused_candidates = 0
        """Remote ICE candidates refused by the policy (trickled or inside a remote description)."""
        self._runtime_arg = runtime
        self._runtime: MediaRuntime | None = None
        self._pc: RTCPeerConnection | None = None
        self._cm: AbstractAsyncContextManager[PeerConnection] | None = None
        self._senders: list[AudioSender] = []
        self._incoming: list[IncomingTrack] = []
        self._closing = False
        self._op_scopes: set[trio.CancelScope] = set()
        self._closed = trio.Event()
        self._changed = trio.Event()
        self.connection_state = "new"
        """Latest ``connectionState`` (``new/connecting/connected/disconnected/failed/closed``)."""
        self.ice_connection_state = "new"
        """Latest ``iceConnectionState``."""
        self.close_error: VoiceBotError | None = None
        """Set if the close did not finish within ``close_timeout`` (the connection is abandoned, not hung)."""
        self.setup_time: float | None = None
        """Seconds from the first offer/answer call to ``connected`` (None until connected)."""
        self._started_at: float | None = None
        self._conn_events = DropOldestChannel[str](self.config.event_queue_size)
        self._ice_events = DropOldestChannel[str](self.config.event_queue_size)
        self._track_events = DropOldestChannel[IncomingTrack](self.config.event_queue_size)
        self.connection_states: trio.MemoryReceiveChannel[str] = self._conn_events.receive
        """Every ``connectionState`` change; ends after the close."""
        self.ice_states: trio.MemoryReceiveChannel[str] = self._ice_events.receive
        """Every ``iceConnectionState`` change; ends after the close."""
        self.incoming_tracks: trio.MemoryReceiveChannel[IncomingTrack] = self._track_events.receive
        """Tracks received from the remote peer, each already pumped into its own frame channel."""

    # -- lifecycle ----------------------------------------------------------------------------------------

    async def __aenter__(self) -> PeerConnection:
        self._cm = self._lifecycle()
        return await self._cm.__aenter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        assert self._cm is not None
        return await self._cm.__aexit__(exc_type, exc, tb)

    @asynccontextmanager
    async def _lifecycle(self) -> AsyncIterator[PeerConnection]:
        runtime = self._runtime_arg or current_media_runtime()
        self._runtime = runtime
        await faults.point("media.setup")
        self._pc = await self._call("create", self._create)
        runtime.stats.peer_connections_opened += 1
        try:
            yield self
        finally:
            await self.aclose()

    async def _create(self) -> RTCPeerConnection:
        pc = RTCPeerConnection(configuration=rtc_configuration(self.config))
        pc.on("connectionstatechange", lambda: self._guard(self._on_connection_state))
        pc.on("iceconnectionstatechange", lambda: self._guard(self._on_ice_state))
        pc.on("track", lambda track: self._guard(self._on_track, track))
        return pc

    @property
    def pc(self) -> RTCPeerConnection:
        """The underlying aiortc object (asyncio side; only call it from asyncio code)."""
        if self._pc is None:
            raise WebRTCError("peer connection is not open", code="peer_not_open")
        return self._pc

    @property
    def runtime(self) -> MediaRuntime:
        """The media runtime this connection lives in."""
        if self._runtime is None:
            raise WebRTCError("peer connection is not open", code="peer_not_open")
        return self._runtime

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` finished (or gave up after its deadline)."""
        return self._closed.is_set()

    # -- callbacks (sync, run on the asyncio side; must never raise) --------------------------------------

    def _guard(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:
            if self._runtime is not None:
                self._runtime.stats.callback_errors += 1
                self._runtime.record_error(exc, callback=getattr(fn, "__name__", "?"))

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        self.connection_state = state
        if state == "connected" and self.setup_time is None and self._started_at is not None:
            self.setup_time = time.monotonic() - self._started_at
        self._conn_events.put(state)
        self._notify()

    def _on_ice_state(self) -> None:
        self.ice_connection_state = self.pc.iceConnectionState
        self._ice_events.put(self.ice_connection_state)
        self._notify()

    def _on_track(self, track: MediaStreamTrack) -> None:
        incoming = IncomingTrack(track, self.config.incoming_queue_frames)
        self._incoming.append(incoming)
        incoming.task = self.runtime.spawn(incoming.pump(self.runtime))
        self._track_events.put(incoming)

    # -- operations ---------------------------------------------------------------------------------------

    async def _call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        if self._closing:
            raise WebRTCError("peer connection is closed", code="peer_closed")
        with trio.CancelScope() as scope:  # cancelled by aclose(): in-flight operations end at once
            self._op_scopes.add(scope)
            try:
                return await self.runtime.run(fn, *args, limit=self.config.negotiation_timeout)
            except BaseException as exc:
                passthrough, failure = split_passthrough(exc)
                if passthrough is not None:
                    raise
                assert failure is not None
                if self._closing:
                    raise WebRTCError("peer connection closed", code="peer_closed") from exc
                if isinstance(failure, trio.TooSlowError):
                    error: VoiceBotError = WebRTCError(
                        "webrtc operation timed out", code="negotiation_timeout", retryable=True
                    )
                    error.context["operation"] = what
                    self.runtime.stats.record(error)
                    raise error from exc
                error = self.runtime.record_error(failure, operation=what)
                if not isinstance(error, WebRTCError):  # e.g. aiortc's ValueError on unparsable SDP
                    wrapped = WebRTCError("webrtc operation failed", code="webrtc_operation_failed")
                    wrapped.context.update(error.context)
                    raise wrapped from failure
                raise error from (None if error is failure else failure)
            finally:
                self._op_scopes.discard(scope)
        raise WebRTCError("peer connection closed", code="peer_closed")  # only reached when aclose() cancelled us

    async def add_audio_sender(self) -> AudioSender:
        """Add an outgoing audio track fed by the returned :class:`AudioSender` (call before negotiating)."""
        sender = AudioSender(self.config.outgoing_queue_frames)

        async def add() -> None:
            self.pc.addTrack(sender.track)

        self._senders.append(sender)
        await self._call("add_track", add)
        return sender

    async def _set_local(self, description: RTCSessionDescription) -> None:
        token = host_address_policy(self.config)
        try:
            await self.pc.setLocalDescription(description)
        finally:
            reset_host_address_policy(token)

    def _local(self) -> SessionDescription:
        desc = self.pc.localDescription
        kind: Literal["offer", "answer"] = "offer" if desc.type == "offer" else "answer"
        return SessionDescription(type=kind, sdp=desc.sdp)

    async def create_offer(self) -> SessionDescription:
        """Create an offer, gather candidates, set it as local description and return it."""
        self._started_at = self._started_at or time.monotonic()

        async def offer() -> SessionDescription:
            await self._set_local(await self.pc.createOffer())
            return self._local()

        result: SessionDescription = await self._call("create_offer", offer)
        return result

    async def create_answer(self, offer: SessionDescription | Mapping[str, str]) -> SessionDescription:
        """Apply the remote ``offer``, create the answer, gather candidates and return the answer."""
        remote = self._to_rtc(offer)
        self._started_at = self._started_at or time.monotonic()

        async def answer() -> SessionDescription:
            await self.pc.setRemoteDescription(remote)
            await self._set_local(await self.pc.createAnswer())
            return self._local()

        result: SessionDescription = await self._call("create_answer", answer)
        return result

    async def set_remote_description(self, description: SessionDescription | Mapping[str, str]) -> None:
        """Apply the remote answer (or offer) as remote description."""
        remote = self._to_rtc(description)

        async def apply() -> None:
            await self.pc.setRemoteDescription(remote)

        await self._call("set_remote_description", apply)

    def _to_rtc(self, description: SessionDescription | Mapping[str, str]) -> RTCSessionDescription:
        """The aiortc form of a *remote* description, without the candidates the ICE policy refuses."""
        try:
            sdp, kind = ((description.sdp, str(description.type)) if isinstance(description, SessionDescription)
                         else (description["sdp"], description["type"]))
            sdp, refused = self._ice_policy.filter_sdp(str(sdp))
            for address, reason in refused:
                self._refuse_candidate(address, reason, "sdp")
            return RTCSessionDescription(sdp=sdp, type=kind)
        except (KeyError, ValueError) as exc:
            raise WebRTCError("invalid session description", code="invalid_sdp") from exc

    def _refuse_candidate(self, address: str, reason: str, source: str) -> None:
        self.refused_candidates += 1
        count_refused_candidate(source)
        logger.warning("refused remote ICE candidate %s (%s, %s)", address, reason, source)

    async def add_ice_candidate(self, candidate: Mapping[str, Any] | None) -> None:
        """Add a trickled remote candidate ``{"candidate", "sdpMid", "sdpMLineIndex"}`` as browsers send it;
        ``None`` or an empty ``candidate`` string signals end-of-candidates."""
        rtc: RTCIceCandidate | None = None
        if candidate is not None and candidate.get("candidate"):
            text = str(candidate["candidate"])
            try:
                rtc = candidate_from_sdp(text.removeprefix("candidate:"))
            except (ValueError, IndexError, AssertionError) as exc:  # aioice asserts on short input
                raise WebRTCError("invalid ICE candidate", code="invalid_candidate") from exc
            reason = self._ice_policy.refusal(str(rtc.ip))
            if reason is not None:  # never send connectivity checks there
                self._refuse_candidate(str(rtc.ip), reason, "trickle")
                return
            rtc.sdpMid = candidate.get("sdpMid")
            rtc.sdpMLineIndex = candidate.get("sdpMLineIndex")
            if rtc.sdpMid is None and rtc.sdpMLineIndex is None:
                rtc.sdpMLineIndex = 0

        async def add() -> None:
            await self.pc.addIceCandidate(rtc)

        await self._call("add_ice_candidate", add)

    async def restart_ice(self) -> None:
        """ICE restart. aiortc 1.16 implements none (no ``restartIce``, no ``iceRestart`` offer option), so
        this always raises ``WebRTCError(code="ice_restart_unsupported", recovery="rebuild_peer")``: rebuild
        the peer connection and renegotiate instead."""
        raise WebRTCError(
            "ICE restart is not supported; rebuild the peer connection",
            code="ice_restart_unsupported",
            recovery="rebuild_peer",
        )

    async def wait_connected(self) -> None:
        """Wait until ``connectionState`` is ``connected``; raises ``WebRTCError`` if it fails/closes or after
        ``negotiation_timeout``."""
        with trio.move_on_after(self.config.negotiation_timeout):
            while self.connection_state != "connected":
                if self.connection_state in _TERMINAL or self._closing:
                    raise WebRTCError("peer connection failed", code="connect_failed", retryable=True)
                await self._changed.wait()
            return
        raise WebRTCError("peer connection timed out", code="connect_timeout", retryable=True)

    # -- close --------------------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close: stop our outgoing tracks first (waking their pending ``recv``), then ``pc.close()``.

        Shielded, bounded by ``close_timeout``, never cancelled half-way (design.md known bugs 1 and 2),
        idempotent (a second call waits for the first, bounded). On timeout the close keeps running in the
        loop, ``close_error`` is set and counted, and this returns instead of hanging.
        """
        with trio.CancelScope(shield=True):
            if self._closing:
                with trio.move_on_after(self.config.close_timeout):
                    await self._closed.wait()
                return
            self._closing = True
            try:
                await self._close_once()
            finally:
                self._closed.set()
                self._notify()

    async def _close_once(self) -> None:
        for scope in self._op_scopes:  # release Trio waiters of in-flight operations (their tasks run on)
            scope.cancel()
        for sender in self._senders:
            sender.close()
        runtime, pc = self._runtime, self._pc
        if runtime is None or pc is None:
            return
        deadline = trio.current_time() + self.config.close_timeout
        task = runtime.spawn(pc.close())
        try:
            faults.check("media.close")  # sync (raise only): the close itself keeps running, bounded
            await runtime.wait_task(task, limit=self.config.close_timeout, cancel_on_abandon=False)
        except trio.TooSlowError:
            runtime.stats.close_timeouts += 1
            self.close_error = WebRTCError("peer connection close timed out", code="close_timeout")
            runtime.stats.record(self.close_error)
            logger.warning("peer connection close did not finish within %.1f s", self.config.close_timeout)
        except Exception as exc:
            self.close_error = runtime.record_error(exc, operation="close")
        else:
            runtime.stats.peer_connections_closed += 1
        for incoming in self._incoming:  # pumps end on MediaStreamError after pc.close(); wait, bounded
            if incoming.task is not None and not incoming.task.done():
                remaining = max(deadline - trio.current_time(), 0.05)
                try:
                    await runtime.wait_task(incoming.task, limit=remaining)
                except Exception as exc:
                    self.close_error = self.close_error or runtime.record_error(exc, operation="close_pump")
        if self.connection_state != "closed":
            self.connection_state = "closed"
            self._conn_events.put("closed")
        for channel in (self._conn_events, self._ice_events, self._track_events):
            channel.close()
