"""The wire format of API keys, shared by identity (which issues them) and the gateway (which
verifies them from its event-fed cache).

A key is ``sk_live_<lookup><secret>``: a 12-character lookup prefix (indexed, safe to log and
to publish) followed by 32 characters of secret, both base62. Only ``hash_key(key)``
(SHA-256; a key has ~190 bits of entropy, so a slow password hash would buy nothing and cost
every request) is ever stored or published. Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from collections.abc import Iterable

KEY_PREFIX = "sk_live_"
LOOKUP_LEN = 12
SECRET_LEN = 32
_ALPHABET = string.ascii_letters + string.digits
_BODY = re.compile(f"[A-Za-z0-9]{{{LOOKUP_LEN + SECRET_LEN}}}")


def generate_key() -> tuple[str, str]:
    """A new key and its lookup prefix."""
    body = "".join(secrets.choice(_ALPHABET) for _ in range(LOOKUP_LEN + SECRET_LEN))
    return KEY_PREFIX + body, body[:LOOKUP_LEN]


def lookup_prefix(key: str) -> str | None:
    """The lookup prefix of something shaped like a key, else None."""
    if not key.startswith(KEY_PREFIX):
        return None
    body = key[len(KEY_PREFIX) :]
    if _BODY.fullmatch(body) is None:  # runs on every request: one regex, not a loop
        return None
    return body[:LOOKUP_LEN]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def verify_key(key: str, key_hash: str) -> bool:
    return hmac.compare_digest(hash_key(key), key_hash)


# The actions of the scope grammar (``<resource>:<action>``, ``identity.Scope``): ``<r>:*`` is
# exactly ``<r>:read`` and ``<r>:write``.
ACTIONS = ("read", "write")


def covers(held: Iterable[str], wanted: str) -> bool:
    """Whether a set of scopes covers ``wanted``: one of them does (``scope_covers``), or
    ``wanted`` is ``<resource>:*`` and the set covers each of its actions (``*:read`` and
    ``*:write`` together cover ``devices:*``, but never ``*``: only ``*`` covers ``*``)."""
    held = tuple(held)
    if any(scope_covers(h, wanted) for h in held):
        return True
    resource, _, action = wanted.partition(":")
    if action != "*" or resource in ("", "*"):
        return False
    return all(covers(held, f"{resource}:{a}") for a in ACTIONS)


def scope_covers(granted: str, wanted: str) -> bool:
    """Scope grammar shared by identity (a key never gets more than its creator) and the
    gateway (a route's required scope): ``*`` covers everything, ``devices:*`` covers
    ``devices:read``, ``*:read`` covers every ``<resource>:read``, otherwise an exact match."""
    if granted in ("*", wanted):
        return True
    resource, _, action = granted.partition(":")
    want_resource, _, want_action = wanted.partition(":")
    if resource == "*":
        return action == want_action and want_resource != "*"
    return action == "*" and want_resource == resource
