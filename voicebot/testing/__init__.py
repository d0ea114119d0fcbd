"""Tools for testing voicebot and code built on it: in-process servers on Trio's mock clock, simulated clients."""

from ._harness import FakePasswordHasher, FreezableStream, open_client, open_test_server, settings_for_tests

__all__ = ["FakePasswordHasher", "FreezableStream", "open_client", "open_test_server", "settings_for_tests"]
