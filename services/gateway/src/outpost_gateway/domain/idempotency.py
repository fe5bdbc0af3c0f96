"""Idempotency-Key on POST as pure data (docs/api.md "Single resources"): the fingerprint of a
request, the verdict on a key already seen, and which parts of a response are replayed."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
# Response headers worth replaying; rate-limit headers and the request id describe the
# replaying request and are set afresh.
REPLAYED_HEADERS = frozenset({"content-type", "location", "etag"})


def fingerprint(method: str, path: str, query: str, body: bytes) -> bytes:
    """SHA-256 of the request the key names: the same key on another route or with another
    body or query is another request."""
    h = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), query.encode()):
        h.update(len(part).to_bytes(4, "big"))
        h.update(part)
    h.update(body)
    return h.digest()


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True, slots=True)
class Record:
    """A key already in the store."""

    request_hash: bytes
    response: StoredResponse | None  # None while the first request is in flight


class Verdict(enum.Enum):
    REPLAY = "replay"
    MISMATCH = "mismatch"
    IN_FLIGHT = "in_flight"


def judge(record: Record, request_hash: bytes) -> Verdict:
    """What to answer for a key that another request already claimed."""
    if record.request_hash != request_hash:
        return Verdict.MISMATCH
    if record.response is None:
        return Verdict.IN_FLIGHT
    return Verdict.REPLAY


def worth_keeping(status: int) -> bool:
    """Whether a response is the key's final answer. A 5xx (the service did not answer, or
    failed) is not: the key is released so the client can retry with it."""
    return status < 500


def keep_headers(headers: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple((k, v) for k, v in headers if k.lower() in REPLAYED_HEADERS)
