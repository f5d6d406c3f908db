"""The request class of the app: Flask's, with one strict JSON reader for every body.

Every JSON body deployd reads goes through `load_json`: the Flask views through
`DeploydRequest.get_json`, the channel endpoint (which reads its body itself) and the fast path.
Besides what `json.loads` refuses, it refuses JSON that parses but that deployd will not guess
about: an object with the same key twice (`json.loads` keeps the last one silently, so two
readers of one body could disagree) and integers too long to convert back to text (Python stops
at 4300 digits, and the failure would come later, far from the request, as a 500).
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Request

from deployd.channels import MAX_INTEGER_DIGITS
from deployd.errors import BadRequestError

_LONG_INTEGER = re.compile("-?[0-9]{" + str(MAX_INTEGER_DIGITS + 1) + ",}")


class RefusedJSON(Exception):  # noqa: N818 (a refusal, not a failure of the reader)
    """Valid JSON that deployd refuses: a duplicate key or an integer that is too long.

    Deliberately no ValueError, so callers that silence unreadable JSON still see it.
    `line` is the 1-based line of the problem when it is known.
    """

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def load_json(data: str | bytes) -> Any:
    """`json.loads`, refusing duplicate keys and integers of more than MAX_INTEGER_DIGITS digits.

    Raises RefusedJSON for those; ValueError and RecursionError as `json.loads` does otherwise.
    """
    if isinstance(data, bytes):
        # What json.loads does with bytes (UTF-8, -16 or -32), kept here to find lines.
        data = data.decode(json.detect_encoding(data), "surrogatepass")
    text = data
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_int=_bounded_int)
    except RefusedJSON as e:
        if e.line is None:
            match = _LONG_INTEGER.search(text)
            if match is not None:
                e.line = text.count("\n", 0, match.start()) + 1
        raise


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise RefusedJSON(f"the key {key!r} appears twice in one JSON object")
        result[key] = value
    return result


def _bounded_int(digits: str) -> int:
    count = len(digits.lstrip("-"))
    if count > MAX_INTEGER_DIGITS:
        raise RefusedJSON(
            f"an integer of {count} digits; integers may have at most {MAX_INTEGER_DIGITS}"
        )
    try:
        return int(digits)
    except ValueError as e:  # an interpreter set to a lower limit than deployd's
        raise RefusedJSON(f"an integer of {count} digits is too long") from e


def refusal_message(error: RefusedJSON) -> str:
    """The message of a refused body, with the line when it is known."""
    where = f" (line {error.line})" if error.line is not None else ""
    return f"the JSON body is refused{where}: {error.message}"


class DeploydRequest(Request):
    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any | None:
        """Flask's `get_json`, with the body read by `load_json`.

        Unreadable JSON (bad syntax, nested past the parser's recursion limit, a bad encoding)
        is None when `silent`, else a 400. JSON that parses but is refused (a duplicate key, an
        integer too long) is a 400 naming the problem even when `silent`: it is not unreadable,
        and must never be taken for "no body". A body that is not declared JSON is left to Flask.
        """
        if not (force or self.is_json):
            return super().get_json(force=force, silent=silent, cache=cache)
        try:
            return load_json(self.get_data(cache=cache))
        except RefusedJSON as e:
            raise BadRequestError(refusal_message(e)) from e
        except (ValueError, RecursionError) as e:
            if silent:
                return None
            raise BadRequestError("the body is not valid JSON") from e
