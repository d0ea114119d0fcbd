"""The voicebot server: a Trio WebSocket shell around the sans-IO hub core."""

from ._connection import Connection
from ._server import Server
from ._settings import Settings, add_arguments, settings_from

__all__ = ["Connection", "Server", "Settings", "add_arguments", "settings_from"]
