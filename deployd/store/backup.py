"""Backup files of a store: one versioned JSON document, written atomically.

A backup holds what `Store.export` gives: every channel with its whole history, the revocations
with their entries in revocation order, the publishers (token hashes only), the customer records,
the high-water marks, the halted releases (with the halt that stopped them) and the epoch and
generation it was taken at (`take_backup`, `restore_backup`). A backup written before customer
records or halts existed has no `customers` or `halts` and restores none. Rate-limit counters,
rollout reports, the fleet's instances and the event log are not kept: they describe the clusters
as they were, and come back as the clusters poll and report again.

The file is written to a temporary file in the same directory, flushed to disk and renamed over
the target, so a crash leaves the old backup or the new one, never half of one. Reading refuses a
file that is not a backup, of an unknown format version, or damaged (bad JSON, a missing or
ill-typed field, a record that does not parse), naming what is wrong.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from deployd.errors import DeploydError
from deployd.protocol import utc_now
from deployd.rollouts.records import RESUME, RolloutEvent
from deployd.store import ChannelRecord, CustomerRecord, PublisherRecord, Store, StoreContents

FORMAT = "deployd-store-backup"
VERSION = 1


class BackupError(DeploydError):
    """A backup file could not be written or read back."""

    code = "bad_backup"


def backup_document(contents: StoreContents) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "createdAt": utc_now(),
        "epoch": contents.epoch,
        "generation": contents.generation,
        "highWaterMarks": contents.high_water_marks(),
        "channels": {
            name: [record.to_dict() for record in history]
            for name, history in sorted(contents.channels.items())
        },
        "revocations": [
            {"jti": jti, "entry": json.loads(entry)} for jti, entry in contents.revocations
        ],
        "publishers": [json.loads(p.to_json()) for p in contents.publishers],
        "customers": [customer.to_dict() for customer in contents.customers],
        "halts": [json.loads(halt.to_json()) for halt in contents.halts],
    }


def take_backup(store: Store) -> StoreContents:
    """Everything a backup holds: `store.export()` and the halts in force."""
    contents = store.export()
    halts = [halt for by_release in store.halts().values() for halt in by_release.values()]
    return replace(contents, halts=sorted(halts, key=lambda h: (h.channel, h.release)))


def restore_backup(store: Store, contents: StoreContents, *, force: bool = False) -> str:
    """`store.restore(contents)`, then the backup's halts, and only those, in force; the epoch."""
    epoch = store.restore(contents, force=force)
    kept = {(halt.channel, halt.release) for halt in contents.halts}
    for by_release in store.halts().values():
        for halt in by_release.values():
            if (halt.channel, halt.release) not in kept:
                store.resume_release(replace(halt, kind=RESUME, reason="restored from a backup"))
    for halt in contents.halts:
        store.halt_release(halt)
    return epoch


def write_backup(contents: StoreContents, path: str | Path) -> None:
    """Write `contents` to `path` atomically (temp file, fsync, rename); mode 0600."""
    path = Path(path)
    text = json.dumps(backup_document(contents), indent=1, allow_nan=False)
    try:
        descriptor, temporary = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.")
    except OSError as e:
        raise BackupError(f"cannot write a backup next to {path}: {e.strerror}") from e
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as e:
        Path(temporary).unlink(missing_ok=True)
        raise BackupError(f"cannot write the backup {path}: {e.strerror}") from e


def read_backup(path: str | Path) -> StoreContents:
    """The contents of the backup at `path`; BackupError when it is not one this version reads."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise BackupError(f"cannot read the backup {path}: {e.strerror}") from e
    except (ValueError, UnicodeDecodeError) as e:
        raise BackupError(f"{path} is damaged: not JSON ({e})") from e
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BackupError(f"{path} is not a deployd store backup")
    if data.get("version") != VERSION:
        raise BackupError(
            f"{path} is a backup of format version {data.get('version')!r}; this deployd reads"
            f" version {VERSION} only"
        )
    try:
        return _contents(data)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise BackupError(f"{path} is damaged: {type(e).__name__}: {e}") from e


def _contents(data: dict[str, Any]) -> StoreContents:
    channels = {
        _text(name): [ChannelRecord.from_dict(r) for r in _list(history)]
        for name, history in _dict(data["channels"]).items()
    }
    for name, history in channels.items():
        sequences = [_int(r.sequence) for r in history]
        if any(r.name != name for r in history) or sequences != sorted(set(sequences)):
            raise ValueError(f"channel {name!r}: records out of order or of another channel")
    revocations = [
        (_text(item["jti"]), json.dumps(_dict(item["entry"])))
        for item in _list(data["revocations"])
    ]
    publishers = [PublisherRecord.from_json(json.dumps(p)) for p in _list(data["publishers"])]
    customers = [CustomerRecord.from_dict(_dict(c)) for c in _list(data.get("customers", []))]
    halts = [RolloutEvent.from_json(json.dumps(_dict(h))) for h in _list(data.get("halts", []))]
    marks = {_text(name): _int(mark) for name, mark in _dict(data["highWaterMarks"]).items()}
    epoch = data["epoch"]
    return StoreContents(
        epoch=None if epoch is None else _text(epoch),
        generation=_int(data["generation"]),
        channels=channels,
        revocations=revocations,
        publishers=publishers,
        floors=marks,
        customers=customers,
        halts=halts,
    )


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, not {type(value).__name__}")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, not {type(value).__name__}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, not {type(value).__name__}")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a whole number of 0 or more, not {value!r}")
    return value
