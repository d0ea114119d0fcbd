"""Static files of the web client: content types, strong ETags (304 on If-None-Match), gzip when it helps.

Files are read and hashed (and compressed) off the event loop, once per version of a file (cached by its
modification time and size). A request path is percent-decoded and refused when any segment is empty, ``.``,
``..``, hidden, or holds a backslash or NUL, and the resolved file must still lie under the root (symlinks
pointing out are refused too): no path traversal.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import unquote

import attrs
import trio

from ._app import Request, Response, text_response

__all__ = ["CACHE_CONTROL", "StaticFiles", "accepts_gzip"]

#: Every file is revalidated on each use (cheap: a 304 by ETag). File names carry no content hash, so a longer
#: max-age could pair a new page with old scripts after an upgrade.
CACHE_CONTROL = "no-cache"
#: Smaller files are never compressed (gzip's header and a round of CPU cost more than they save).
GZIP_MIN_BYTES = 512

_TYPES = {
    ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
    ".json": "application/json", ".webmanifest": "application/manifest+json", ".svg": "image/svg+xml",
    ".png": "image/png", ".ico": "image/x-icon", ".wasm": "application/wasm", ".txt": "text/plain; charset=utf-8",
    ".wav": "audio/wav", ".ogg": "audio/ogg", ".map": "application/json",
}
_COMPRESSIBLE = ("text/", "application/json", "application/manifest+json", "image/svg+xml", "application/wasm")


def content_type(path: Path) -> str:
    """The ``Content-Type`` for ``path`` (charset for text)."""
    known = _TYPES.get(path.suffix.lower())
    if known is not None:
        return known
    import mimetypes  # noqa: PLC0415 (loaded for the first file of an unlisted type, not by every server)

    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip (``gzip;q=0`` does not; ``*`` does)."""
    allowed: dict[str, bool] = {}
    for item in accept_encoding.split(","):
        name, _, params = item.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        allowed[name.strip().lower()] = q > 0
    return allowed.get("gzip", allowed.get("*", False))


def _matches(if_none_match: str, etag: str) -> bool:
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in tags or etag in tags


@attrs.frozen
class _Asset:
    key: tuple[int, int]
    body: bytes
    etag: str
    gzipped: bytes | None


def _load(path: Path, key: tuple[int, int], ctype: str) -> _Asset:
    body = path.read_bytes()
    digest = hashlib.sha256(body).hexdigest()[:32]
    gzipped = None
    if len(body) >= GZIP_MIN_BYTES and ctype.startswith(_COMPRESSIBLE):
        import gzip  # noqa: PLC0415 (loaded with the first compressible file, not by every server)

        packed = gzip.compress(body, compresslevel=6, mtime=0)
        gzipped = packed if len(packed) < len(body) * 0.9 else None
    return _Asset(key, body, f'"{digest}"', gzipped)


class StaticFiles:
    """Files under ``root`` served by path (see the module docs for caching and safety)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._cache: dict[Path, _Asset] = {}

    def resolve(self, relative: str) -> Path | None:
        """The file for a URL path below the root, or None when it is unsafe or missing."""
        name = unquote(relative, errors="strict") if "%" in relative else relative
        parts = name.split("/")
        if any(not p or p in (".", "..") or p.startswith(".") or "\\" in p or "\x00" in p for p in parts):
            return None
        candidate = self.root.joinpath(*parts)
        try:
            real = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not real.is_relative_to(self.root) or not real.is_file():
            return None
        return real

    async def serve(self, request: Request, relative: str) -> Response:
        """200 with the file (gzip when accepted and smaller), 304 when the client's ETag matches, else 404."""
        try:
            path = self.resolve(relative)
        except UnicodeDecodeError:
            path = None
        if path is None:
            return text_response(404, f"no such file: {relative[:200]}\n")
        try:
            stat = path.stat()
        except OSError:  # removed since it was resolved
            return text_response(404, f"no such file: {relative[:200]}\n")
        key = (stat.st_mtime_ns, stat.st_size)
        ctype = content_type(path)
        asset = self._cache.get(path)
        if asset is None or asset.key != key:
            asset = await trio.to_thread.run_sync(_load, path, key, ctype)
            self._cache[path] = asset
        use_gzip = asset.gzipped is not None and accepts_gzip(request.header("accept-encoding"))
        etag = f'{asset.etag[:-1]}-gz"' if use_gzip else asset.etag
        headers: list[tuple[str, str]] = [("etag", etag), ("cache-control", CACHE_CONTROL),
                                          ("x-content-type-options", "nosniff")]
        if asset.gzipped is not None:
            headers.append(("vary", "Accept-Encoding"))
        if _matches(request.header("if-none-match"), etag):
            return Response(304, tuple(headers))
        headers.append(("content-type", ctype))
        if use_gzip:
            headers.append(("content-encoding", "gzip"))
        return Response(200, tuple(headers), asset.gzipped if use_gzip and asset.gzipped else asset.body)


def web_root() -> Path:
    """``voicebot/web`` inside the installed package (shipped as package data)."""
    return Path(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))) / "web"
