"""Channel files: load one file, or files and directories of them, all or nothing."""

from __future__ import annotations

from collections.abc import Iterable
from os import PathLike
from pathlib import Path

from deployd.channels.checks import parse_channel_text
from deployd.channels.model import DOCUMENT_FIELD, Channel
from deployd.channels.reading import MAX_TEXT_BYTES
from deployd.errors import ChannelValidationError, Problem


def load_channel_file(path: str | PathLike[str]) -> Channel:
    """Read and validate one channel file; its `name:` must be the file's stem."""
    return read_channel_file(path)[0]


def read_channel_file(path: str | PathLike[str]) -> tuple[Channel, str]:
    """Read and validate one channel file once: the channel and the text it was parsed from."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            # One byte over the cap is enough to refuse the file without reading all of it.
            data = handle.read(MAX_TEXT_BYTES + 1)
    except OSError as e:
        reason = e.strerror or str(e)
        raise ChannelValidationError(
            [Problem(str(path), None, DOCUMENT_FIELD, f"cannot read the file: {reason}")]
        ) from e
    channel = parse_channel_text(data, filename=str(path), expected_name=path.stem)
    return channel, data.decode("utf-8")


def load_channel_paths(paths: Iterable[str | PathLike[str]]) -> list[Channel]:
    """Load channel files and directories of them (``*.yaml``, ``*.yml``; dotfiles skipped).

    All or nothing: if any file has a problem, or two files define the same channel, raises
    ChannelValidationError with the problems of every file. Channels come back in the order
    their paths were given, directories sorted by file name.
    """
    return [channel for channel, _text in load_channel_sources(paths)]


def load_channel_sources(paths: Iterable[str | PathLike[str]]) -> list[tuple[Channel, str]]:
    """As `load_channel_paths`, each channel with the text it was parsed from (read once)."""
    problems: list[Problem] = []
    files: list[Path] = []
    seen_files: set[Path] = set()
    for given in paths:
        given = Path(given)
        if given.is_dir():
            found = sorted(
                p
                for p in given.iterdir()
                if p.suffix in (".yaml", ".yml") and not p.name.startswith(".") and p.is_file()
            )
            if not found:
                problems.append(
                    Problem(str(given), None, DOCUMENT_FIELD, "no channel files (*.yaml, *.yml)")
                )
        elif given.exists():
            found = [given]
        else:
            problems.append(Problem(str(given), None, DOCUMENT_FIELD, "no such file or directory"))
            found = []
        for file in found:
            if file.resolve() not in seen_files:
                seen_files.add(file.resolve())
                files.append(file)

    channels: list[tuple[Channel, str]] = []
    defined_in: dict[str, Path] = {}
    for file in files:
        try:
            channel, text = read_channel_file(file)
        except ChannelValidationError as e:
            problems.extend(e.problems)
            continue
        if channel.name in defined_in:
            message = f"channel {channel.name!r} is also defined in {defined_in[channel.name]}"
            problems.append(Problem(str(file), None, "name", message))
            continue
        defined_in[channel.name] = file
        channels.append((channel, text))
    if problems:
        raise ChannelValidationError(problems)
    return channels
