"""Firmware versions: Semantic Versioning 2.0.0 (https://semver.org), parsed and ordered (ADR 0094).

A version is ``MAJOR.MINOR.PATCH``, then optionally ``-PRERELEASE`` (dot-separated
identifiers) and ``+BUILD`` (dot-separated identifiers); no leading zeros in numbers, no
``v`` prefix, at most 128 characters. Precedence, as the specification's section 11 says:

1. MAJOR, MINOR, PATCH compared numerically, in that order;
2. a version with a pre-release has lower precedence than the same version without one
   (``1.0.0-rc.1 < 1.0.0``);
3. pre-releases compare identifier by identifier from the left: numeric identifiers
   numerically, alphanumeric ones in ASCII order, a numeric one lower than an alphanumeric
   one, and a shorter list lower when all its identifiers equal the longer one's start
   (``1.0.0-alpha < 1.0.0-alpha.1 < 1.0.0-alpha.beta < 1.0.0-beta < 1.0.0-beta.2 <
   1.0.0-beta.11 < 1.0.0-rc.1 < 1.0.0``);
4. build metadata is ignored: ``1.0.0+a`` and ``1.0.0+b`` have the same precedence.

``Version`` orders by precedence (``<``, ``sort``), while ``==`` also compares the build
metadata, so two builds of one version are equally recent but not the same image: a device
runs the target version when the version it reports is the target's exactly (``same``).
"""

from __future__ import annotations

import functools
import re

import msgspec

from outpost_contracts.base import whole
from outpost_contracts.errors import validation_error
from outpost_contracts.firmware import SEMVER_PATTERN

_SEMVER = re.compile(whole(SEMVER_PATTERN))
MAX_LENGTH = 128


class Version(msgspec.Struct, frozen=True, kw_only=True):
    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: tuple[str, ...] = ()

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text

    @property
    def key(self) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
        """A sort key that orders by precedence (build metadata ignored)."""
        # No pre-release sorts after every pre-release of the same MAJOR.MINOR.PATCH.
        ids = tuple((0, int(i)) if i.isdigit() else (1, i) for i in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, ids)

    def __lt__(self, other: Version) -> bool:
        return compare(self, other) < 0

    def __le__(self, other: Version) -> bool:
        return compare(self, other) <= 0

    def __gt__(self, other: Version) -> bool:
        return compare(self, other) > 0

    def __ge__(self, other: Version) -> bool:
        return compare(self, other) >= 0


def parse(text: str, field: str = "version") -> Version:
    """The version ``text`` names; a ``validation_error`` on ``field`` if it is not SemVer."""
    if len(text) > MAX_LENGTH:
        raise validation_error(field, f"must be at most {MAX_LENGTH} characters")
    match = _SEMVER.fullmatch(text)
    if match is None:
        raise validation_error(
            field, "must be a semantic version MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]"
        )
    major, minor, patch, pre, build = match.groups()
    return Version(
        major=int(major),
        minor=int(minor),
        patch=int(patch),
        prerelease=tuple(pre.split(".")) if pre else (),
        build=tuple(build.split(".")) if build else (),
    )


def is_valid(text: str) -> bool:
    return len(text) <= MAX_LENGTH and _SEMVER.fullmatch(text) is not None


def compare(a: Version, b: Version) -> int:
    """-1, 0 or 1 as ``a`` has lower, equal or higher precedence than ``b``."""
    ka, kb = a.key, b.key
    return (ka > kb) - (ka < kb)


def compare_text(a: str, b: str) -> int:
    return compare(parse(a), parse(b))


def same(a: str, b: str) -> bool:
    """The same version, build metadata included (what "runs the target" means)."""
    return is_valid(a) and is_valid(b) and parse(a) == parse(b)


sort_key = functools.cmp_to_key(compare_text)
