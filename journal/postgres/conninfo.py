"""Journal URLs: fleetlog's ``?schema=`` parameter, and URLs and errors fit for messages."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


def split_url(url: str) -> tuple[str, str | None]:
    """``url`` without fleetlog's own ``schema=`` query parameter, and that schema.

    libpq refuses unknown parameters, so ``postgresql://host/db?schema=fleet_a`` is taken
    apart here: the journal lives in PostgreSQL schema ``fleet_a`` of database ``db``."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    chosen = [v for k, v in query if k == "schema"]
    rest = [(k, v) for k, v in query if k != "schema"]
    if not chosen:
        return url, None
    return urlunsplit(parts._replace(query=urlencode(rest))), chosen[-1]


def redacted(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
