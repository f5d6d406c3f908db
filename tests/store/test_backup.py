"""Backup files: a versioned JSON document, written atomically, refused when unknown or damaged."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from deployd.cli.main import main
from deployd.rollouts.records import RolloutEvent
from deployd.store.backup import (
    VERSION,
    BackupError,
    read_backup,
    restore_backup,
    take_backup,
    write_backup,
)
from deployd.store.memory import MemoryStore
from tests.support.backends import BACKENDS, open_backend


@pytest.fixture
def contents():
    store = MemoryStore()
    for n in (1, 2):
        doc = {"name": "stable", "releases": [{"version": f"1.{n}.0"}]}
        store.publish(
            "stable",
            document=doc,
            source=f"# {n}\n",
            digest=f"d{n}",
            publisher="p",
            summary=f"v{n}",
        )
    store.raise_floors({"stable": 5})
    store.revoke("jti-2", reason="leaked", by="alice")
    store.revoke("jti-1")
    store.add_publisher("ci", "a" * 64)
    return store.export()


def test_a_backup_reads_back_as_it_was_written(contents, tmp_path):
    path = tmp_path / "backup.json"
    write_backup(contents, path)
    again = read_backup(path)
    assert (again.epoch, again.generation) == (contents.epoch, contents.generation)
    assert again.channels == contents.channels
    assert again.revocations == contents.revocations
    assert again.publishers == contents.publishers
    assert again.floors == {"stable": 5}
    data = json.loads(path.read_text())
    assert (data["format"], data["version"]) == ("deployd-store-backup", VERSION)


def test_writing_replaces_the_old_backup_whole_and_leaves_no_temporary_file(contents, tmp_path):
    path = tmp_path / "backup.json"
    path.write_text("the previous backup")
    write_backup(contents, path)
    assert read_backup(path).channels == contents.channels
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup.json"]
    with pytest.raises(BackupError, match="cannot write"):
        write_backup(contents, tmp_path / "missing" / "backup.json")


def damage(data: dict, how: str) -> str:
    if how == "truncated":
        return json.dumps(data)[:-40]
    if how == "a record without its sequence":
        del data["channels"]["stable"][0]["sequence"]
    elif how == "records out of order":
        data["channels"]["stable"].reverse()
    elif how == "revocations not a list":
        data["revocations"] = {"jti-1": {}}
    elif how == "a negative mark":
        data["highWaterMarks"]["stable"] = -1
    elif how == "no publishers":
        del data["publishers"]
    return json.dumps(data)


@pytest.mark.parametrize(
    "how",
    [
        "truncated",
        "a record without its sequence",
        "records out of order",
        "revocations not a list",
        "a negative mark",
        "no publishers",
    ],
)
def test_a_damaged_backup_is_refused(contents, tmp_path, how):
    path = tmp_path / "backup.json"
    write_backup(contents, path)
    path.write_text(damage(json.loads(path.read_text()), how))
    with pytest.raises(BackupError, match="is damaged"):
        read_backup(path)


def test_an_unknown_version_or_another_file_is_refused(contents, tmp_path, capsys):
    path = tmp_path / "backup.json"
    write_backup(contents, path)
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "version": VERSION + 1}))
    with pytest.raises(BackupError, match=f"version {VERSION + 1}.*version {VERSION} only"):
        read_backup(path)
    path.write_text(json.dumps({"channels": {}}))
    with pytest.raises(BackupError, match="not a deployd store backup"):
        read_backup(path)
    code = main(["store", "restore", str(path), "--redis-url", "redis://127.0.0.1:1/0"])
    assert code == 1 and "not a deployd store backup" in capsys.readouterr().err


@pytest.fixture(params=BACKENDS)
def backend(request):
    yield from open_backend(request)


def halt(release: str) -> RolloutEvent:
    numbers = {"failed": 3}
    return RolloutEvent(
        "halt", "stable", release, "2026-11-29T15:00:00Z", "policy", "3 failed", numbers
    )


def test_halts_in_force_survive_a_backup_and_a_restore(backend, tmp_path):
    # A restore used to resume every halted release: a release halted for cause went back out.
    source = MemoryStore()
    source.halt_release(halt("1.3.0"))
    source.halt_release(halt("1.4.0"))
    source.resume_release(replace(halt("1.4.0"), kind="resume", by="ops"))
    path = tmp_path / "backup.json"
    write_backup(take_backup(source), path)
    backend.halt_release(halt("1.5.0"))  # halted in the store restored over, not in the backup
    restore_backup(backend, read_backup(path), force=True)
    assert {ch: sorted(h) for ch, h in backend.halts().items()} == {"stable": ["1.3.0"]}
    assert backend.halts()["stable"]["1.3.0"].numbers == {"failed": 3}


def test_a_backup_from_before_halts_restores_none(contents, tmp_path):
    path = tmp_path / "backup.json"
    write_backup(contents, path)
    data = json.loads(path.read_text())
    del data["halts"]
    path.write_text(json.dumps(data))
    assert read_backup(path).halts == []
