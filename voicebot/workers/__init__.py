"""Bot workers: the hub-side scheduler extension and the worker runtime.

- Hub side: :func:`install_bot_hub` adds ``bot.list``/``bot.add``/``bot.remove`` and the ``worker.*``
  messages to a :class:`~voicebot.server.Server` (:class:`BotHub`, :class:`Scheduler`).
- Worker side: :class:`Worker` registers with a hub and runs bots on demand; :func:`run_local_worker` runs
  one inside the server process (on a thread of its own, or in the caller's Trio run for tests);
  :func:`run_worker_process` runs it as a supervised child process (what ``voicebot serve`` starts by default).
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._hub import BotHub, BotHubSettings, install_bot_hub
    from ._local import run_local_worker, thread_connector
    from ._process import WorkerProcessFailed, run_worker_process
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
    "WorkerProcessFailed",
    "WorkerRegister",
    "WorkerStarted",
    "WorkerStopped",
    "install_bot_hub",
    "memory_connector",
    "run_local_worker",
    "run_worker_process",
    "thread_connector",
    "url_connector",
]

__getattr__ = lazy_exports(__name__, {
    "BotHub": "._hub",
    "BotHubSettings": "._hub",
    "install_bot_hub": "._hub",
    "run_local_worker": "._local",
    "thread_connector": "._local",
    "WorkerProcessFailed": "._process",
    "run_worker_process": "._process",
    "BotAdd": "._protocol",
    "BotList": "._protocol",
    "BotRemove": "._protocol",
    "WorkerFailed": "._protocol",
    "WorkerRegister": "._protocol",
    "WorkerStarted": "._protocol",
    "WorkerStopped": "._protocol",
    "Job": "._scheduler",
    "JobState": "._scheduler",
    "Scheduler": "._scheduler",
    "WorkerInfo": "._scheduler",
    "Connector": "._worker",
    "Worker": "._worker",
    "WorkerConfig": "._worker",
    "memory_connector": "._worker",
    "url_connector": "._worker",
})
