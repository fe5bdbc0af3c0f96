"""Every configuration variable Outpost reads, from the settings structs themselves.

``outpost_kit.settings.load_settings`` reads field ``f`` of service ``svc``'s settings from
``OUTPOST_<SVC>_<F>``, else from the shared ``OUTPOST_<F>``. Besides the structs, a few
variables are read elsewhere; they are listed in ``EXTRA`` with where they are read, so a
deployment file naming anything else is an error (tools/check_deploy.py) and the reference
in docs/operations.md lists them all (tools/gen_config_reference.py).
"""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

SERVICES = ("identity", "devices", "readings", "alerting", "exports", "fleet", "gateway")

# Variables not in a settings struct: (name pattern, who reads it, meaning).
EXTRA: tuple[tuple[str, str, str], ...] = (
    (
        "OUTPOST_ADMIN_DATABASE_URL",
        "`outpost-<service> migrate`, `rotate-*-keys`, `outpost-admin deploy init`",
        "the database administrator's DSN: creates each service's schema and roles and runs"
        " its migrations",
    ),
    (
        "OUTPOST_<SVC>_DB_PASSWORD",
        "`outpost-<service> migrate`",
        "the password `migrate` gives the service's login role `outpost_<service>`",
    ),
    (
        "OUTPOST_ENV_FILE",
        "the image's entry point (deploy/docker/entrypoint.sh)",
        "a file of `KEY=VALUE` lines read before the process starts (docker compose's"
        " generated secrets)",
    ),
    (
        "OUTPOST_SERVICE",
        "the image's entry point",
        "which `outpost-<service>` the image runs; set by the Dockerfile from `ARG SERVICE`",
    ),
)
EXTRA_SHARED = frozenset({"OUTPOST_ADMIN_DATABASE_URL", "OUTPOST_ENV_FILE", "OUTPOST_SERVICE"})


@dataclass(frozen=True)
class Setting:
    service: str
    name: str  # the field
    type: str
    default: str
    comment: str
    inherited: bool  # a CommonSettings field

    @property
    def variable(self) -> str:
        return f"OUTPOST_{self.service.upper()}_{self.name.upper()}"

    @property
    def shared_variable(self) -> str:
        return f"OUTPOST_{self.name.upper()}"


def settings_type(service: str) -> type[msgspec.Struct]:
    from outpost_kit.settings import CommonSettings

    module = importlib.import_module(f"outpost_{service}.settings")
    found = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, CommonSettings)
        and obj is not CommonSettings
        and obj.__module__ == module.__name__
    ]
    if len(found) != 1:
        raise LookupError(f"outpost_{service}.settings: expected one settings struct, got {found}")
    return found[0]


def _type_name(type_: Any) -> str:
    text = getattr(type_, "__name__", None) if not hasattr(type_, "__args__") else None
    if text is None:
        text = str(type_).replace("typing.", "").replace("outpost_kit.settings.", "")
    return re.sub(r"\bNoneType\b", "None", text)


def _default(field: msgspec.structs.FieldInfo) -> str:
    if field.default is not msgspec.NODEFAULT:
        value = field.default
    elif field.default_factory is not msgspec.NODEFAULT:
        value = field.default_factory()
    else:
        return "(required)"
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value == "":
        return '""'
    return str(value)


def _comments(cls: type) -> dict[str, str]:
    """The comment lines just above each field in the class body (the structs document
    their fields that way); a trailing comment on the field's line too."""
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__.startswith(("msgspec", "builtins")):
            continue
        try:
            lines = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):
            continue
        pending: list[str] = []
        previous_field = ""  # a field just above, with no blank line or comment between
        for line in lines:
            stripped = line.strip()
            match = re.match(r"^([a-z_][a-z0-9_]*)\s*:\s*[^=]+(?:=\s*(.*))?$", stripped)
            if stripped.startswith("#"):
                text = stripped.lstrip("#").strip()
                if not text.startswith("---"):  # a section header, not a field's comment
                    pending.append(text)
            elif match and line.startswith("    ") and not line.startswith("     "):
                trailing = ""
                if "  # " in stripped:
                    trailing = stripped.split("  # ", 1)[1].strip()
                text = " ".join(p for p in [*pending, trailing] if p)
                if not text and previous_field and comments.get(previous_field):
                    above = comments[previous_field]
                    text = above if above.startswith("(with") else f"(with `{previous_field}`)"
                comments[match.group(1)] = text or comments.get(match.group(1), "")
                pending = []
                previous_field = match.group(1)
            else:
                pending = []
                previous_field = ""
    return comments


def settings(service: str) -> list[Setting]:
    from outpost_kit.settings import CommonSettings

    cls = settings_type(service)
    comments = _comments(cls)
    common = {f.name for f in msgspec.structs.fields(CommonSettings)}
    out = []
    for f in msgspec.structs.fields(cls):
        comment = comments.get(f.name, "")
        group = re.fullmatch(r"\(with `([a-z0-9_]+)`\)", comment)
        if group:  # a field under another's comment: name the variable that comment is on
            prefix = "OUTPOST_" if group.group(1) in common else f"OUTPOST_{service.upper()}_"
            comment = f"see `{prefix}{group.group(1).upper()}`"
        out.append(
            Setting(
                service=service,
                name=f.name,
                type=_type_name(f.type),
                default=_default(f),
                comment=comment,
                inherited=f.name in common,
            )
        )
    return out


def common_settings() -> list[Setting]:
    """CommonSettings' fields, once (as ``OUTPOST_<F>`` and ``OUTPOST_<SVC>_<F>``)."""
    return [s for s in settings(SERVICES[0]) if s.inherited]


def known_variables(service: str | None) -> frozenset[str]:
    """What a process of ``service`` reads (None: ``outpost-admin``, which reads the shared
    broker variables)."""
    if service is None:
        return frozenset(
            {
                "OUTPOST_NATS_URL",
                "OUTPOST_NATS_TLS_CA",
                "OUTPOST_NATS_TLS_CERT",
                "OUTPOST_NATS_TLS_KEY",
                *EXTRA_SHARED,
            }
        )
    names: set[str] = set(EXTRA_SHARED)
    names.add(f"OUTPOST_{service.upper()}_DB_PASSWORD")
    for setting in settings(service):
        names.add(setting.variable)
        names.add(setting.shared_variable)
    return frozenset(names)


def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
