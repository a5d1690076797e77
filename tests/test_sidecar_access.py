"""Who the metrics port serves: basic auth against bcrypt hashes, and the rate limit."""

from __future__ import annotations

import base64
from pathlib import Path

import bcrypt
import pytest

from comfy_init.sidecar import access as access_module
from comfy_init.sidecar.access import Access, TokenBucket
from comfy_init.sidecar.web_config import RateLimit, WebConfig
from harness.certs import password_hash

pytestmark = pytest.mark.timeout(60)


def basic(user: str, password: str | bytes) -> str:
    raw = password if isinstance(password, bytes) else password.encode()
    return "Basic " + base64.b64encode(user.encode() + b":" + raw).decode()


def guarded(**users: str) -> Access:
    hashes = {name: password_hash(pw).encode() for name, pw in users.items()}
    return Access(WebConfig(Path("/web.yml"), users=hashes))


def test_without_users_everyone_is_served() -> None:
    open_access = Access(None)
    assert not open_access.protected
    assert open_access.authorized(None)
    assert open_access.allow_now()


def test_the_right_password_passes_and_anything_else_does_not() -> None:
    access = guarded(prometheus="s3cret", alice="wonder")
    assert access.protected
    assert access.authorized(basic("prometheus", "s3cret"))
    assert access.authorized(basic("alice", "wonder"))
    assert not access.authorized(basic("prometheus", "wonder"))  # another user's password
    assert not access.authorized(basic("mallory", "s3cret"))  # no such user
    assert not access.authorized(basic("prometheus", "s3cret "))
    assert not access.authorized(None)
    assert not access.authorized("Bearer s3cret")
    assert not access.authorized("Basic not-base64!")
    assert not access.authorized("Basic " + base64.b64encode(b"no colon").decode())


def test_a_password_longer_than_bcrypt_reads_is_refused_not_cut() -> None:
    long = "x" * 72
    access = guarded(prometheus=long)
    assert access.authorized(basic("prometheus", long))
    assert not access.authorized(basic("prometheus", long + "tail"))


def test_an_unknown_user_costs_a_bcrypt_check_like_a_known_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    access = guarded(prometheus="s3cret")
    checked: list[bytes] = []
    real = bcrypt.checkpw

    def spy(password: bytes, hashed: bytes) -> bool:
        checked.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(access_module.bcrypt, "checkpw", spy)
    assert not access.authorized(basic("mallory", "s3cret"))
    assert not access.authorized(basic("prometheus", "wrong"))
    assert len(checked) == 2
    assert checked[0] != checked[1]  # the decoy hash, then the user's
    assert checked[0].split(b"$")[2] == checked[1].split(b"$")[2]  # of the same cost


def test_each_outcome_is_remembered_so_repeated_scrapes_cost_one_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    access = guarded(prometheus="s3cret")
    calls = 0
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        nonlocal calls
        calls += 1
        return real(password, hashed)

    monkeypatch.setattr(access_module.bcrypt, "checkpw", counting)
    for _ in range(5):
        assert access.authorized(basic("prometheus", "s3cret"))
        assert not access.authorized(basic("prometheus", "guess"))
    assert calls == 2


def test_the_rate_limit_lets_a_burst_through_then_one_per_interval() -> None:
    now = [100.0]
    bucket = TokenBucket(RateLimit(interval_seconds=2.0, burst=3), clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] += 1.0
    assert not bucket.take()
    now[0] += 1.0
    assert bucket.take()
    assert not bucket.take()
    now[0] += 60.0  # a long pause refills the burst, no more
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
