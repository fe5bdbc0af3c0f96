"""What a clustered broker needs of the kit (decision 80): credentials that reach the
cluster's other nodes, and streams at the configured replicas."""

from __future__ import annotations

import pytest

from outpost_contracts.streams import STREAMS
from outpost_kit.messaging import stream_config, url_credentials
from outpost_kit.settings import CommonSettings, load_settings

pytestmark = pytest.mark.unit


def test_the_url_credentials_are_decoded_for_every_node() -> None:
    assert url_credentials("tls://readings:p%40ss%2Fw@nats:4222") == ("readings", "p@ss/w")
    assert url_credentials("tls://token@nats:4222") == ("token", None)
    assert url_credentials("nats://127.0.0.1:4222") == (None, None)


def test_streams_take_the_configured_replicas() -> None:
    assert {stream_config(s).num_replicas for s in STREAMS} == {1}
    assert {stream_config(s, 3).num_replicas for s in STREAMS} == {3}
    settings = load_settings(CommonSettings, "readings", {"OUTPOST_NATS_STREAM_REPLICAS": "3"})
    assert settings.nats_stream_replicas == 3
