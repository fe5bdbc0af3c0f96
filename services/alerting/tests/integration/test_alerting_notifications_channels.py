"""Notification channels against real Postgres: CRUD with the collection conventions, ETag
versions and If-Match, 404 across organizations, the webhook secret sealed at rest and in no
response, event or log line, and the SSRF guard at creation and on change."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest
from alerting_testkit import TEST_KEY, alerting_db, ctx
from cryptography.fernet import Fernet

from outpost_alerting import bootstrap
from outpost_alerting.adapters.resolver import StaticResolver
from outpost_alerting.adapters.secrets import SecretVault
from outpost_alerting.adapters.webhook import WebhookSender
from outpost_alerting.app import notifications as app
from outpost_alerting.domain import ssrf
from outpost_alerting.settings import AlertingSettings
from outpost_contracts import notifications as api
from outpost_contracts.errors import (
    NotFound,
    PreconditionFailed,
    ServiceUnavailable,
    ValidationFailed,
)
from outpost_contracts.query import Cmp, ListQuery
from outpost_kit.settings import Secret

pytestmark = pytest.mark.integration

SECRET = "s3cr3t-webhook-signing-key-0001"
KEY = TEST_KEY  # one key for every module: the rotation test re-seals every row
RESOLVER = StaticResolver(
    {
        "hooks.example.com": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
        "internal.example.com": ["93.184.216.34", "10.0.0.5"],
        "mapped.example.com": ["::ffff:127.0.0.1"],
        "metadata.example.com": ["169.254.169.254"],
    }
)


@pytest.fixture
async def deps(postgres_dsn: str) -> AsyncIterator[app.NotificationDeps]:
    async with alerting_db(postgres_dsn) as (uow, reads):
        yield app.NotificationDeps(
            uow=uow,
            reads=reads,
            vault=SecretVault(KEY),
            webhooks=WebhookSender(RESOLVER, ssrf.Policy()),
        )


def _webhook(**kw: object) -> api.CreateNotificationChannel:
    body: dict[str, object] = {
        "type": "WEBHOOK",
        "name": "ops",
        "url": "https://hooks.example.com/outpost",
        "secret": SECRET,
    }
    body.update(kw)
    return msgspec.convert(body, api.CreateNotificationChannel)


async def _events(deps: app.NotificationDeps, org: uuid.UUID) -> list[str]:
    async with deps.uow(org) as uow:
        rows = await uow.execute("SELECT data::text AS d FROM events ORDER BY position")
        return [r.d for r in rows]


async def test_crud_with_versions_and_the_secret_never_shown(
    deps: app.NotificationDeps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    c = ctx(uuid.uuid4())
    view = await app.create_channel(deps, c, _webhook())
    assert view.type is api.ChannelType.WEBHOOK and view.has_secret and view.version == 1
    assert view.url == "https://hooks.example.com/outpost" and view.enabled
    assert SECRET not in msgspec.json.encode(view).decode()

    got = await app.get_channel(deps, c, api.GetNotificationChannel(id=view.id))
    assert got == view

    # At rest: sealed, and it opens with the key.
    async with deps.uow(c.org_id) as uow:
        sealed = (await uow.execute("SELECT sealed FROM channel_secrets")).scalar_one()
    assert SECRET.encode() not in bytes(sealed)
    assert SecretVault(KEY).open(bytes(sealed)) == SECRET

    # A stale If-Match: 412, nothing changes.
    with pytest.raises(PreconditionFailed):
        await app.update_channel(
            deps,
            c,
            api.UpdateNotificationChannel(
                id=view.id, patch=api.NotificationChannelPatch(name="x"), expected_version=7
            ),
        )
    new_secret = "rotated-secret-value-0002"
    changed = await app.update_channel(
        deps,
        c,
        api.UpdateNotificationChannel(
            id=view.id,
            patch=api.NotificationChannelPatch(name="ops-2", secret=new_secret, enabled=False),
            expected_version=1,
        ),
    )
    assert (changed.name, changed.enabled, changed.version) == ("ops-2", False, 2)
    async with deps.uow(c.org_id) as uow:
        sealed = (await uow.execute("SELECT sealed FROM channel_secrets")).scalar_one()
    assert SecretVault(KEY).open(bytes(sealed)) == new_secret

    events = await _events(deps, c.org_id)
    assert len(events) == 2 and '"secret"' in events[1]  # named as changed, no value
    for text in events:
        assert SECRET not in text and new_secret not in text
    assert all(
        SECRET not in r.getMessage() and new_secret not in r.getMessage() for r in caplog.records
    )

    await app.delete_channel(deps, c, api.DeleteNotificationChannel(id=view.id, expected_version=2))
    for call in (
        app.get_channel(deps, c, api.GetNotificationChannel(id=view.id)),
        app.delete_channel(deps, c, api.DeleteNotificationChannel(id=view.id)),
        app.try_channel(deps, c, api.TestNotificationChannel(id=view.id)),
    ):
        with pytest.raises(NotFound):
            await call
    async with deps.uow(c.org_id) as uow:
        assert (await uow.execute("SELECT count(*) FROM channel_secrets")).scalar_one() == 0


async def test_listing_filters_pages_and_counts(deps: app.NotificationDeps) -> None:
    c = ctx(uuid.uuid4())
    made = [await app.create_channel(deps, c, _webhook(name=f"hook-{i}")) for i in range(3)]
    email = await app.create_channel(
        deps,
        c,
        msgspec.convert(
            {"type": "EMAIL", "name": "on-call", "addresses": ["oncall@example.com"]},
            api.CreateNotificationChannel,
        ),
    )
    assert email.addresses == ["oncall@example.com"] and not email.has_secret

    page = await app.list_channels(
        deps,
        c,
        api.ListNotificationChannels(
            query=ListQuery(
                filter=Cmp(field="type", op="eq", value="WEBHOOK"), limit=2, include_total=True
            )
        ),
    )
    assert [v.id for v in page.data] == [m.id for m in made[:2]]
    assert page.has_more and page.total_count == 3
    rest = await app.list_channels(
        deps,
        c,
        api.ListNotificationChannels(
            query=ListQuery(
                filter=Cmp(field="type", op="eq", value="WEBHOOK"), after=str(made[1].id)
            )
        ),
    )
    assert [v.id for v in rest.data] == [made[2].id] and not rest.has_more
    with pytest.raises(ValidationFailed, match="secret"):
        await app.list_channels(
            deps,
            c,
            api.ListNotificationChannels(
                query=ListQuery(filter=Cmp(field="secret", op="eq", value="x"))
            ),
        )


async def test_another_organization_sees_nothing(deps: app.NotificationDeps) -> None:
    mine, theirs = ctx(uuid.uuid4()), ctx(uuid.uuid4())
    view = await app.create_channel(deps, mine, _webhook())
    patch = api.NotificationChannelPatch(name="stolen")
    for call in (
        app.get_channel(deps, theirs, api.GetNotificationChannel(id=view.id)),
        app.update_channel(deps, theirs, api.UpdateNotificationChannel(id=view.id, patch=patch)),
        app.delete_channel(deps, theirs, api.DeleteNotificationChannel(id=view.id)),
        app.try_channel(deps, theirs, api.TestNotificationChannel(id=view.id)),
        app.list_deliveries(deps, theirs, api.ListDeliveries(channel_id=view.id)),
    ):
        with pytest.raises(NotFound):
            await call
    assert (await app.list_channels(deps, theirs, api.ListNotificationChannels())).data == []
    assert (await app.get_channel(deps, mine, api.GetNotificationChannel(id=view.id))).name == "ops"


REFUSED = ssrf.ADDRESS_REFUSED


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:8080/hook", REFUSED),
        ("http://[::1]/hook", REFUSED),
        ("http://[::ffff:127.0.0.1]/hook", REFUSED),
        ("http://[::ffff:7f00:1]/hook", REFUSED),
        ("http://2130706433/hook", "unusually"),
        ("http://0x7f.1/hook", "unusually"),
        ("http://0177.0.0.1/hook", "unusually"),
        ("http://10.1.2.3/hook", REFUSED),
        ("http://192.168.0.10/hook", REFUSED),
        ("http://100.64.1.1/hook", REFUSED),
        ("http://[fd00::1]/hook", REFUSED),
        ("http://169.254.169.254/latest/meta-data", REFUSED),
        ("http://metadata.example.com/", REFUSED),
        ("http://internal.example.com/hook", REFUSED),  # one bad address of two
        ("http://mapped.example.com/hook", REFUSED),
        ("http://[ff02::1]/", REFUSED),
        ("http://0.0.0.0/", REFUSED),
        ("http://nowhere.example.com/", REFUSED),
        ("ftp://hooks.example.com/", "http or https"),
        ("http://user:pw@hooks.example.com/", "credentials"),
    ],
)
async def test_ssrf_refused_at_creation_and_nothing_is_stored(
    deps: app.NotificationDeps, url: str, why: str
) -> None:
    c = ctx(uuid.uuid4())
    with pytest.raises(ValidationFailed, match=why) as info:
        await app.create_channel(deps, c, _webhook(url=url))
    assert info.value.fields[0].name == "url"
    assert await _events(deps, c.org_id) == []


async def test_a_refused_address_is_never_named() -> None:
    """``ssrf``: a host resolving to a private address, to
    link-local, to nothing at all, and a public one that does not resolve are answered
    the same text, which names neither an address, nor its class, nor whether the name
    resolved (decision 78): a tenant cannot map the platform's network through the
    channel route."""
    table = {
        "db.internal.example": ["10.20.30.40"],
        "meta.internal.example": ["169.254.169.254"],
        "v6.internal.example": ["fd12:3456::7"],
        "empty.internal.example": [],
    }
    deps = app.NotificationDeps(
        uow=None,  # type: ignore[arg-type]  # check_url reads no table
        vault=None,
        webhooks=WebhookSender(StaticResolver(table), ssrf.Policy()),
    )
    answers = []
    for host in [*table, "missing.example"]:
        with pytest.raises(ValidationFailed) as info:
            await app.check_url(deps, f"https://{host}/hook")
        (failure,) = info.value.fields
        answers.append((failure.name, failure.message, str(info.value)))
        for secret in ("10.20.30.40", "169.254", "fd12", "private", "link-local", "resolve"):
            assert secret not in failure.message and secret not in str(info.value)
    assert len(set(answers)) == 1, answers
    assert answers[0][1] == REFUSED


async def test_ssrf_refused_on_a_changed_url_and_allowed_by_policy(
    deps: app.NotificationDeps,
) -> None:
    c = ctx(uuid.uuid4())
    view = await app.create_channel(deps, c, _webhook())
    with pytest.raises(ValidationFailed, match=REFUSED):
        await app.update_channel(
            deps,
            c,
            api.UpdateNotificationChannel(
                id=view.id, patch=api.NotificationChannelPatch(url="http://10.0.0.1/")
            ),
        )
    assert (await app.get_channel(deps, c, api.GetNotificationChannel(id=view.id))).version == 1

    allowing = app.NotificationDeps(
        uow=deps.uow,
        vault=deps.vault,
        webhooks=WebhookSender(RESOLVER, ssrf.Policy(allow_loopback=True, allow_private=True)),
    )
    ok = await app.create_channel(allowing, c, _webhook(url="http://127.0.0.1:9/hook"))
    assert ok.url == "http://127.0.0.1:9/hook"
    ok = await app.create_channel(allowing, c, _webhook(url="http://internal.example.com/"))
    # Never allowed, whatever the deployment says.
    with pytest.raises(ValidationFailed, match=REFUSED):
        await app.create_channel(allowing, c, _webhook(url="http://169.254.169.254/"))


async def test_webhooks_need_the_encryption_key(deps: app.NotificationDeps) -> None:
    c = ctx(uuid.uuid4())
    keyless = app.NotificationDeps(uow=deps.uow, webhooks=deps.webhooks)
    with pytest.raises(ServiceUnavailable):
        await app.create_channel(keyless, c, _webhook())
    made = await app.create_channel(deps, c, _webhook())
    with pytest.raises(ServiceUnavailable):
        await app.try_channel(keyless, c, api.TestNotificationChannel(id=made.id))
    patch = api.NotificationChannelPatch(secret="another-secret-0123")
    with pytest.raises(ServiceUnavailable):
        await app.update_channel(keyless, c, api.UpdateNotificationChannel(id=made.id, patch=patch))
    email = await app.create_channel(
        keyless,
        c,
        msgspec.convert(
            {"type": "EMAIL", "name": "m", "addresses": ["a@example.com"]},
            api.CreateNotificationChannel,
        ),
    )
    assert email.type is api.ChannelType.EMAIL


async def test_rotating_the_key_reseals_every_secret(
    deps: app.NotificationDeps, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = ctx(uuid.uuid4())
    view = await app.create_channel(deps, c, _webhook())
    new_key = Fernet.generate_key().decode()
    settings = AlertingSettings(secret_encryption_key=Secret(f"{new_key},{KEY}"))
    monkeypatch.setenv("OUTPOST_ADMIN_DATABASE_URL", postgres_dsn)
    await bootstrap.rotate_secret_keys(settings, [])
    async with deps.uow(c.org_id) as uow:
        sealed = bytes((await uow.execute("SELECT sealed FROM channel_secrets")).scalar_one())
    assert SecretVault(new_key).open(sealed) == SECRET  # the new key alone opens it
    with pytest.raises(RuntimeError):
        SecretVault(KEY).open(sealed)
    rotated = app.NotificationDeps(uow=deps.uow, vault=SecretVault(new_key), webhooks=deps.webhooks)
    assert (await app.get_channel(rotated, c, api.GetNotificationChannel(id=view.id))).has_secret
