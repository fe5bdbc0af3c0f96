"""Firmware versions: SemVer 2.0.0 parsing and precedence (ADR 0094)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outpost_contracts.errors import ValidationFailed
from outpost_fleet.domain import semver
from outpost_fleet.domain.semver import Version, compare_text, parse, same

pytestmark = pytest.mark.unit


def test_the_specifications_example_is_in_ascending_order() -> None:
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.1.0",
        "1.10.0",
        "2.0.0",
    ]
    assert sorted(reversed(ordered), key=semver.sort_key) == ordered
    for low, high in itertools.pairwise(ordered):
        assert parse(low) < parse(high) and compare_text(high, low) == 1


def test_parts_are_read() -> None:
    assert parse("1.4.2-rc.1+build.5") == Version(
        major=1, minor=4, patch=2, prerelease=("rc", "1"), build=("build", "5")
    )
    assert str(parse("1.4.2-rc.1+build.5")) == "1.4.2-rc.1+build.5"


def test_build_metadata_is_ignored_by_precedence_but_not_by_sameness() -> None:
    assert compare_text("1.0.0+a", "1.0.0+b") == 0
    assert not parse("1.0.0+a") < parse("1.0.0+b")
    assert same("1.0.0+a", "1.0.0+a") and not same("1.0.0+a", "1.0.0+b")
    assert not same("1.0.0", "not a version")


@pytest.mark.parametrize(
    "text",
    [
        "1",
        "1.2",
        "v1.2.3",
        "01.2.3",
        "1.02.3",
        "1.2.3-01",
        "1.2.3-",
        "1.2.3+",
        "1.2.3-a..b",
        "1.2.3\n",
        " 1.2.3",
        "1.2.3-é",
        "1." + "9" * 200 + ".0",
    ],
)
def test_what_is_not_a_semantic_version_is_a_validation_error(text: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse(text, field="firmwarePin")
    assert caught.value.fields[0].name == "firmwarePin"
    assert not semver.is_valid(text)


def test_numeric_identifiers_sort_below_alphanumeric_and_numerically() -> None:
    assert parse("1.0.0-2") < parse("1.0.0-10") < parse("1.0.0-a")
    assert parse("1.0.0-0a") > parse("1.0.0-99")  # "0a" is alphanumeric


# --- properties: against the specification's rules written out one by one -----------------

ident = st.one_of(
    st.integers(0, 30).map(str),
    st.text("abcxyzAZ-0123456789", min_size=1, max_size=4).filter(lambda s: not s.isdigit()),
)
versions = st.builds(
    lambda ma, mi, pa, pre, build: str(
        Version(major=ma, minor=mi, patch=pa, prerelease=tuple(pre), build=tuple(build))
    ),
    st.integers(0, 3),
    st.integers(0, 3),
    st.integers(0, 3),
    st.lists(ident, max_size=3),
    st.lists(st.text("ab01-", min_size=1, max_size=3), max_size=2),
)


def _spec_compare(a: str, b: str) -> int:
    """Section 11 of semver.org, literally."""

    def split(v: str) -> tuple[list[int], list[str]]:
        core, _, pre = v.split("+")[0].partition("-")
        return [int(x) for x in core.split(".")], pre.split(".") if pre else []

    (ca, pa), (cb, pb) = split(a), split(b)
    if ca != cb:
        return -1 if ca < cb else 1
    if not pa or not pb:
        return (not pa) - (not pb)
    for x, y in zip(pa, pb, strict=False):
        if x == y:
            continue
        if x.isdigit() and y.isdigit():
            return -1 if int(x) < int(y) else 1
        if x.isdigit() != y.isdigit():
            return -1 if x.isdigit() else 1
        return -1 if x < y else 1
    return (len(pa) > len(pb)) - (len(pa) < len(pb))


@settings(max_examples=300, deadline=None)
@given(versions, versions)
def test_precedence_is_the_specifications(a: str, b: str) -> None:
    assert compare_text(a, b) == _spec_compare(a, b)
    assert compare_text(a, b) == -compare_text(b, a)


@settings(max_examples=200, deadline=None)
@given(versions)
def test_a_version_round_trips_through_its_text(text: str) -> None:
    assert semver.is_valid(text)
    assert str(parse(text)) == text


@settings(max_examples=100, deadline=None)
@given(st.lists(versions, min_size=1, max_size=8))
def test_sorting_is_a_total_order(texts: list[str]) -> None:
    ordered = sorted(texts, key=semver.sort_key)
    for low, high in itertools.pairwise(ordered):
        assert compare_text(low, high) <= 0
    assert [v.key for v in sorted(map(parse, texts))] == [parse(t).key for t in ordered]
