"""`deployd config check`: what the server would refuse at start, told without starting it."""

from __future__ import annotations

import pytest

from deployd.cli.main import main


def test_the_embedded_default_is_a_good_configuration(capsys):
    assert main(["config", "check"]) == 0
    assert capsys.readouterr().out == "configuration ok\n"


def test_a_bad_configuration_is_one_line_and_the_boot_error_status(capsys, monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    with pytest.raises(SystemExit) as exit:
        main(["config", "check", "--quiet"])
    assert exit.value.code == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("deployd: configuration error: DEPLOYD_SIGNING_KEY")
