"""Each service's broker user may do what its contracts declare and nothing else
(docs/design/reliability.md ``broker-least-privilege``; ADR 0074).

With every service's own credential, on the platform ``make dev`` runs: publishing another
service's event (the attack of issue 18: an ``ApiKeyCreated`` forged into IDENTITY),
calling an operation the service never calls, reading another process's inboxes, and
deleting or purging a stream (another's or its own) are refused by nats-server, and nothing
reaches the streams. The rest of the e2e suite shows the platform works under the same
permissions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

from outpost_contracts import access, identity, streams, subjects
from outpost_devkit.dev.stack import DevStack
from outpost_kit.material import ALL_SERVICES

pytestmark = pytest.mark.e2e

# How long a refused JetStream API request is given before it counts as unanswered: the
# refusal itself is asserted from the broker's error, not from the timeout.
_REFUSED_REQUEST_TIMEOUT = 2.0


class _Refusals:
    """The permission violations nats-server reported on one connection."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self._changed = asyncio.Event()

    async def record(self, error: Exception) -> None:
        self.messages.append(str(error).lower())
        self._changed.set()

    async def refused(self, kind: str, subject: str) -> bool:
        """Whether the broker refused it (waiting a while for its error if not yet seen)."""
        wanted = f'permissions violation for {kind} to "{subject.lower()}"'
        deadline = asyncio.get_running_loop().time() + _REFUSED_REQUEST_TIMEOUT * 5
        while not any(wanted in m for m in self.messages):
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        return True


async def _connect_as(stack: DevStack, service: str) -> tuple[NATS, _Refusals]:
    refusals = _Refusals()
    nc = await nats.connect(
        stack.nats_service_url(service),
        tls=stack.nats_tls(),
        inbox_prefix=access.inbox_prefix(service),
        error_cb=refusals.record,
        allow_reconnect=False,
    )
    return nc, refusals


def _foreign_event_subject(service: str, org: str) -> str:
    """An event another service owns: identity's operator key for everyone but identity."""
    if service != "identity":
        return subjects.event("identity.ApiKeyCreated.v1", org)
    return subjects.event("alerting.AlertOpened.v1", org)


def _an_operation_never_called(service: str) -> str:
    called = {op.subject for op in access.calls(service)}
    if identity.CREATE_API_KEY.subject not in called:
        return identity.CREATE_API_KEY.subject
    # The gateway calls every public operation: an internal one it never calls.
    return sorted(access.INTERNAL - called)[0]


async def _stream_state(stack: DevStack) -> dict[str, tuple[int, int]]:
    nc = await nats.connect(stack.nats_service_url(), tls=stack.nats_tls())
    try:
        js = nc.jetstream()
        states = {}
        for spec in streams.STREAMS:
            info = await js.stream_info(spec.name)
            states[spec.name] = (info.state.first_seq, info.state.last_seq)
        return states
    finally:
        await nc.close()


async def _nothing_on(stack: DevStack, stream: str, subject: str) -> bool:
    nc = await nats.connect(stack.nats_service_url(), tls=stack.nats_tls())
    try:
        await nc.jetstream().get_last_msg(stream, subject)
    except NotFoundError:
        return True
    finally:
        await nc.close()
    return False


async def _try_everything(stack: DevStack, service: str) -> None:
    nc, refusals = await _connect_as(stack, service)
    org = str(uuid.uuid4())
    try:
        # 1. Another service's event, e.g. an operator API key forged into IDENTITY.
        forged = _foreign_event_subject(service, org)
        forged_body = json.dumps({"name": "forged", "operator": True}).encode()
        await nc.publish(forged, forged_body, headers={"Nats-Msg-Id": str(uuid.uuid4())})
        # 2. An operation this service never calls.
        operation = _an_operation_never_called(service)
        await nc.publish(operation, b"{}", reply=nc.new_inbox())
        # 3. Another process's replies.
        await nc.subscribe("_INBOX.>")
        await nc.flush()  # the broker answers in order: its refusals came before the PONG
        assert await refusals.refused("publish", forged), (service, refusals.messages)
        assert await refusals.refused("publish", operation), (service, refusals.messages)
        assert await refusals.refused("subscription", "_INBOX.>"), (service, refusals.messages)

        # 4. Deleting and purging streams: another service's, and its own.
        js = nc.jetstream(timeout=_REFUSED_REQUEST_TIMEOUT)
        own = [s.name for s in streams.streams_of(service)]
        for name in dict.fromkeys(["IDENTITY", *own]):
            with pytest.raises(Exception):  # noqa: B017 - unanswered: nats' timeout
                await js.purge_stream(name)
            with pytest.raises(Exception):  # noqa: B017
                await js.delete_stream(name)
            for verb in ("PURGE", "DELETE"):
                subject = f"$JS.API.STREAM.{verb}.{name}"
                assert await refusals.refused("publish", subject), (service, refusals.messages)
    finally:
        await nc.close()
    stream = "ALERTING" if service == "identity" else "IDENTITY"
    assert await _nothing_on(stack, stream, forged), f"{service} forged an event into {stream}"


def test_every_service_credential_is_refused_what_it_does_not_need(
    stack: DevStack, platform: dict[str, Any]
) -> None:
    async def run() -> None:
        before = await _stream_state(stack)
        for service in ALL_SERVICES:
            await _try_everything(stack, service)
        after = await _stream_state(stack)
        # Nothing was purged or deleted: every stream still starts where it started.
        for name, (first, _last) in before.items():
            assert after[name][0] == first, name

    asyncio.run(run())


def test_a_service_credential_still_does_its_own_work(
    stack: DevStack, platform: dict[str, Any]
) -> None:
    """The refusals above are the permissions, not a broken credential: each service user
    may read its own inbox and call what it declares (a reply, or a timeout without a
    violation for an operation answered with an error)."""

    async def run() -> None:
        for service in ALL_SERVICES:
            nc, refusals = await _connect_as(stack, service)
            try:
                await nc.subscribe(nc.new_inbox())
                for op in access.calls(service)[:3]:
                    await nc.publish(op.subject, b"{}", reply=nc.new_inbox())
                await nc.flush()
                assert refusals.messages == [], (service, refusals.messages)
            finally:
                await nc.close()

    asyncio.run(run())
