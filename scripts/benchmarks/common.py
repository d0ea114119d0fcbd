"""Constants shared by the relay benchmark's parts."""

from __future__ import annotations

import os
import re
from pathlib import Path

SCRIPT = (Path(__file__).resolve().parent.parent / "bench_relay.py")
"""The entry point (re-run with ``--hub-server`` / ``--echo-server`` for the server processes)."""
ROOT = SCRIPT.parent.parent
MARK = "s=bench "
CLOSE_MARK = "\\r"  # the JSON escape of the CR ending the marker line, as it appears in the raw frame text
LISTEN_RE = re.compile(r"listening on (ws://\S+)")
FAULT_STUBS = ("point", "check", "message", "record", "record_error", "invariant")
CLK_TCK = os.sysconf("SC_CLK_TCK")
