"""The ``assistant`` bot: a voice assistant you talk to (VAD → STT → LLM → TTS, barge-in, captions).

- :class:`AssistantBot` — the MediaBot (floor control, barge-in, captions and ``bot.status``).
- :class:`AssistantOptions` (``bot.add`` options), :class:`AssistantConfig` (worker-wide settings).
- :data:`MEMORY` — per-process job memory (conversation across restarts, analytics for ``admin.stats``).
- Building blocks: :class:`Endpointer` (turn ends), :class:`SentenceSplitter`, :func:`heard_part`,
  :class:`Playout`, :class:`Speech`.

Each name loads its module on first use: a worker that only advertises the assistant (or reads :data:`MEMORY`)
does not load the speech stack.
"""

from typing import TYPE_CHECKING

from ..._lazy import lazy_exports

if TYPE_CHECKING:
    from ._assistant import INBOX_SIZE, OUTBOX_SIZE, AssistantBot
    from ._endpoint import CHUNK_SAMPLES, Downsampler, Endpointer, EndpointEvent, SileroVad
    from ._listener import Listener, Utterance
    from ._memory import MEMORY, AssistantAnalytics, AssistantMemory, JobMemory, percentile
    from ._options import DEFAULT_GREETING, MAX_GREETING_CHARS, MAX_PERSONA_CHARS, AssistantConfig, AssistantOptions
    from ._playout import Playout, Speech
    from ._text import SentenceSplitter, heard_part

__all__ = [
    "CHUNK_SAMPLES",
    "DEFAULT_GREETING",
    "INBOX_SIZE",
    "MAX_GREETING_CHARS",
    "MAX_PERSONA_CHARS",
    "MEMORY",
    "OUTBOX_SIZE",
    "AssistantAnalytics",
    "AssistantBot",
    "AssistantConfig",
    "AssistantMemory",
    "AssistantOptions",
    "Downsampler",
    "EndpointEvent",
    "Endpointer",
    "JobMemory",
    "Listener",
    "Playout",
    "SentenceSplitter",
    "SileroVad",
    "Speech",
    "Utterance",
    "heard_part",
    "percentile",
]

__getattr__ = lazy_exports(__name__, {
    "INBOX_SIZE": "._assistant",
    "OUTBOX_SIZE": "._assistant",
    "AssistantBot": "._assistant",
    "CHUNK_SAMPLES": "._endpoint",
    "Downsampler": "._endpoint",
    "Endpointer": "._endpoint",
    "EndpointEvent": "._endpoint",
    "SileroVad": "._endpoint",
    "Listener": "._listener",
    "Utterance": "._listener",
    "MEMORY": "._memory",
    "AssistantAnalytics": "._memory",
    "AssistantMemory": "._memory",
    "JobMemory": "._memory",
    "percentile": "._memory",
    "DEFAULT_GREETING": "._options",
    "MAX_GREETING_CHARS": "._options",
    "MAX_PERSONA_CHARS": "._options",
    "AssistantConfig": "._options",
    "AssistantOptions": "._options",
    "Playout": "._playout",
    "Speech": "._playout",
    "SentenceSplitter": "._text",
    "heard_part": "._text",
})
