"""Workload size defaults, apart from the runner so that building the ``voicebot`` command line loads no runner
(the runner needs ``trio.testing``, which brings pytest: ~9 MiB in every ``voicebot serve``)."""

DEFAULT_CLIENTS = 4
"""Simulated clients per seed."""
DEFAULT_STEPS = 30
"""Workload steps per seed."""
