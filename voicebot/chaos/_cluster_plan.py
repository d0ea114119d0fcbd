"""The multi-hub chaos workload's schedule: every step and fault of one seed, drawn before the run starts.

The schedule depends only on the seed and the :class:`ClusterChaosConfig` (never on what the hubs answer), so
the same seed replays the same steps and the same faults — which hub dies after which step, when Redis goes
down and for how many steps. What the hubs do in between runs on the real clock with a real ``redis-server``
(pub/sub delivery, expiry, reconnection timing), so journals are not byte-identical between runs; the
invariants are what each run must satisfy.
"""

from __future__ import annotations

import random

import attrs

from voicebot import faults

__all__ = ["CLUSTER_ACTIONS", "ClusterChaosConfig", "ClusterSchedule", "ClusterStep", "cluster_schedule"]

#: Workload actions of the multi-hub workload and their relative weights.
CLUSTER_ACTIONS: tuple[tuple[str, int], ...] = (
    ("connect", 3), ("create", 2), ("join", 5), ("leave", 1), ("chat", 8), ("signal", 3), ("list", 1),
    ("drop", 1), ("close", 1), ("sleep", 1),
)
_NAMES = [name for name, _ in CLUSTER_ACTIONS]
_WEIGHTS = [weight for _, weight in CLUSTER_ACTIONS]


@attrs.frozen(kw_only=True)
class ClusterChaosConfig:
    """Size and timing of one multi-hub seed (timers shorter than production's so a seed takes seconds)."""

    hubs: int = attrs.field(default=3, validator=attrs.validators.in_(range(2, 9)))
    clients: int = attrs.field(default=8, validator=attrs.validators.ge(2))
    steps: int = attrs.field(default=60, validator=attrs.validators.ge(10))
    kill_hub: bool = True
    """Cancel one hub mid-run without any goodbye (its Redis keys expire; its peers leave ``disconnected``)."""
    redis_outage: bool = True
    """Stop ``redis-server`` for a window of steps, then start it again (empty)."""
    outage_steps: int = 6
    heartbeat: float = 0.5
    """Each hub's cluster heartbeat (production: 1 s)."""
    hub_ttl: float = 2.0
    """Seconds a hub's Redis key outlives its last heartbeat (production: 5 s)."""
    resume_grace: float = 2.0
    converge_timeout: float = 10.0
    """Seconds the hubs get to agree on membership at a checkpoint before it counts as a violation."""
    reply_timeout: float = 6.0
    """Seconds every request gets for its answer (Redis calls have a 2 s deadline)."""


@attrs.frozen
class ClusterStep:
    """One workload step: ``action`` by client ``client``; ``hub`` is where it connects if it must; ``arg`` picks
    a lobby, a peer or a sleep."""

    n: int
    action: str
    client: int
    hub: int
    arg: int


@attrs.frozen
class ClusterSchedule:
    """Every step and fault of one seed."""

    seed: int
    steps: tuple[ClusterStep, ...]
    kill_at: int | None
    """The hub dies before this step (None: no hub dies)."""
    killed_hub: int | None
    outage: tuple[int, int] | None
    """Redis is down from before step ``start`` to before step ``end``."""

    def describe(self) -> str:
        """The schedule as text, one line per step and fault (equal for equal seeds and configurations)."""
        lines = [f"seed {self.seed}: kill hub {self.killed_hub} before step {self.kill_at}; redis outage "
                 f"{self.outage}"]
        lines += [f"{s.n} {s.action} client={s.client} hub={s.hub} arg={s.arg}" for s in self.steps]
        return "\n".join(lines) + "\n"


def cluster_schedule(seed: int, config: ClusterChaosConfig) -> ClusterSchedule:
    """Draw the schedule of ``seed`` from its own SHA-256-derived stream (independent of the fault plan's)."""
    rng = random.Random(faults.stream_seed(seed, "cluster-workload"))
    n = config.steps
    kill_at = rng.randrange(n * 3 // 10, n // 2) if config.kill_hub else None
    killed = rng.randrange(config.hubs) if config.kill_hub else None
    outage = None
    if config.redis_outage:
        start = rng.randrange(n * 6 // 10, n * 8 // 10)
        outage = (start, min(n, start + config.outage_steps))
    steps = []
    for i in range(n):
        live = [h for h in range(config.hubs) if kill_at is None or i < kill_at or h != killed]
        steps.append(ClusterStep(i, rng.choices(_NAMES, _WEIGHTS)[0], rng.randrange(config.clients),
                                 rng.choice(live), rng.randrange(1 << 30)))
    return ClusterSchedule(seed, tuple(steps), kill_at, killed, outage)
