"""Database locations: which backend a ``--db`` value selects, and a loggable form of it."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["POSTGRES_SCHEMES", "is_postgres_url", "redact_url"]

#: URL schemes that select :class:`~voicebot.store.PostgresStore` (libpq accepts both).
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(location: str) -> bool:
    """True if ``location`` is a PostgreSQL URL; anything else is an SQLite path (or ``:memory:``)."""
    return location.strip().lower().startswith(POSTGRES_SCHEMES)


def redact_url(location: str) -> str:
    """``location`` with any password (in the user part or a ``password=`` parameter) replaced by ``***``.

    SQLite paths come back unchanged. Use it wherever a database location is logged, shown in statistics
    or put into an error: a URL's password must never leave the process.
    """
    if not is_postgres_url(location):
        return location
    try:
        parts = urlsplit(location.strip())
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            if ":" in userinfo:
                userinfo = userinfo.split(":", 1)[0] + ":***"
            netloc = f"{userinfo}@{hostport}"
        query = parts.query
        if query:
            pairs = [(k, "***" if k.lower() == "password" else v) for k, v in parse_qsl(query, keep_blank_values=True)]
            query = urlencode(pairs, safe="*")
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:  # unparsable: keep only the scheme and host-ish part, never the secret
        return re.sub(r"//[^@/]*@", "//***@", location)
