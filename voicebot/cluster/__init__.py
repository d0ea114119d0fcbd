"""Cluster mode (``voicebot serve --cluster redis://HOST:PORT/DB``): several hubs, one service, through Redis.

:class:`Cluster` is the whole seam between the server and the cluster: it mirrors members on other hubs into
the local hub core, keeps lobby membership and caps in Redis (atomic Lua scripts), publishes messages for
other hubs' peers and delivers theirs, reconciles with Redis every heartbeat, shares resumable sessions (a
``hello {resume}`` works on any hub), and carries admin requests, bot starts and name registrations to the
other hubs. :func:`error_from_wire` rebuilds an error another hub answered. Every Redis call has a
deadline and goes through the ``cluster`` circuit breaker and the ``cluster.redis`` fault point; when Redis
cannot be reached, cross-hub operations fail with the retryable ``cluster_unavailable`` error
(:func:`cluster_unavailable`) and local lobbies keep working.
"""

from ._bots import error_from_wire
from ._cluster import Cluster
from ._link import PREFIX
from ._link import unavailable as cluster_unavailable

__all__ = ["PREFIX", "Cluster", "cluster_unavailable", "error_from_wire"]
