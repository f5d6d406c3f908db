"""Customer records in the store (memory, fakeredis, real Redis): one atomic change at a time, a
version that moves on every change, a bound on their number, and a place in backups."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

import deployd.store.memory
import deployd.store.redis
from deployd.customers import CustomerRecord
from deployd.errors import ConflictError, StoreUninitializedError
from deployd.store.backup import read_backup, write_backup
from deployd.store.memory import MemoryStore


def assign(channel: str):
    """A change that assigns `channel` (stamped as a caller would)."""

    def change(current):
        base = current or CustomerRecord("acme")
        return replace(base, channel=channel, updated_by="alice", updated_at="now")

    return change


def test_a_change_is_kept_and_moves_the_version(store):
    assert (store.customer("acme"), store.customers(), store.customers_version()) == (None, [], 0)
    written = store.update_customer("acme", assign("beta"))
    assert written.channel == "beta" and written.subject == "acme"
    assert store.customer("acme") == written
    assert written.version == store.customers_version() > 0
    again = store.update_customer("acme", assign("edge"))
    assert again.version > written.version
    assert store.customers() == [again]


def test_a_change_that_changes_nothing_moves_nothing(store):
    written = store.update_customer("acme", assign("beta"))
    version = store.customers_version()
    assert store.update_customer("acme", lambda current: current) == written
    assert store.update_customer("nobody", lambda current: None) is None
    assert store.customers_version() == version


def test_deleting_a_record_moves_the_version(store):
    store.update_customer("acme", assign("beta"))
    store.update_customer("zeta", assign("beta"))
    version = store.customers_version()
    assert store.update_customer("acme", lambda current: None) is None
    assert store.customer("acme") is None
    assert [r.subject for r in store.customers()] == ["zeta"]
    assert store.customers_version() > version


def test_the_number_of_records_is_bounded(store, monkeypatch):
    monkeypatch.setattr(deployd.store.memory, "MAX_CUSTOMERS", 2)
    monkeypatch.setattr(deployd.store.redis, "MAX_CUSTOMERS", 2)
    for subject in ("a", "b"):
        store.update_customer(subject, assign("beta"))
    with pytest.raises(ConflictError, match="limit"):
        store.update_customer("c", assign("beta"))
    store.update_customer("a", assign("edge"))  # changing an existing one is fine
    store.update_customer("b", lambda current: None)
    store.update_customer("c", assign("beta"))  # a deleted record frees its place
    assert [r.subject for r in store.customers()] == ["a", "c"]


def test_an_uninitialized_store_takes_no_record(uninitialized_store):
    with pytest.raises(StoreUninitializedError):
        uninitialized_store.update_customer("acme", assign("beta"))


def test_records_survive_a_backup_and_restore(store, tmp_path):
    written = store.update_customer("acme", assign("beta"))
    path = tmp_path / "backup.json"
    write_backup(store.export(), path)
    other = MemoryStore(initialize=False)
    version = other.customers_version()
    other.restore(read_backup(path))
    assert other.customers() == [written]
    assert other.customers_version() > max(version, written.version)
    # And back into a store of the kind under test, over what it had.
    store.update_customer("gone", assign("edge"))
    store.restore(read_backup(path), force=True)
    assert store.customers() == [written]


def test_a_backup_from_before_customer_records_restores_none(store, tmp_path):
    store.update_customer("acme", assign("beta"))
    path = tmp_path / "backup.json"
    write_backup(store.export(), path)
    data = json.loads(path.read_text())
    del data["customers"]
    path.write_text(json.dumps(data))
    store.restore(read_backup(path), force=True)
    assert store.customers() == []
