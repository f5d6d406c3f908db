"""Where the user-input level of the hierarchy is kept when the console edits it.

The ``--user-values`` file when the agent was given one (the console then edits that file), else
``user-values.yaml`` in the agent's cache directory, so values set in the console survive
restarts. The text is saved as the administrator typed it (comments kept), after it parsed as a
values mapping with a usable `_releaseId`; writes are atomic (mode 0600: values may hold secrets).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from deployd.client.cache import atomic_write
from deployd.client.errors import InputError
from deployd.client.hierarchy import RELEASE_PIN_KEY
from deployd.client.inputs import MAX_INPUT_BYTES, load_values_file, parse_values_text

CACHED_USER_VALUES_FILE = "user-values.yaml"


class UserValuesFile:
    def __init__(self, path: Path, *, given: bool) -> None:
        self.path = path
        self.given = given

    @classmethod
    def for_agent(cls, user_values: str | None, cache_dir: Path) -> UserValuesFile:
        if user_values:
            return cls(Path(user_values), given=True)
        return cls(Path(cache_dir) / CACHED_USER_VALUES_FILE, given=False)

    def load(self) -> dict[str, Any] | None:
        """The values in the file, or None when the cache holds none yet; InputError when the
        file is unusable, or was given (``--user-values``) and cannot be read."""
        if not self.given and not self.path.exists():
            return None
        return load_values_file(self.path)

    def text(self) -> str:
        """The file as it stands ('' when there is none)."""
        try:
            return self.path.read_bytes()[: MAX_INPUT_BYTES + 1].decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def parse(self, text: str) -> dict[str, Any]:
        """Check `text` as this file's new content; InputError (naming the problem) if unusable."""
        values = parse_values_text(text.encode("utf-8"), source="the user values")
        pin = values.get(RELEASE_PIN_KEY)
        if pin is not None and (not isinstance(pin, str) or not pin.strip()):
            raise InputError(f"the user values: {RELEASE_PIN_KEY} must be a release id string")
        return values

    def save(self, text: str) -> dict[str, Any]:
        """Check and write `text`; return its values. Nothing is written when it is unusable."""
        values = self.parse(text)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(self.path, _with_final_newline(text).encode("utf-8"))
        return values


def with_pin(text: str, release: str | None) -> str:
    """`text` (valid user values) with `_releaseId` set to `release`, or removed for None."""
    values = parse_values_text(text.encode("utf-8"), source="the user values")
    values.pop(RELEASE_PIN_KEY, None)
    if release is not None:
        values = {RELEASE_PIN_KEY: release, **values}
    if not values:
        return ""
    return yaml.safe_dump(values, sort_keys=False, allow_unicode=True)


def _with_final_newline(text: str) -> str:
    text = text.replace("\r\n", "\n")
    return text if not text or text.endswith("\n") else text + "\n"
