"""Files created whole or not at all."""

from __future__ import annotations

import stat
import threading

import pytest

from deployd.files import create_exclusive


def test_creates_with_mode_and_never_overwrites(tmp_path):
    path = tmp_path / "secret"
    create_exclusive(path, b"first", mode=0o600)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        create_exclusive(path, b"second")
    assert path.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["secret"], "a temporary file was left behind"


def test_racing_creators_leave_one_complete_file(tmp_path):
    path = tmp_path / "token"
    payloads = [bytes([65 + i]) * 100_000 for i in range(8)]
    seen: list[bytes] = []

    def create(data: bytes) -> None:
        try:
            create_exclusive(path, data)
        except FileExistsError:
            pass
        seen.append(path.read_bytes())

    threads = [threading.Thread(target=create, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert path.read_bytes() in payloads
    assert set(seen) == {path.read_bytes()}, "a reader saw a partial or different file"
