"""The request class of the app: Flask's, with JSON parsing that never ends in a 500."""

from __future__ import annotations

from typing import Any

from flask import Request
from werkzeug.exceptions import BadRequest


class DeploydRequest(Request):
    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any | None:
        """Flask's `get_json`, also for JSON nested past the parser's recursion limit.

        Flask turns invalid JSON into None (`silent`) or a 400, but lets the RecursionError of a
        deeply nested document through; here it is treated as any other unreadable body.
        """
        try:
            return super().get_json(force=force, silent=silent, cache=cache)
        except RecursionError as e:
            if silent:
                return None
            raise BadRequest("the JSON body is nested too deeply") from e
