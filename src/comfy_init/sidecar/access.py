"""Who the metrics port serves, from the web config: the rate limit (429) and HTTP basic
auth against the bcrypt hashes of ``basic_auth_users`` (401), as exporter-toolkit does.

A password is checked with pyca's bcrypt (``checkpw`` compares in constant time); a user
that does not exist is checked against a hash of the same cost, so the answer's timing does
not tell which users exist.  bcrypt is slow on purpose (about 70 ms at cost 10): one check
runs at a time, and each (user, password) outcome is remembered, keyed by an HMAC of the
password under a key made at start, so a scrape every few seconds costs one check in all.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import threading
import time
from collections.abc import Callable

import bcrypt

from comfy_init import logs
from comfy_init.sidecar.web_config import RateLimit, WebConfig

log = logs.get_logger("sidecar.access")

CACHE_ENTRIES = 256  # remembered outcomes; emptied when full
BCRYPT_MAX_BYTES = 72  # bcrypt reads no further: a longer password is refused, never cut


class Access:
    def __init__(self, config: WebConfig | None) -> None:
        self.users = dict(config.users) if config is not None else {}
        self.headers = dict(config.headers) if config is not None else {}
        limit = config.rate_limit if config is not None else None
        self.bucket = TokenBucket(limit) if limit is not None else None
        self._lock = threading.Lock()  # one bcrypt at a time: it is CPU-bound
        self._cache: dict[tuple[str, bytes], bool] = {}
        self._cache_key = os.urandom(32)
        self._decoy = b""
        if self.users:
            cost = max(int(h.split(b"$")[2]) for h in self.users.values())
            self._decoy = bcrypt.hashpw(os.urandom(16), bcrypt.gensalt(cost))

    @property
    def protected(self) -> bool:
        """Whether requests need a user and password."""
        return bool(self.users)

    def allow_now(self) -> bool:
        """False when the rate limit is exhausted (answer 429)."""
        return self.bucket is None or self.bucket.take()

    def authorized(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header value lets the request through."""
        if not self.users:
            return True
        credentials = _basic(authorization)
        if credentials is None:
            return False
        user, password = credentials
        key = (user, hmac.new(self._cache_key, password, hashlib.sha256).digest())
        with self._lock:
            known = self._cache.get(key)
            if known is None:
                known = self._check(user, password)
                if len(self._cache) >= CACHE_ENTRIES:
                    self._cache.clear()
                self._cache[key] = known
        return known

    def _check(self, user: str, password: bytes) -> bool:
        hashed = self._decoy
        found = False
        for name, candidate in self.users.items():  # compare every name: timing tells none
            if hmac.compare_digest(name.encode(), user.encode()):
                hashed, found = candidate, True
        if len(password) > BCRYPT_MAX_BYTES:
            password, found = password[:BCRYPT_MAX_BYTES], False
        try:
            matches = bcrypt.checkpw(password, hashed)
        except ValueError as exc:  # a hash of the right form that bcrypt still refuses
            log.error("basic_auth_hash_unusable", user=user, error=str(exc))
            return False
        return found and matches


def _basic(authorization: str | None) -> tuple[str, bytes] | None:
    """(user, password) of a ``Basic`` Authorization header, or None."""
    if not authorization:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    if not colon:
        return None
    return user.decode("utf-8", errors="replace"), password


class TokenBucket:
    """``rate_limit``: ``burst`` requests at once, then one per ``interval``."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.tokens = float(limit.burst)
        self.clock = clock
        self.last = self.clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self.clock()
            refill = (now - self.last) / self.limit.interval_seconds
            self.tokens = min(float(self.limit.burst), self.tokens + refill)
            self.last = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return True
            return False
