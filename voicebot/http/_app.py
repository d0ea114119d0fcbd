"""Routing for the HTTP surface: a table of exact paths plus static prefixes, answering 404/405/HEAD uniformly.

Handlers are plain callables ``(request) -> Response`` (async): they never see the socket, so the same table
serves ``voicebot serve`` (page, health, readiness, metrics) and ``voicebot worker --metrics-port`` (health,
metrics), and tests can call :meth:`HttpApp.respond` without a network.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs

__all__ = ["HttpApp", "Request", "Response", "json_response", "text_response"]


@attrs.frozen
class Request:
    """One parsed request head (h11 did the parsing). ``headers`` keys are lower-case; repeated ones joined by
    ``", "`` as RFC 9110 allows."""

    method: str
    target: str
    headers: Mapping[str, str]
    remote: str = "unknown"

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.split("?", 1)[0]

    def header(self, name: str, default: str = "") -> str:
        """A header value (name lower-case)."""
        return self.headers.get(name, default)


@attrs.frozen
class Response:
    """A complete response (bodies are small: pages, JSON, metrics text)."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


def text_response(status: int, text: str, *extra: tuple[str, str]) -> Response:
    """A ``text/plain`` response (one line of explanation for errors)."""
    return Response(status, (("content-type", "text/plain; charset=utf-8"), *extra), text.encode())


def json_response(status: int, payload: Any, *extra: tuple[str, str]) -> Response:
    """A JSON response that is never cached (health and readiness change from one request to the next)."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Response(status, (("content-type", "application/json"), ("cache-control", "no-store"), *extra), body)


Handler = Callable[[Request], Awaitable[Response]]


@attrs.define
class _Route:
    handler: Handler
    methods: frozenset[str]


class HttpApp:
    """Exact routes and prefix routes. ``GET`` routes also answer ``HEAD`` (same headers, no body)."""

    def __init__(self) -> None:
        self._exact: dict[str, _Route] = {}
        self._prefixes: list[tuple[str, _Route]] = []

    def route(self, path: str, handler: Handler, methods: tuple[str, ...] = ("GET",)) -> None:
        """Serve ``path`` exactly with ``handler`` for ``methods``."""
        self._exact[path] = _Route(handler, _with_head(methods))

    def prefix(self, prefix: str, handler: Handler, methods: tuple[str, ...] = ("GET",)) -> None:
        """Serve every path starting with ``prefix`` (e.g. ``/static/``) with ``handler``."""
        self._prefixes.append((prefix, _Route(handler, _with_head(methods))))

    def allowed(self, path: str) -> frozenset[str] | None:
        """The methods ``path`` accepts, or None when no route matches (404)."""
        route = self._match(path)
        return route.methods if route is not None else None

    async def respond(self, request: Request) -> Response:
        """The response to ``request``: the handler's, or 404 / 405 (with ``Allow``)."""
        route = self._match(request.path)
        if route is None:
            return text_response(404, f"no such page: {request.path[:200]}\n")
        if request.method not in route.methods:
            allow = ", ".join(sorted(route.methods))
            return text_response(405, f"{request.method} is not allowed here (allowed: {allow})\n", ("allow", allow))
        return await route.handler(request)

    def _match(self, path: str) -> _Route | None:
        route = self._exact.get(path)
        if route is not None:
            return route
        for prefix, candidate in self._prefixes:
            if path.startswith(prefix):
                return candidate
        return None


def _with_head(methods: tuple[str, ...]) -> frozenset[str]:
    out = set(methods)
    if "GET" in out:
        out.add("HEAD")
    return frozenset(out)
