"""Determinism helpers: the same seed must give the same schedule, ids, tokens and timestamps.

* Trio shuffles each batch of runnable tasks with an unseeded RNG unless its (private) flag
  ``trio._core._run._ALLOW_DETERMINISTIC_SCHEDULING`` is set — importing hypothesis sets it under pytest,
  but a command-line run must set it itself. :func:`deterministic_scheduling` sets the flag and reseeds
  Trio's scheduler RNG from the seed, so every fresh ``trio.run`` makes the same choices.
* The hub's resume tokens come from ``secrets`` and chat timestamps from ``time.time`` by default:
  :func:`make_deterministic` replaces both with seeded / virtual-clock versions.
"""

from __future__ import annotations

import random

import trio
import trio._core._run as _trio_run

from ..faults import stream_seed
from ..server import Server

__all__ = ["EPOCH", "deterministic_scheduling", "make_deterministic"]

#: Wall-clock seconds that virtual time 0 maps to in deterministic runs (2023-11-14T22:13:20Z).
EPOCH = 1_700_000_000.0


def deterministic_scheduling(seed: int) -> None:
    """Make Trio's scheduler deterministic for the next ``trio.run`` in this process (see module docstring).

    Uses Trio private API (documented there as the Hypothesis integration hook); the flag stays set.
    """
    setattr(_trio_run, "_ALLOW_DETERMINISTIC_SCHEDULING", True)  # noqa: B010 -- Final in trio's stubs
    _trio_run._r.seed(stream_seed(seed, "trio-scheduler"))


def _virtual_wall_clock() -> float:
    return EPOCH + trio.current_time()


def make_deterministic(server: Server) -> Server:
    """Give ``server``'s hub seeded resume tokens and a wall clock derived from Trio's (virtual) clock."""
    tokens = random.Random(server.rng.getrandbits(64))

    def new_token() -> str:
        return f"t{tokens.getrandbits(256):064x}"

    server.hub.new_token = new_token
    server.hub.wall_clock = _virtual_wall_clock
    return server
