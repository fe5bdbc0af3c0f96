"""Pure tests: which errors mean "the database is unavailable" (retry the same work) and
which mean "this work failed" (the ordinary retry budget)."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import exc as sa_exc

from outpost_kit.db.errors import database_unavailable

pytestmark = pytest.mark.unit


def _wrapped(inner: BaseException, *, invalidated: bool = False) -> BaseException:
    """As SQLAlchemy raises it: a DBAPIError whose ``orig`` is the driver's error, raised
    from it."""
    try:
        try:
            raise inner
        except BaseException as exc:
            raise sa_exc.DBAPIError(
                "SELECT 1", None, exc, connection_invalidated=invalidated
            ) from exc  # type: ignore[arg-type]
    except sa_exc.DBAPIError as outer:
        return outer


UNAVAILABLE = [
    ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"),
    ConnectionResetError(104, "Connection reset by peer"),
    BrokenPipeError(32, "Broken pipe"),
    OSError(113, "No route to host"),
    asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.exceptions.CrashShutdownError("terminating connection because of crash"),
    asyncpg.exceptions.CannotConnectNowError("the database system is in recovery mode"),
    asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle"),
    asyncpg.exceptions.ConnectionFailureError("connection failure"),
    asyncpg.exceptions.InterfaceError("cannot perform operation: connection is closed"),
]

AVAILABLE = [
    asyncpg.exceptions.UniqueViolationError("duplicate key value violates unique constraint"),
    asyncpg.exceptions.SerializationError("could not serialize access"),
    asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout"),
    asyncpg.exceptions.UndefinedTableError('relation "nope" does not exist'),
    asyncpg.exceptions.InsufficientPrivilegeError("permission denied for table readings"),
    asyncpg.exceptions.InterfaceError("the server expects 2 arguments, 1 was passed"),
    ValueError("bad value"),
    TimeoutError(),
    OSError(2, "No such file or directory"),
]


@pytest.mark.parametrize("error", UNAVAILABLE, ids=lambda e: type(e).__name__)
def test_a_lost_or_refusing_server_is_unavailable_bare_and_wrapped(error: BaseException) -> None:
    assert database_unavailable(error)
    assert database_unavailable(_wrapped(error))


@pytest.mark.parametrize("error", AVAILABLE, ids=lambda e: type(e).__name__)
def test_a_failed_statement_is_not_unavailability(error: BaseException) -> None:
    assert not database_unavailable(error)
    assert not database_unavailable(_wrapped(error))


def test_an_error_that_cost_sqlalchemy_its_connection_is_unavailability() -> None:
    assert database_unavailable(_wrapped(ValueError("whatever"), invalidated=True))


def test_an_error_raised_while_handling_a_lost_connection_is_unavailability() -> None:
    """A rollback failing after the connection broke: the cause is in ``__context__``."""

    def rollback_after_reset() -> None:
        try:
            raise ConnectionResetError(104, "Connection reset by peer")
        except ConnectionResetError:
            raise RuntimeError("rollback failed") from None

    with pytest.raises(RuntimeError) as info:
        rollback_after_reset()
    # ``from None`` hides the context from tracebacks but keeps it on the exception.
    assert database_unavailable(info.value)


def test_a_cycle_of_causes_terminates() -> None:
    a, b = RuntimeError("a"), RuntimeError("b")
    a.__cause__, b.__cause__ = b, a
    assert not database_unavailable(a)
