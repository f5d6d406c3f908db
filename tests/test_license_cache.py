"""The per-process cache of verified licenses: fast, and never wrong about expiry or revocation."""

from __future__ import annotations

import time
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from deployd.errors import LicenseError
from deployd.licensing.cache import CachedLicenseVerifier, entry_bytes
from deployd.licensing.keyring import KeyRing
from deployd.licensing.tokens import LicenseVerifier
from tests.support import jwt_forge
from tests.support.factories import make_license_kit


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def kit(tmp_path):
    return make_license_kit(tmp_path)


@pytest.fixture
def revoked():
    return set()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def cached(kit, revoked, clock):
    verifier = LicenseVerifier(
        KeyRing.from_dir(kit.keys_dir), leeway=30, is_revoked=revoked.__contains__
    )
    return CachedLicenseVerifier(verifier, maxsize=3, clock=clock)


def test_second_check_is_a_hit_with_the_same_result(cached, kit):
    token = kit.issue()
    first = cached.verify(token)
    second = cached.verify(token)
    assert first == second
    assert (cached.misses, cached.hits) == (1, 1)


def test_a_hit_never_outlives_exp(kit):
    verifier = LicenseVerifier(KeyRing.from_dir(kit.keys_dir), leeway=0)
    cached = CachedLicenseVerifier(verifier)
    token = kit.issue(expires_in=timedelta(seconds=1))
    cached.verify(token)
    time.sleep(2.05)
    with pytest.raises(LicenseError) as e:
        cached.verify(token)
    assert e.value.code == "expired"
    assert cached.hits == 0


def test_an_entry_past_exp_is_not_answered_from_memory(cached, kit, clock):
    token = kit.issue(expires_in=timedelta(seconds=60))
    cached.verify(token)
    clock.now += 60 + 31  # past exp and the 30 s leeway, as far as the cache can tell
    cached.verify(token)
    assert (cached.hits, cached.misses) == (0, 2)


def test_revocation_applies_to_cached_licenses(cached, kit, revoked):
    token = kit.issue()
    license = cached.verify(token)
    revoked.add(license.jti)
    with pytest.raises(LicenseError) as e:
        cached.verify(token)
    assert e.value.code == "revoked"


def test_failures_are_not_cached(cached):
    for _ in range(2):
        with pytest.raises(LicenseError):
            cached.verify("not-a-token")
    assert len(cached) == 0
    assert cached.misses == 2


def test_size_is_bounded(cached, kit):
    tokens = [kit.issue(customer=f"c{i}") for i in range(5)]
    for token in tokens:
        cached.verify(token)
    assert len(cached) == 3
    cached.verify(tokens[-1])
    assert cached.hits == 1


# --- lookup: what the fast path may answer without verifying anything


def test_lookup_answers_only_licenses_verified_before(cached, kit):
    token = kit.issue()
    assert cached.lookup(token) is None
    license = cached.verify(token)
    assert cached.lookup(token) == license


@pytest.mark.parametrize(
    ("seconds_later", "found"),
    [(0, True), (60 + 28, True), (60 + 31, False)],
    ids=["now", "within the leeway after exp", "past exp and leeway"],
)
def test_lookup_never_outlives_exp(cached, kit, clock, seconds_later, found):
    token = kit.issue(expires_in=timedelta(seconds=60))
    cached.verify(token)
    clock.now += seconds_later
    assert (cached.lookup(token) is not None) is found


def test_lookup_is_none_before_nbf(cached, kit, clock):
    private = serialization.load_pem_private_key(kit.private_key.read_bytes(), None)
    claims = jwt_forge.claims(nbf=int(clock.now) - 10)
    token = jwt.encode(claims, private, algorithm="EdDSA", headers={"kid": "test"})
    cached.verify(token)
    clock.now -= 3600  # as far as the cache can tell, an hour before nbf
    assert cached.lookup(token) is None


def test_lookup_is_none_once_revoked(cached, kit, revoked):
    token = kit.issue()
    license = cached.verify(token)
    revoked.add(license.jti)
    assert cached.lookup(token) is None


@pytest.mark.parametrize("token", ["", "not-a-token", "x" * 10_000], ids=["empty", "bad", "huge"])
def test_lookup_of_what_never_verified_is_none(cached, token):
    with pytest.raises(LicenseError):
        cached.verify(token)
    assert cached.lookup(token) is None


# --- memory: bounded by bytes, entries compact


def test_size_is_bounded_by_the_memory_budget(kit, revoked, clock):
    verifier = LicenseVerifier(KeyRing.from_dir(kit.keys_dir), is_revoked=revoked.__contains__)
    one = entry_bytes(verifier.verify(kit.issue(customer="probe")))
    cached = CachedLicenseVerifier(verifier, max_bytes=3 * one + one // 2, clock=clock)
    tokens = [kit.issue(customer=f"c{i}") for i in range(6)]
    for token in tokens:
        cached.verify(token)
    assert len(cached) == 3
    assert 0 < cached.bytes <= cached.max_bytes
    cached.verify(tokens[-1])
    cached.verify(tokens[0])  # the oldest went first
    assert (cached.hits, cached.misses) == (1, 7)


def test_forgetting_everything_frees_the_budget(cached, kit):
    cached.verify(kit.issue())
    cached.clear()
    assert (len(cached), cached.bytes) == (0, 0)


def test_remembered_licenses_share_their_repeated_claims(cached, kit):
    first = cached.verify(kit.issue(customer="a", channel="stable", channels=["stable", "beta"]))
    second = cached.verify(kit.issue(customer="b", channel="stable", channels=["stable", "beta"]))
    assert first.channel is second.channel
    assert first.issuer is second.issuer
    assert first.channels[1] is second.channels[1]
    shared_names = {id(name) for name in first.claims}
    assert all(id(name) in shared_names for name in second.claims)


def test_nested_free_claims_count_toward_the_budget(kit, revoked, clock):
    verifier = LicenseVerifier(KeyRing.from_dir(kit.keys_dir), is_revoked=revoked.__contains__)
    plain = entry_bytes(verifier.verify(kit.issue(features={"a": 1})))
    nested = entry_bytes(verifier.verify(kit.issue(features={"a": {"b": ["x" * 2000]}})))
    assert nested > plain + 2000


# --- the key ring


def test_a_key_retired_in_a_new_ring_stops_cached_licenses(cached, kit):
    token = kit.issue()
    cached.verify(token)
    cached.verifier.keyring = KeyRing.from_dir(kit.keys_dir, retired=["test"])
    assert cached.lookup(token) is None
    with pytest.raises(LicenseError) as e:
        cached.verify(token)
    assert e.value.code == "key_retired"
    assert len(cached) == 0
