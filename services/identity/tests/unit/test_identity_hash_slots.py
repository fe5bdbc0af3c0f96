"""At most N password hashes at once per identity process, the rest waiting a bounded time
and then ``service_unavailable`` (docs/design/reliability.md ``public-throttle``, decision 75).

The hasher below blocks until the test lets it go, so how many run at once is forced, not
hoped for: no timing decides the outcome."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from argon2 import PasswordHasher

from outpost_contracts.errors import ErrorType, OutpostError
from outpost_identity.adapters.passwords import Passwords, make_hasher

pytestmark = pytest.mark.unit


class HeldHasher(PasswordHasher):
    """Counts the hashes running at once; each waits for ``release``."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.release = threading.Event()
        self.holding = False

    def _enter(self) -> None:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)

    def _leave(self) -> None:
        with self.lock:
            self.running -= 1

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        if not self.holding:  # the dummy hash made at construction
            return super().hash(password)
        self._enter()
        try:
            self.release.wait(30)
            return super().hash(password)
        finally:
            self._leave()

    def verify(self, hash: str | bytes, password: str | bytes) -> Any:
        self._enter()
        try:
            self.release.wait(30)
            return super().verify(hash, password)
        finally:
            self._leave()


async def _until(predicate: Any) -> None:
    for _ in range(2000):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never held")


async def test_no_more_than_max_concurrent_hashes_run_at_once() -> None:
    hasher = HeldHasher()
    passwords = Passwords(hasher, max_concurrent=2, wait_seconds=60)
    hasher.holding = True
    calls = [asyncio.ensure_future(passwords.verify(None, f"guess-{i}")) for i in range(12)]
    await _until(lambda: hasher.running == 2)
    await asyncio.sleep(0.2)  # had a third started, it would be counted by now
    assert hasher.running == 2
    hasher.release.set()
    results = await asyncio.gather(*calls)
    assert results == [False] * 12
    assert hasher.peak == 2


async def test_a_hash_that_cannot_start_in_time_is_service_unavailable() -> None:
    hasher = HeldHasher()
    passwords = Passwords(hasher, max_concurrent=1, wait_seconds=0.1)
    hasher.holding = True
    first = asyncio.ensure_future(passwords.hash("first"))
    await _until(lambda: hasher.running == 1)
    with pytest.raises(OutpostError) as refused:
        await passwords.verify(None, "second")
    assert refused.value.type is ErrorType.SERVICE_UNAVAILABLE
    assert refused.value.status == 503
    hasher.release.set()
    assert (await first).startswith("$argon2id$")
    # The slot is free again: the next one runs.
    assert await passwords.verify(None, "third") is False


async def test_a_free_slot_hashes_and_verifies_for_real() -> None:
    passwords = Passwords(make_hasher(time_cost=1, memory_kib=8, parallelism=1), max_concurrent=1)
    stored = await passwords.hash("correct horse")
    assert await passwords.verify(stored, "correct horse") is True
    assert await passwords.verify(stored, "wrong") is False
