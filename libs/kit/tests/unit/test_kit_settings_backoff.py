"""Pure tests: the consumer's redelivery backoff and settings loading."""

from __future__ import annotations

import msgspec
import pytest

from outpost_kit.consumer import backoff_seconds
from outpost_kit.settings import CommonSettings, Secret, SettingsError, load_settings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("attempt", "seconds"),
    [(0, 0.2), (1, 0.2), (2, 0.4), (3, 0.8), (4, 1.6), (8, 25.6), (9, 30.0), (50, 30.0)],
)
def test_backoff_doubles_from_200ms_and_caps_at_30s(attempt: int, seconds: float) -> None:
    assert backoff_seconds(attempt) == pytest.approx(seconds)


def test_backoff_never_decreases() -> None:
    delays = [backoff_seconds(a) for a in range(1, 40)]
    assert delays == sorted(delays)
    assert all(isinstance(d, float) for d in delays)


class DemoSettings(CommonSettings, kw_only=True, frozen=True):
    api_key: Secret = Secret("")
    replicas: int = 1
    ratio: float = 0.5
    debug: bool = False
    tags: tuple[str, ...] = ()
    hosts: list[str] = msgspec.field(default_factory=list)
    limits: dict[str, int] = msgspec.field(default_factory=dict)


def test_load_settings_maps_env_to_typed_fields() -> None:
    env = {
        "OUTPOST_DEMO_REPLICAS": "3",
        "OUTPOST_DEMO_RATIO": "0.25",
        "OUTPOST_DEMO_DEBUG": "true",
        "OUTPOST_DEMO_TAGS": "a, b,c",
        "OUTPOST_DEMO_HOSTS": '["h1", "h2"]',
        "OUTPOST_DEMO_LIMITS": '{"page": 100}',
        "OUTPOST_DEMO_HEALTH_PORT": "8081",
        "OUTPOST_NATS_URL": "nats://shared:4222",
        "OUTPOST_DEMO_DATABASE_URL": "postgresql://svc:pw@db/outpost",
        "OUTPOST_DEMO_API_KEY": "sk_live_123",
        "UNRELATED": "ignored",
    }

    s = load_settings(DemoSettings, "demo", env)

    assert (s.replicas, s.ratio, s.debug) == (3, 0.25, True)
    assert s.tags == ("a", "b", "c")
    assert s.hosts == ["h1", "h2"]
    assert s.limits == {"page": 100}
    assert s.health_port == 8081
    assert s.nats_url == "nats://shared:4222"  # the shared variable as a fallback
    assert s.log_level == "INFO"  # defaults stay
    assert isinstance(s.api_key, Secret)
    assert isinstance(s.database_url, Secret)
    assert s.api_key.reveal() == "sk_live_123"
    assert s.database_url is not None
    assert s.database_url.reveal() == "postgresql://svc:pw@db/outpost"


def test_service_variable_wins_over_shared() -> None:
    env = {"OUTPOST_NATS_URL": "nats://shared:4222", "OUTPOST_DEMO_NATS_URL": "nats://own:4222"}
    assert load_settings(DemoSettings, "demo", env).nats_url == "nats://own:4222"


def test_secrets_are_masked_in_repr_str_and_format() -> None:
    s = load_settings(
        DemoSettings,
        "demo",
        {"OUTPOST_DEMO_API_KEY": "sk_live_123", "OUTPOST_DATABASE_URL": "postgresql://u:pw@h/d"},
    )
    for text in (repr(s), str(s), f"{s.api_key}", str(s.api_key), repr(s.database_url)):
        assert "sk_live_123" not in text
        assert "pw@" not in text


def test_invalid_value_is_a_settings_error_naming_the_service() -> None:
    with pytest.raises(SettingsError, match="demo"):
        load_settings(DemoSettings, "demo", {"OUTPOST_DEMO_REPLICAS": "many"})


def test_empty_environment_gives_defaults() -> None:
    assert load_settings(DemoSettings, "demo", {}) == DemoSettings()
