"""The broker permissions derived from the contracts (decision 74; docs/design/reliability.md
``broker-least-privilege`` checks the broker enforces them)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import outpost_contracts
from outpost_contracts import access, identity, streams, subjects
from outpost_contracts.rpc import Operation

pytestmark = pytest.mark.unit


def matches(pattern: str, subject: str) -> bool:
    """nats-server's subject matching: ``*`` one token, ``>`` the rest."""
    want, got = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(got) > i
        if i >= len(got) or (token != "*" and token != got[i]):
            return False
    return len(want) == len(got)


def allowed(patterns: tuple[str, ...], subject: str) -> bool:
    return any(matches(p, subject) for p in patterns)


def test_every_module_declaring_operations_is_known() -> None:
    for info in pkgutil.iter_modules(outpost_contracts.__path__):
        module = importlib.import_module(f"outpost_contracts.{info.name}")
        if any(isinstance(v, Operation) for v in vars(module).values()):
            assert module in access.OPERATION_MODULES, info.name


def test_every_operation_called_is_served_by_its_owner() -> None:
    for process in access.PROCESSES:
        for op in access.calls(process):
            assert op.service in subjects.SERVICES, op.subject
            assert op in access.serves(op.service), op.subject
            assert op.service != process, f"{process} calls itself: {op.subject}"
    assert {op.subject for op in access.operations()} >= access.INTERNAL


def test_the_gateway_calls_every_public_operation_and_no_internal_one() -> None:
    called = {op.subject for op in access.calls("gateway")}
    for op in access.operations():
        assert (op.subject in called) == (op.subject not in access.INTERNAL), op.subject


def test_every_consumer_reads_a_declared_stream_and_belongs_to_a_process() -> None:
    declared = {s.name for s in streams.STREAMS}
    for spec in streams.CONSUMERS:
        assert spec.stream in declared, spec.name
        assert spec.owner in access.PROCESSES, spec.name
        stream = streams.stream(spec.stream)
        for f in spec.filter_subjects:
            assert any(matches(s, f.replace("*", "x").replace(">", "x")) for s in stream.subjects)
    for spec in streams.STREAMS:
        assert spec.owner in subjects.SERVICES, spec.name


@pytest.mark.parametrize("process", access.PROCESSES)
def test_a_process_publishes_only_its_own_events(process: str) -> None:
    perms = access.permissions(process)
    org = "00000000-0000-0000-0000-000000000001"
    for service in subjects.SERVICES:
        subject = f"outpost.evt.{service}.{org}.Anything.v1"
        assert allowed(perms.publish, subject) == (service == process), subject
    assert not allowed(perms.publish, subjects.event("identity.ApiKeyCreated.v1", org)) or (
        process == "identity"
    )


@pytest.mark.parametrize("process", access.PROCESSES)
def test_no_process_may_administer_streams(process: str) -> None:
    perms = access.permissions(process)
    for spec in streams.STREAMS:
        for verb in ("CREATE", "UPDATE", "DELETE", "PURGE"):
            subject = f"$JS.API.STREAM.{verb}.{spec.name}"
            assert not allowed(perms.publish, subject), subject
        for verb in ("CONSUMER.DELETE", "CONSUMER.DURABLE.CREATE", "CONSUMER.CREATE"):
            for consumer in streams.CONSUMERS:
                subject = f"$JS.API.{verb}.{spec.name}.{consumer.name}"
                assert not allowed(perms.publish, subject), subject
    for pattern in (*perms.publish, *perms.subscribe):
        assert pattern not in (">", "$JS.>", "$JS.API.>", "outpost.>", "_INBOX.>"), pattern


@pytest.mark.parametrize("process", access.PROCESSES)
def test_calls_and_serves_are_exactly_what_is_allowed(process: str) -> None:
    perms = access.permissions(process)
    called = {op.subject for op in access.calls(process)}
    served = {op.subject for op in access.serves(process)}
    for op in access.operations():
        assert allowed(perms.publish, op.subject) == (op.subject in called), op.subject
        assert allowed(perms.subscribe, op.subject) == (op.subject in served), op.subject
    assert allowed(perms.subscribe, f"{access.inbox_prefix(process)}.abc.1")
    others = [p for p in access.PROCESSES if p != process]
    for other in others:
        assert not allowed(perms.subscribe, f"{access.inbox_prefix(other)}.abc.1")


def test_only_identity_publishes_identity_events_that_grant_operators() -> None:
    subject = subjects.event("identity.ApiKeyCreated.v1", "org")
    holders = [p for p in access.PROCESSES if allowed(access.permissions(p).publish, subject)]
    assert holders == ["identity"]
    assert identity.CREATE_API_KEY in access.calls("gateway")


def test_may_call_follows_the_declarations() -> None:
    from outpost_contracts import devices, readings

    assert access.may_call("readings", devices.GET_DEVICE)
    assert not access.may_call("readings", identity.CREATE_API_KEY)
    assert access.may_call("gateway", identity.CREATE_API_KEY)
    assert not access.may_call("gateway", readings.STREAM_READINGS)
    assert access.may_call("exports", readings.STREAM_READINGS)


def test_fleet_and_devices_may_ask_each_other_what_issue_21_needs() -> None:
    from outpost_contracts import device_config, devices, fleet, readings

    for op in (
        device_config.APPLY_DEVICE_PROFILE,
        device_config.SET_FLEET_DESIRED_STATES,
        devices.GET_DEVICE,  # a binding's target
    ):
        assert access.may_call("fleet", op)
    assert not access.may_call("fleet", readings.STREAM_READINGS)
    assert access.may_call("devices", fleet.RESOLVE_DEVICE_PROFILE)
    assert not access.may_call("gateway", fleet.RESOLVE_DEVICE_PROFILE)
    assert access.may_call("gateway", fleet.CREATE_CONFIG_ARTEFACT)
    # fleet publishes its own events (the FLEET stream) and nobody else's
    subject = subjects.event("fleet.DesiredStateBindingCreated.v1", "org")
    holders = [p for p in access.PROCESSES if allowed(access.permissions(p).publish, subject)]
    assert holders == ["fleet"] and streams.stream("FLEET").owner == "fleet"
