"""Request/reply through the kit (``messaging.call`` over ``Requests``) against a real
nats-server: many concurrent requests each get their own reply, nobody listening and no
answer in time are both ``ServiceUnavailable``, a service's typed error comes back typed,
a handler that finds its database unavailable answers ``ServiceUnavailable`` too, and a
request carries headers only when its span is recorded."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest
from nats.aio.msg import Msg
from sqlalchemy import exc as sa_exc

from outpost_contracts.base import Contract, Request
from outpost_contracts.envelope import Principal, PrincipalKind, RequestContext
from outpost_contracts.errors import (
    Conflict,
    ErrorType,
    NotFound,
    OutpostError,
    ServiceUnavailable,
)
from outpost_contracts.rpc import Operation
from outpost_kit import ids, messaging
from outpost_kit.db.eventstore import ConcurrencyConflict
from outpost_kit.responder import Responder

pytestmark = pytest.mark.integration


class Echo(Request, kw_only=True, frozen=True):
    n: int


class Echoed(Contract, kw_only=True, frozen=True):
    n: int


ECHO = Operation("kitreq", "Echo", Echo, Echoed)


def _ctx() -> RequestContext:
    org = ids.new_id()
    principal = Principal(kind=PrincipalKind.SYSTEM, id=ids.new_id(), org_id=org)
    return RequestContext(org_id=org, request_id=ids.new_id().hex, principal=principal)


async def test_concurrent_calls_get_their_own_replies_and_failures_are_typed(
    nats_url: str,
) -> None:
    client = await messaging.connect(nats_url, "kit-requests-client")
    service = await messaging.connect(nats_url, "kit-requests-service")
    seen_headers: list[object] = []
    try:
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable):  # nobody listens: at once, not after 60 s
            await messaging.call(client, ECHO, _ctx(), Echo(n=1), timeout=60)
        assert time.monotonic() - started < 30  # a loaded machine is slow, never 30 s slow

        async def answer(msg: Msg) -> None:
            seen_headers.append(msg.headers)
            request = ECHO.decode_request(msg.data)
            if request.body.n < 0:
                await msg.respond(ECHO.encode_error(NotFound("negative")))
            elif request.body.n == 0:
                return  # never answers
            else:
                await asyncio.sleep((request.body.n % 7) / 1000)  # replies out of order
                await msg.respond(ECHO.encode_result(Echoed(n=request.body.n * 2)))

        tasks: set[asyncio.Task[None]] = set()

        async def spawn(msg: Msg) -> None:
            task = asyncio.create_task(answer(msg))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        await service.subscribe(ECHO.subject, cb=spawn)
        await service.flush()
        replies = await asyncio.gather(
            *(messaging.call(client, ECHO, _ctx(), Echo(n=n)) for n in range(1, 301))
        )
        assert [r.n for r in replies] == [2 * n for n in range(1, 301)]
        assert not any(seen_headers)  # spans are not recorded here: no headers at all

        with pytest.raises(NotFound, match="negative"):
            await messaging.call(client, ECHO, _ctx(), Echo(n=-1))
        with pytest.raises(ServiceUnavailable):
            await messaging.call(client, ECHO, _ctx(), Echo(n=0), timeout=0.3)
        assert messaging.requests_of(client)._waiting == {}  # nothing left waiting
    finally:
        await client.close()
        await service.close()


async def test_a_handler_that_finds_the_database_unavailable_answers_service_unavailable(
    nats_url: str,
) -> None:
    """A Postgres outage is a 503 the caller may retry, not a 500: a handler whose
    database refuses the connection (or was shut down under it) answers
    ``ServiceUnavailable``; any other unexpected error stays an internal error."""
    refused = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")
    shutdown = asyncpg.exceptions.AdminShutdownError("terminating connection")
    failures: dict[int, BaseException] = {
        1: refused,
        2: sa_exc.DBAPIError("SELECT 1", None, shutdown),  # type: ignore[arg-type]
        3: asyncpg.exceptions.UniqueViolationError("duplicate key"),
        4: ValueError("a bug"),
    }

    async def handler(ctx: RequestContext, body: Echo) -> Echoed:
        raise failures[body.n]

    service = await messaging.connect(nats_url, "kit-requests-db-service")
    client = await messaging.connect(nats_url, "kit-requests-db-client")
    op = Operation("kitdb", "Echo", Echo, Echoed)
    responder = Responder(service, "kitdb", {op: handler})
    await responder.start()
    await service.flush()  # the server has the subscriptions before the first request
    try:
        got: dict[int, ErrorType] = {}
        for n in failures:
            with pytest.raises(OutpostError) as info:
                await messaging.call(client, op, _ctx(), Echo(n=n), timeout=5)
            got[n] = info.value.type
        assert got == {
            1: ErrorType.SERVICE_UNAVAILABLE,
            2: ErrorType.SERVICE_UNAVAILABLE,
            3: ErrorType.INTERNAL_SERVER_ERROR,
            4: ErrorType.INTERNAL_SERVER_ERROR,
        }
    finally:
        await responder.stop()
        await client.close()
        await service.close()


class Change(Request, kw_only=True, frozen=True):
    n: int
    expected_version: int | None = None


async def test_a_concurrency_conflict_is_run_again_unless_the_caller_named_a_version(
    nats_url: str,
) -> None:
    """Another request appending to the same stream between a handler's load and append is
    the service's race, not the caller's mistake: the handler runs again (up to three
    times). With ``If-Match`` (``expected_version``) the conflict is the caller's (409)."""
    conflicts = {1: 1, 2: 5, 3: 1}  # conflicts to raise before succeeding, per request
    calls: dict[int, int] = {}

    async def handler(ctx: RequestContext, body: Change) -> Echoed:
        calls[body.n] = calls.get(body.n, 0) + 1
        if calls[body.n] <= conflicts[body.n]:
            raise ConcurrencyConflict(ids.new_id(), 1, 2)
        return Echoed(n=calls[body.n])

    service = await messaging.connect(nats_url, "kit-requests-occ-service")
    client = await messaging.connect(nats_url, "kit-requests-occ-client")
    op = Operation("kitocc", "Change", Change, Echoed)
    responder = Responder(service, "kitocc", {op: handler})
    await responder.start()
    await service.flush()  # the server has the subscriptions before the first request
    try:
        assert (await messaging.call(client, op, _ctx(), Change(n=1), timeout=5)).n == 2
        with pytest.raises(Conflict):  # still conflicting after three runs
            await messaging.call(client, op, _ctx(), Change(n=2), timeout=5)
        with pytest.raises(Conflict):  # If-Match: not run again
            await messaging.call(client, op, _ctx(), Change(n=3, expected_version=1), timeout=5)
        assert calls == {1: 2, 2: 3, 3: 1}
    finally:
        await responder.stop()
        await client.close()
        await service.close()


async def test_a_process_cannot_call_an_operation_it_does_not_declare(nats_url: str) -> None:
    """decision 74: a service's connection refuses, before sending, an operation missing
    from its declarations (its broker user could not publish it), and sends the declared
    ones (here nobody answers: ``ServiceUnavailable``)."""
    from outpost_contracts import devices, identity

    nc = await messaging.connect(nats_url, "kit-requests-readings", process="readings")
    try:
        with pytest.raises(messaging.UndeclaredCall):
            await messaging.call(
                nc, identity.CREATE_API_KEY, _ctx(), identity.CreateApiKey(name="x"), timeout=1
            )
        with pytest.raises(ServiceUnavailable):
            await messaging.call(
                nc, devices.GET_DEVICE, _ctx(), devices.GetDevice(id=ids.new_id()), timeout=1
            )
    finally:
        await nc.close()
