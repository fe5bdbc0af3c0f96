"""Settings read once, at the edge, from ``OUTPOST_<SERVICE>_<FIELD>`` variables.

A service declares a frozen ``msgspec.Struct`` of its settings; ``load_settings`` reads the
environment (passed in, so tests need no monkeypatching) and converts strings to the declared
types. Shared variables (``OUTPOST_NATS_URL``, ``OUTPOST_DATABASE_URL``...) are read when the
service-specific one is absent. Secrets are ``Secret`` so they never show in a repr or a log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec

from outpost_contracts.errors import OutpostError

S = TypeVar("S", bound=msgspec.Struct)


class Secret(str):
    """A string whose repr and str in logs are masked. ``.reveal()`` gives the value."""

    def __repr__(self) -> str:
        return "Secret('********')"

    def reveal(self) -> str:
        return str.__str__(self)

    def __str__(self) -> str:
        return "********"


class SettingsError(OutpostError):
    pass


def _dec_hook(type_: type, obj: Any) -> Any:
    if type_ is Secret:
        return Secret(obj)
    raise NotImplementedError(type_)


def load_settings(cls: type[S], service: str, environ: Mapping[str, str]) -> S:
    """Build ``cls`` from ``OUTPOST_<SERVICE>_<FIELD>`` (falling back to ``OUTPOST_<FIELD>``)."""
    values: dict[str, Any] = {}
    service_prefix = f"OUTPOST_{service.upper()}_"
    for field in msgspec.structs.fields(cls):
        key = field.name.upper()
        for var in (service_prefix + key, f"OUTPOST_{key}"):
            if var in environ:
                raw = environ[var]
                values[field.encode_name] = _parse(raw, field.type)
                break
    try:
        return msgspec.convert(values, cls, strict=False, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"invalid settings for {service}: {exc}") from exc


def _parse(raw: str, type_: Any) -> Any:
    """Lists and dicts may be given as JSON; everything else stays a string for ``convert``."""
    text = raw.strip()
    if text[:1] in "[{":
        try:
            return msgspec.json.decode(text)
        except msgspec.DecodeError:
            pass
    origin = getattr(type_, "__origin__", None)
    if origin in (list, tuple, set, frozenset) and isinstance(raw, str):
        return [p.strip() for p in raw.split(",") if p.strip()]
    return raw


class CommonSettings(msgspec.Struct, kw_only=True, frozen=True):
    """What every service process needs. Services extend it with their own fields."""

    nats_url: str = "nats://127.0.0.1:4222"  # tls://user:password@host:port with a broker
    # The broker's CA, and this service's client certificate and key (files): when the
    # broker requires TLS (docs/runbook.md, "The broker").
    nats_tls_ca: str = ""
    nats_tls_cert: str = ""
    nats_tls_key: str = ""
    database_url: Secret | None = None  # the service role's DSN
    # Where /healthz, /readyz and /metrics are served (0: a free port; containers: 9090
    # on 0.0.0.0). The gateway serves them on its own HTTP port instead.
    health_port: int = 0
    health_host: str = "127.0.0.1"
    # How long a request to another service waits for its answer.
    rpc_timeout_seconds: float = 5.0
    # DEBUG, INFO, WARNING, ERROR; logs are JSON lines on stderr.
    log_level: str = "INFO"
    # Appended to the process's NATS connection name (Kubernetes: the pod's name).
    instance: str = ""
    # Replicas of every stream (and object store) this process creates or updates: 1 with
    # one nats-server, 3 with a three-node cluster (docs/operations.md, "The broker").
    nats_stream_replicas: int = 1

    def nats_tls(self) -> Any:
        """The ``ssl.SSLContext`` for the broker, or None without ``nats_tls_ca``."""
        from outpost_kit.messaging import client_tls

        return client_tls(self.nats_tls_ca, self.nats_tls_cert, self.nats_tls_key)
