"""The chaos suite: seeded simulated-client workloads under random fault plans, with invariants.

``run_seed(seed)`` runs one seed in a fresh ``trio.run`` on ``MockClock(autojump_threshold=0)`` against a
fresh in-process :class:`ChaosServer` and returns a :class:`SeedResult` (violations, journal, injections,
error counts). The same seed and plan give a byte-identical journal; ``voicebot chaos --seed N [--plan FILE]``
replays a seed. ``run_cluster_seed(seed, redis=..., db_url=...)`` runs the multi-hub workload (2–3 hubs in
cluster mode over a real ``redis-server``, one hub lost mid-run, a Redis outage window) on the real clock; the
same seed gives the same steps and faults (``cluster_schedule``), the invariants hold in every run. See
``voicebot/chaos/cli.py`` for the command line and ``_invariants.py`` for the checks.
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._clients import SimClient
    from ._cluster_checks import ClusterChaosServer, ClusterSimClient
    from ._cluster_plan import CLUSTER_ACTIONS, ClusterChaosConfig, ClusterSchedule, ClusterStep, cluster_schedule
    from ._cluster_run import ClusterSeedResult, run_cluster_seed
    from ._invariants import LOBBY_SCOPED, ChaosServer, check_end, check_error_accounting, check_state
    from ._persist import AuditRecorder, journal_breaker_event
    from ._plan import POINTS, default_plan
    from ._runner import ACTIONS, ChaosConfig, SeedResult, chaos_settings, run_seed

__all__ = [
    "ACTIONS",
    "CLUSTER_ACTIONS",
    "LOBBY_SCOPED",
    "POINTS",
    "AuditRecorder",
    "ChaosConfig",
    "ChaosServer",
    "ClusterChaosConfig",
    "ClusterChaosServer",
    "ClusterSchedule",
    "ClusterSeedResult",
    "ClusterSimClient",
    "ClusterStep",
    "SeedResult",
    "SimClient",
    "chaos_settings",
    "check_end",
    "check_error_accounting",
    "check_state",
    "cluster_schedule",
    "default_plan",
    "journal_breaker_event",
    "run_cluster_seed",
    "run_seed",
]

__getattr__ = lazy_exports(__name__, {
    "SimClient": "._clients",
    "ClusterChaosServer": "._cluster_checks",
    "ClusterSimClient": "._cluster_checks",
    "CLUSTER_ACTIONS": "._cluster_plan",
    "ClusterChaosConfig": "._cluster_plan",
    "ClusterSchedule": "._cluster_plan",
    "ClusterStep": "._cluster_plan",
    "cluster_schedule": "._cluster_plan",
    "ClusterSeedResult": "._cluster_run",
    "run_cluster_seed": "._cluster_run",
    "LOBBY_SCOPED": "._invariants",
    "ChaosServer": "._invariants",
    "check_end": "._invariants",
    "check_error_accounting": "._invariants",
    "check_state": "._invariants",
    "AuditRecorder": "._persist",
    "journal_breaker_event": "._persist",
    "POINTS": "._plan",
    "default_plan": "._plan",
    "ACTIONS": "._runner",
    "ChaosConfig": "._runner",
    "SeedResult": "._runner",
    "chaos_settings": "._runner",
    "run_seed": "._runner",
})
