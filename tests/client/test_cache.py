"""The cache directory: exact bytes, atomic replacement, damage detected, and restarts."""

from __future__ import annotations

import json
import os
import stat

import pytest

from deployd.client.cache import (
    AppliedState,
    CacheDir,
    SpecBundle,
    atomic_write,
    parse_bundle,
)
from deployd.client.errors import InputError
from deployd.client.hierarchy import DesiredState
from deployd.client.verify import Floor
from tests.client.specs import encode, spec_document

LIMIT = 1_048_576


def test_atomic_write_replaces_the_file_with_private_permissions(tmp_path):
    path = tmp_path / "f.json"
    path.write_text("old")
    atomic_write(path, b"new")
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["f.json"]


def test_a_crash_before_the_rename_leaves_the_old_file_and_no_debris(tmp_path, monkeypatch):
    path = tmp_path / "f.json"
    path.write_bytes(b"old")

    def crash(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        atomic_write(path, b"new")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.json"]


def test_a_crash_while_writing_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "f.json"
    path.write_bytes(b"old")
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(5, "I/O error")))
    with pytest.raises(OSError):
        atomic_write(path, b"new")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.json"]


@pytest.mark.parametrize(
    "body",
    [
        encode(spec_document()),
        json.dumps({"metadata": {"note": 'naïve ünïcode ✓ \\ " \n'}}, ensure_ascii=False).encode(),
    ],
)
def test_a_bundle_keeps_the_exact_body_bytes(tmp_path, body):
    cache = CacheDir(tmp_path, max_body_bytes=LIMIT)
    cache.save_spec(SpecBundle(body, 'keyid="k", alg="ed25519", sig="x"', '"etag"'))
    loaded = cache.load_spec()
    assert loaded == SpecBundle(body, 'keyid="k", alg="ed25519", sig="x"', '"etag"')


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json", "not a JSON"),
        (b"[]", "JSON object"),
        (b'{"body": "x"}', "'signature'"),
        (b'{"body": 1, "signature": "s"}', "'signature'"),
        (b'{"body": "x", "signature": "s", "etag": "a b"}', "header-safe"),
        (b'{"body": "\\ud800", "signature": "s"}', "UTF-8"),
        (json.dumps({"body": "x" * 200, "signature": "s"}).encode(), "larger than 100"),
        (b" " * 70_000, "larger than a spec bundle"),
    ],
)
def test_bad_bundles_are_refused(data, message):
    with pytest.raises(InputError, match=message):
        parse_bundle(data, max_body_bytes=100)


def test_an_empty_cache_has_nothing(tmp_path):
    cache = CacheDir(tmp_path / "never-created", max_body_bytes=LIMIT)
    assert cache.load_spec() is None
    assert cache.load_sequences() == {}
    assert cache.load_applied() is None


def test_the_cache_directory_is_private(tmp_path):
    cache = CacheDir(tmp_path / "cache", max_body_bytes=LIMIT)
    cache.save_sequences({"stable": Floor(3, "1.2.0")})
    assert stat.S_IMODE((tmp_path / "cache").stat().st_mode) == 0o700
    assert cache.load_sequences() == {"stable": Floor(3, "1.2.0")}


def test_floors_written_by_an_older_client_are_read_without_their_release(tmp_path):
    (tmp_path / "sequences.json").write_text('{"stable": 3, "beta": {"sequence": 1}}')
    floors = CacheDir(tmp_path, max_body_bytes=LIMIT).load_sequences()
    assert floors == {"stable": Floor(3), "beta": Floor(1)}


@pytest.mark.parametrize(
    "content",
    [
        "nope",
        "[]",
        '{"stable": "3"}',
        '{"stable": -1}',
        '{"stable": true}',
        '{"stable": {"release": "1.0.0"}}',
        '{"stable": {"sequence": 2, "release": 1}}',
        '{"stable": {"sequence": 2, "release": "two words"}}',
    ],
)
def test_damaged_sequence_floors_are_reported(tmp_path, content):
    (tmp_path / "sequences.json").write_text(content)
    with pytest.raises(InputError):
        CacheDir(tmp_path, max_body_bytes=LIMIT).load_sequences()


def test_the_applied_state_round_trips(tmp_path):
    desired = DesiredState(
        {"channel": "stable", "release": "1.2.0", "sequence": "4"},
        {"name": "server"},
        {"global": {"license": "x"}},
    )
    cache = CacheDir(tmp_path, max_body_bytes=LIMIT)
    cache.save_applied(AppliedState(desired, "2026-11-28T00:00:00Z"))
    loaded = cache.load_applied()
    assert loaded.release == "1.2.0" and loaded.applied_at == "2026-11-28T00:00:00Z"
    assert loaded.desired.digest == desired.digest
    assert stat.S_IMODE((tmp_path / "applied.json").stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "content",
    [
        "nope",
        "{}",
        '{"appliedAt": "t", "desired": {"metadata": {}, "chart": {}}}',
        '{"appliedAt": "t", "desired": {"metadata": {"release": 1}, "chart": {}, "values": {}}}',
        '{"appliedAt": "t", "desired": {"metadata": {}, "chart": [], "values": {}}}',
        '{"appliedAt": "t", "desired": {"metadata": {"release": "1\\r\\nX: y"}, "chart": {},'
        ' "values": {}}}',
    ],
)
def test_a_damaged_applied_state_is_reported(tmp_path, content):
    (tmp_path / "applied.json").write_text(content)
    with pytest.raises(InputError, match="damaged"):
        CacheDir(tmp_path, max_body_bytes=LIMIT).load_applied()
