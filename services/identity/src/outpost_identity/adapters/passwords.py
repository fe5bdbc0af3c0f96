"""Password hashing: argon2id with explicit parameters (RFC 9106's second recommended option,
64 MiB, t=3, p=4), run off the event loop because each hash costs tens of milliseconds.

At most ``max_concurrent`` hashes run at once in a process (each holds its 64 MiB while it
runs), so identity's memory has a ceiling (docs/operations.md); a hash that cannot start
within ``wait_seconds`` is 503 ``service_unavailable`` (decision 75)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from outpost_contracts.errors import ErrorType, OutpostError

T = TypeVar("T")


def make_hasher(
    *, time_cost: int = 3, memory_kib: int = 64 * 1024, parallelism: int = 4
) -> PasswordHasher:
    return PasswordHasher(
        time_cost=time_cost,
        memory_cost=memory_kib,
        parallelism=parallelism,
        hash_len=32,
        salt_len=16,
        type=Type.ID,
    )


class Passwords:
    def __init__(
        self,
        hasher: PasswordHasher | None = None,
        *,
        max_concurrent: int = 4,
        wait_seconds: float = 2.0,
    ) -> None:
        self._hasher = hasher or make_hasher()
        # Verified when the email is unknown, so a miss costs what a wrong password costs.
        self._dummy = self._hasher.hash("outpost-dummy-password")
        self._slots = asyncio.Semaphore(max(1, max_concurrent))
        self._wait = wait_seconds

    async def hash(self, password: str) -> str:
        return await self._bounded(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        return await self._bounded(self._verify, password_hash, password)

    async def _bounded(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn`` in a thread once one of the process's hash slots is free."""
        try:
            async with asyncio.timeout(self._wait):
                await self._slots.acquire()
        except TimeoutError:
            raise OutpostError(
                "too many sign-ins at once; retry shortly", type=ErrorType.SERVICE_UNAVAILABLE
            ) from None
        try:
            return await asyncio.to_thread(fn, *args)
        finally:
            self._slots.release()

    def _verify(self, password_hash: str | None, password: str) -> bool:
        try:
            self._hasher.verify(password_hash or self._dummy, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return password_hash is not None
