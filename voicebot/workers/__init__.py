"""Bot workers: the hub-side scheduler extension and the worker runtime.

- Hub side: :func:`install_bot_hub` adds ``bot.list``/``bot.add``/``bot.remove`` and the ``worker.*``
  messages to a :class:`~voicebot.server.Server` (:class:`BotHub`, :class:`Scheduler`).
- Worker side: :class:`Worker` registers with a hub and runs bots on demand; :func:`run_local_worker` runs
  one inside the server process (what ``voicebot serve`` starts by default).
"""

from ._hub import BotHub, BotHubSettings, install_bot_hub
from ._local import run_local_worker
from ._protocol import BotAdd, BotList, BotRemove, WorkerFailed, WorkerRegister, WorkerStarted, WorkerStopped
from ._scheduler import Job, JobState, Scheduler, WorkerInfo
from ._worker import Connector, Worker, WorkerConfig, memory_connector, url_connector

__all__ = [
    "BotAdd",
    "BotHub",
    "BotHubSettings",
    "BotList",
    "BotRemove",
    "Connector",
    "Job",
    "JobState",
    "Scheduler",
    "Worker",
    "WorkerConfig",
    "WorkerFailed",
    "WorkerInfo",
    "WorkerRegister",
    "WorkerStarted",
    "WorkerStopped",
    "install_bot_hub",
    "memory_connector",
    "run_local_worker",
    "url_connector",
]
