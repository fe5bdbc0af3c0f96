"""HTTP batch ingest (decision 59) against real nats-server and Postgres: per-item
rejections, accepted readings published into TELEMETRY and stored by the real ingest loop,
a retried request stored once, another organization's device refused, the device's seq
state untouched."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from test_ingest import BASE, Env, _ctx, _drain, env  # noqa: F401  (env is a fixture)

from outpost_contracts.errors import ValidationFailed
from outpost_contracts.query import And, Cmp, ListQuery
from outpost_contracts.readings import IngestReadings, ListQuarantine
from outpost_contracts.registry import SensorDeclared, ValidRange, ValueType
from outpost_kit import ids
from outpost_readings.app import handlers

pytestmark = pytest.mark.integration


def _ts(seconds: float) -> str:
    return (BASE + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def _with_publish(e: Env) -> tuple[handlers.Deps, list[tuple[str, bytes, dict[str, str]]]]:
    sent: list[tuple[str, bytes, dict[str, str]]] = []

    async def publish(subject: str, payload: bytes, headers: dict[str, str]) -> None:
        sent.append((subject, payload, headers))
        await e.js.publish(subject, payload, headers=headers)

    return dataclasses.replace(e.deps, publish=publish), sent


async def test_a_batch_is_checked_per_item_published_per_device_and_stored_once(
    env: Env,  # noqa: F811
) -> None:
    org, other_org = ids.new_id(), ids.new_id()
    device, second = await env.device(org), await env.device(org)
    gone = await env.device(org, decommissioned=True)
    foreign = await env.device(other_org)
    await env.event(
        org,
        ids.new_id(),
        1,
        SensorDeclared(
            device_id=device,
            key="temp",
            value_type=ValueType.NUMBER,
            valid_range=ValidRange(min=-40, max=85),
        ),
    )
    spec = await env.consumer(org)
    far = (datetime.now(UTC) + timedelta(days=2)).isoformat().replace("+00:00", "Z")
    items: list[Any] = [
        {"deviceId": str(device), "sensor": "temp", "ts": _ts(1), "value": 21.5},  # 0 ok
        {"deviceId": str(device), "sensor": "temp", "ts": _ts(2), "value": 500},  # 1 range
        {"deviceId": str(foreign), "sensor": "temp", "ts": _ts(3), "value": 1},  # 2 other org
        {"deviceId": str(second), "sensor": "hum", "ts": _ts(4), "value": 40},  # 3 ok (auto)
        {"deviceId": str(gone), "sensor": "temp", "ts": _ts(5), "value": 1},  # 4 decommissioned
        {"deviceId": str(device), "sensor": "temp", "ts": far, "value": 1},  # 5 future
        {"deviceId": str(device), "sensor": "temp", "ts": _ts(1), "value": 22},  # 6 duplicate
        {"deviceId": "nope", "sensor": "temp", "ts": _ts(7), "value": 1},  # 7 malformed
        {"deviceId": str(device), "sensor": "temp", "value": 1},  # 8 no ts
        {"deviceId": str(device), "sensor": "temp", "ts": _ts(9), "value": "hot"},  # 9 type
        {"deviceId": str(second), "sensor": "hum", "ts": _ts(10), "value": 41},  # 10 ok
    ]
    deps, sent = _with_publish(env)
    outcome = await handlers.ingest_batch(deps, _ctx(org), IngestReadings(readings=items))
    reasons = {r.index: r.reason for r in outcome.rejected}
    assert outcome.accepted == 3
    assert reasons == {
        1: "out_of_range",
        2: "unknown_device",
        4: "device_decommissioned",
        5: "ts_in_future",
        6: "duplicate_in_message",
        7: "invalid_item",
        8: "invalid_item",
        9: "wrong_type",
    }
    assert sorted(s for s, _, _ in sent) == sorted(
        [f"outpost.tel.{org}.{device}", f"outpost.tel.{org}.{second}"]
    )  # one message per device, none for the other organization's device
    assert all(h["Outpost-Source"] == "http" and h["Nats-Msg-Id"] for _, _, h in sent)

    # The same request again (a client retry): the same message ids, dropped by the stream.
    again = await handlers.ingest_batch(deps, _ctx(org), IngestReadings(readings=items))
    assert again.accepted == 3
    assert [h["Nats-Msg-Id"] for _, _, h in sent[:2]] == [h["Nats-Msg-Id"] for _, _, h in sent[2:]]
    info = await env.js.consumer_info(spec.stream, spec.name)
    assert info.num_pending == 2

    await _drain(env, spec, 2)
    stored = await env.rows(org, "SELECT device_id, sensor, num FROM readings ORDER BY ts")
    assert [tuple(r) for r in stored] == [
        (device, "temp", 21.5),
        (second, "hum", 40.0),
        (second, "hum", 41.0),
    ]
    # An HTTP batch is not the device's numbering: no seq state, no gaps.
    assert await env.rows(org, "SELECT count(*) AS n FROM device_seq") == [(0,)]
    assert await env.rows(other_org, "SELECT count(*) AS n FROM readings") == [(0,)]


async def test_a_device_the_registry_does_not_know_yet_is_checked_by_devices(
    env: Env,  # noqa: F811
) -> None:
    org = ids.new_id()
    fresh = ids.new_id()

    async def exists(_ctx: Any, device_id: uuid.UUID) -> bool:
        return device_id == fresh

    deps, sent = _with_publish(env)
    deps = dataclasses.replace(deps, device_exists=exists)
    items = [
        {"deviceId": str(fresh), "sensor": "t", "ts": _ts(1), "value": 1},
        {"deviceId": str(ids.new_id()), "sensor": "t", "ts": _ts(1), "value": 1},
    ]
    outcome = await handlers.ingest_batch(
        deps, _ctx(org), IngestReadings(readings=items, first_index=100)
    )
    assert outcome.accepted == 1
    assert [(r.index, r.reason) for r in outcome.rejected] == [(101, "unknown_device")]
    assert [s for s, _, _ in sent] == [f"outpost.tel.{org}.{fresh}"]


async def test_the_quarantine_as_a_collection_filters_counts_and_stays_in_its_tenant(
    env: Env,  # noqa: F811
) -> None:
    org, other = ids.new_id(), ids.new_id()
    device, second = await env.device(org), await env.device(org)
    await env.device(other)
    for d in (device, second):
        await env.event(
            org,
            ids.new_id(),
            1,
            SensorDeclared(
                device_id=d,
                key="temp",
                value_type=ValueType.NUMBER,
                valid_range=ValidRange(min=0, max=10),
            ),
        )
    spec = await env.consumer(org)
    await env.publish(
        org,
        device,
        {"seq": 1, "readings": [{"sensor": "temp", "ts": _ts(i), "value": 50} for i in range(3)]},
    )
    await env.publish(
        org, second, {"seq": 1, "readings": [{"sensor": "temp", "ts": _ts(1), "value": "x"}]}
    )
    await _drain(env, spec, 2)

    def query(*nodes: Cmp, **kw: Any) -> ListQuarantine:
        node = nodes[0] if len(nodes) == 1 else And(items=list(nodes)) if nodes else None
        return ListQuarantine(query=ListQuery(filter=node, **kw))

    everything = await handlers.list_quarantine(env.deps, _ctx(org), query(include_total=True))
    assert everything.total_count == 4 and len(everything.data) == 4
    by_device = await handlers.list_quarantine(
        env.deps,
        _ctx(org),
        query(Cmp(field="deviceId", op="eq", value=str(device)), limit=2, order="DESC"),
    )
    assert [r.reason for r in by_device.data] == ["out_of_range"] * 2 and by_device.has_more
    wrong = await handlers.list_quarantine(
        env.deps, _ctx(org), query(Cmp(field="reason", op="in", value=["wrong_type"]))
    )
    assert [r.device_id for r in wrong.data] == [second]
    assert (await handlers.list_quarantine(env.deps, _ctx(other), query())).data == []
    with pytest.raises(ValidationFailed) as refused:
        await handlers.list_quarantine(
            env.deps, _ctx(org), query(Cmp(field="payload", op="eq", value="x"))
        )
    assert refused.value.fields[0].name == "payload"
