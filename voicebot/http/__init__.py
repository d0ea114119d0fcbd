"""The HTTP surface beside ``/ws``: h11 framing, routing, static files and the origin policy.

One listener serves both: :func:`serve_http` answers plain HTTP and returns an :class:`Upgrade` (with a stream
that replays the request) for WebSocket handshakes, which trio-websocket then performs.
"""

from ._app import HttpApp, Request, Response, json_response, text_response
from ._listen import serve_app
from ._origin import DEFAULT_ALLOWED_ORIGINS, OriginPolicy
from ._static import StaticFiles, accepts_gzip, web_root
from ._wire import ReplayStream, Upgrade, serve_http

__all__ = [
    "DEFAULT_ALLOWED_ORIGINS",
    "HttpApp",
    "OriginPolicy",
    "ReplayStream",
    "Request",
    "Response",
    "StaticFiles",
    "Upgrade",
    "accepts_gzip",
    "json_response",
    "serve_app",
    "serve_http",
    "text_response",
    "web_root",
]
