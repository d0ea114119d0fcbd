"""Media tests run on the real clock (aiortc runs in a real asyncio loop), each bounded by ``trio.fail_after``."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _real_clock(request: pytest.FixtureRequest) -> None:
    """Media needs the real clock: under the autojump clock virtual time races ahead of UDP."""
    assert "autojump_clock" not in request.fixturenames
