"""The chaos suite: seeded simulated-client workloads under random fault plans, with invariants.

``run_seed(seed)`` runs one seed in a fresh ``trio.run`` on ``MockClock(autojump_threshold=0)`` against a
fresh in-process :class:`ChaosServer` and returns a :class:`SeedResult` (violations, journal, injections,
error counts). The same seed and plan give a byte-identical journal; ``voicebot chaos --seed N [--plan FILE]``
replays a seed. See ``voicebot/chaos/cli.py`` for the command line and ``_invariants.py`` for the checks.
"""

from ._clients import SimClient
from ._invariants import LOBBY_SCOPED, ChaosServer, check_end, check_error_accounting, check_state
from ._persist import AuditRecorder, journal_breaker_event
from ._plan import POINTS, default_plan
from ._runner import ACTIONS, ChaosConfig, SeedResult, chaos_settings, run_seed

__all__ = [
    "ACTIONS",
    "LOBBY_SCOPED",
    "POINTS",
    "AuditRecorder",
    "ChaosConfig",
    "ChaosServer",
    "SeedResult",
    "SimClient",
    "chaos_settings",
    "check_end",
    "check_error_accounting",
    "check_state",
    "default_plan",
    "journal_breaker_event",
    "run_seed",
]
