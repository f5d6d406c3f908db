"""`deployd channels check`: every problem as FILE:LINE: FIELD: MESSAGE, exit status for CI."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployd.cli.main import COMMAND_MODULES, main

REPO = Path(__file__).resolve().parent.parent.parent


def test_the_channels_commands_are_part_of_deployd() -> None:
    assert "deployd.cli.channel_files" in COMMAND_MODULES


def test_check_defaults_to_the_channels_directory(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)
    assert main(["channels", "check"]) == 0
    out, err = capsys.readouterr()
    assert out == "ok: 2 channels, 9 releases\n"
    assert err == ""


def test_check_takes_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["channels", "check", str(REPO / "channels" / "stable.yaml")]) == 0
    assert capsys.readouterr().out == "ok: 1 channel, 5 releases\n"


def test_check_prints_every_problem_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "stable.yaml").write_text(
        "name: stable\nreleases:\n  - version: 1.0\n    chart: {path: x}\n    rollout: 101\n"
    )
    (tmp_path / "beta.yaml").write_text("name: beta\nreleases: [\n")
    assert main(["channels", "check", str(tmp_path), str(tmp_path / "edge.yaml")]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    first, syntax, *rest = err.splitlines()
    assert first == f"{tmp_path / 'edge.yaml'}:?: <document>: no such file or directory"
    assert syntax.startswith(f"{tmp_path / 'beta.yaml'}:3: <document>: invalid YAML: ")
    assert rest == [
        f"{tmp_path / 'stable.yaml'}:3: releases[0].version: must be a string "
        "(quote numbers like 1.4), not a number (1.0)",
        f"{tmp_path / 'stable.yaml'}:5: releases[0].rollout: must be from 0 to 100 "
        "(a percentage), not 101",
    ]


def test_check_refuses_an_integer_too_long_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "stable.yaml"
    file.write_text(
        "name: stable\nchart: {path: x}\nvalues:\n  n: 0x" + "f" * 4000 + "\n"
        "releases:\n  - version: 1.0.0\n"
    )
    assert main(["channels", "check", str(file)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{file}:4: values.n: an integer of more than 4300 digits; refusing it"
    ]


def test_check_refuses_charts_the_operator_would_drop_with_their_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "stable.yaml"
    file.write_text(
        "name: stable\n"
        "releases:\n"
        "  - version: 1.0.0\n"
        "    chart: {url: 'oci://ghcr.io/wandb/charts/wandb'}\n"
        "  - version: 1.1.0\n"
        "    chart: {url: 'https://charts.example.com/a%zz', name: s, version: 1.0.0}\n"
        "  - version: 1.2.0\n"
        "    chart: {url: 'https://user@/charts', name: s, version: 1.0.0}\n"
    )
    assert main(["channels", "check", str(file)]) == 1
    assert [line.split(": ", 2)[:2] for line in capsys.readouterr().err.splitlines()] == [
        [f"{file}:4", "releases[0].chart.version"],
        [f"{file}:6", "releases[1].chart.url"],
        [f"{file}:8", "releases[2].chart.url"],
    ]


def test_check_needs_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["channels"])
    assert exited.value.code == 2
