"""Profiles of the command line: ``~/.config/outpost/config.yaml`` (``OUTPOST_CONFIG``
elsewhere), written with mode 0600 because it holds credentials.

    default: dev
    profiles:
      dev: {url: http://127.0.0.1:8080, apiKey: sk_live_…}
      ops: {url: https://outpost.example.com, accessToken: eyJ…, refreshToken: …}

``OUTPOST_URL`` and ``OUTPOST_API_KEY`` override the profile's; ``--profile`` (or
``OUTPOST_PROFILE``) picks one.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_URL = "http://127.0.0.1:8080"  # make dev's gateway


def config_path() -> Path:
    explicit = os.environ.get("OUTPOST_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "outpost" / "config.yaml"


@dataclass
class Profile:
    name: str
    url: str = DEFAULT_URL
    api_key: str = ""
    access_token: str = ""
    refresh_token: str = ""
    organization: str = ""
    broker_ca: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def token(self) -> str:
        return self.api_key or self.access_token

    @property
    def kind(self) -> str:
        if self.api_key:
            return "api-key"
        return "session" if self.access_token else "none"

    def to_yaml(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.extra, "url": self.url}
        for key, value in (
            ("apiKey", self.api_key),
            ("accessToken", self.access_token),
            ("refreshToken", self.refresh_token),
            ("organization", self.organization),
            ("brokerCa", self.broker_ca),
        ):
            if value:
                out[key] = value
        return out

    @classmethod
    def from_yaml(cls, name: str, data: dict[str, Any]) -> Profile:
        known = {"url", "apiKey", "accessToken", "refreshToken", "organization", "brokerCa"}
        return cls(
            name=name,
            url=str(data.get("url") or DEFAULT_URL),
            api_key=str(data.get("apiKey") or ""),
            access_token=str(data.get("accessToken") or ""),
            refresh_token=str(data.get("refreshToken") or ""),
            organization=str(data.get("organization") or ""),
            broker_ca=str(data.get("brokerCa") or ""),
            extra={k: v for k, v in data.items() if k not in known},
        )


@dataclass
class Config:
    path: Path
    default: str = "default"
    profiles: dict[str, Profile] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None = None) -> Config:
        path = path or config_path()
        if not path.exists():
            return cls(path)
        data = yaml.safe_load(path.read_text()) or {}
        profiles = {
            str(name): Profile.from_yaml(str(name), dict(body or {}))
            for name, body in (data.get("profiles") or {}).items()
        }
        return cls(path, str(data.get("default") or "default"), profiles)

    def save(self) -> None:
        """Written to a 0600 file created beside it, then renamed over it: the credentials
        are never readable by others, not even for a moment."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        body = {
            "default": self.default,
            "profiles": {n: p.to_yaml() for n, p in sorted(self.profiles.items())},
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            yaml.safe_dump(body, out, sort_keys=False)
        os.chmod(tmp, stat.S_IRUSR | stat.S_IWUSR)
        os.replace(tmp, self.path)

    def profile(self, name: str | None = None) -> Profile:
        """The profile named (or ``OUTPOST_PROFILE``, or the default) with the environment's
        ``OUTPOST_URL`` / ``OUTPOST_API_KEY`` over it."""
        chosen = name or os.environ.get("OUTPOST_PROFILE") or self.default
        found = self.profiles.get(chosen)
        profile = (
            Profile(chosen)
            if found is None
            else Profile.from_yaml(chosen, found.to_yaml())  # a copy
        )
        if os.environ.get("OUTPOST_URL"):
            profile.url = os.environ["OUTPOST_URL"]
        if os.environ.get("OUTPOST_API_KEY"):
            profile.api_key = os.environ["OUTPOST_API_KEY"]
            profile.access_token = profile.refresh_token = ""
        return profile
