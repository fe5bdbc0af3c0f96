"""What a database error means for the caller: is the database unavailable (retry the same
work until it is back), or did this work fail (the ordinary retry budget applies)?

A consumer that naks on every error spends its ``max_deliver`` during a Postgres outage and
then JetStream stops delivering the message: acknowledged data would be lost to an outage
longer than the budget. "Unavailable" is therefore kept narrow and certain: the server or
the connection is gone, refusing, restarting or full; never a statement that failed.
"""

from __future__ import annotations

import errno

# SQLSTATEs that say "the server cannot serve you now", not "your statement failed".
# Class 08 (connection exception) is matched by prefix.
_UNAVAILABLE_STATES = frozenset(
    {
        "57P01",  # admin_shutdown: terminating connection due to administrator command
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now: starting up, shutting down, in recovery
        "53300",  # too_many_connections
    }
)
_UNAVAILABLE_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.ENETUNREACH,
        errno.EHOSTUNREACH,
        errno.ENOTCONN,
    }
)
# asyncpg's InterfaceError for a connection that is already closed carries no SQLSTATE.
_CLOSED_TEXTS = ("connection is closed", "connection was closed", "underlying connection is closed")


def _unavailable_here(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError):  # refused, reset, aborted, broken pipe
        return True
    if isinstance(exc, OSError) and exc.errno in _UNAVAILABLE_ERRNOS:
        return True
    state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    if isinstance(state, str) and (state.startswith("08") or state in _UNAVAILABLE_STATES):
        return True
    # SQLAlchemy marks a DBAPI error that cost it the connection (it discards the pool's
    # connections then, so the next attempt connects afresh).
    if getattr(exc, "connection_invalidated", False) is True:
        return True
    name = type(exc).__name__
    return name == "InterfaceError" and any(t in str(exc) for t in _CLOSED_TEXTS)


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps: SQLAlchemy's ``orig``, ``__cause__``,
    ``__context__``) says the database could not be reached or is not serving: connection
    refused or reset, the server shutting down or restarting (57P01 to 57P03), too many
    connections (53300), any connection exception (class 08), a connection closed under
    us. Statement errors (constraint violations, syntax, serialization failures, query
    time-outs) are not: retrying them in a loop could spin forever on one bad batch."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if _unavailable_here(current):
            return True
        for inner in (getattr(current, "orig", None), current.__cause__, current.__context__):
            if isinstance(inner, BaseException):
                todo.append(inner)
    return False
