"""`deployd verify`'s checklist: checks, their results, the order they run in, and the sources.

A check is a small function of a `Checkup` (what the administrator gave, and what earlier checks
found) that returns an `Outcome`. `run_checks` runs a list of them in order: a check whose
`needs` did not all pass is skipped, saying which one it waited on, and a `DeploydError` raised
by a check (an unreadable file, a refused answer) is its failure, with the check's hint.

Where the spec comes from is a *check source*: a function giving the list of checks for a
`Checkup`, registered under its name with `register_check_source`: ``server``
(`deployd.client.server_checks`) and ``bundle``, an offline bundle
(`deployd.client.bundle_checks`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from deployd.errors import DeploydError

if TYPE_CHECKING:
    from deployd.client.site import Checkup


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class Outcome:
    """What one check found: `status`, a one-line `reason`, a `hint` on how to fix a failure,
    and `details` for the machine-readable report."""

    status: Status
    reason: str
    hint: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)


def passed(reason: str, **details: Any) -> Outcome:
    return Outcome(Status.PASS, reason, "", details)


def failed(reason: str, hint: str, **details: Any) -> Outcome:
    return Outcome(Status.FAIL, reason, hint, details)


def skipped(reason: str) -> Outcome:
    return Outcome(Status.SKIP, reason)


@dataclass(frozen=True)
class Check:
    """One line of the checklist. `hint` is given when the check fails by raising."""

    name: str
    run: Callable[[Checkup], Outcome]
    hint: str
    needs: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    reason: str
    hint: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": str(self.status),
            "reason": self.reason,
            "hint": self.hint,
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class Report:
    """Every check's result, in order; `ok` when none failed."""

    results: Sequence[CheckResult]

    @property
    def ok(self) -> bool:
        return all(result.status is not Status.FAIL for result in self.results)

    def count(self, status: Status) -> int:
        return sum(1 for result in self.results if result.status is status)

    def to_json(self) -> str:
        document = {"ok": self.ok, "checks": [result.to_json() for result in self.results]}
        return json.dumps(document, indent=2, sort_keys=True, default=str)

    def to_text(self) -> str:
        width = max((len(result.name) for result in self.results), default=0)
        lines = []
        for result in self.results:
            lines.append(f"{result.status.upper():4}  {result.name:<{width}}  {result.reason}")
            if result.hint:
                lines.append(f"{'':4}  {'':<{width}}  fix: {result.hint}")
        lines.append(
            f"{len(self.results)} checks: {self.count(Status.PASS)} passed,"
            f" {self.count(Status.FAIL)} failed, {self.count(Status.SKIP)} skipped"
        )
        return "\n".join(lines)


def run_checks(checks: Sequence[Check], checkup: Checkup) -> Report:
    """Run `checks` in order on `checkup`; see the module docstring."""
    results: dict[str, CheckResult] = {}
    for check in checks:
        waiting = [name for name in check.needs if results[name].status is not Status.PASS]
        if waiting:
            outcome = skipped(f"not checked: {waiting[0]} did not pass")
        else:
            try:
                outcome = check.run(checkup)
            except DeploydError as e:
                outcome = failed(e.message, check.hint)
        results[check.name] = CheckResult(
            check.name, outcome.status, outcome.reason, outcome.hint, outcome.details
        )
    return Report(list(results.values()))


CheckSource = Callable[["Checkup"], Sequence[Check]]
_SOURCES: dict[str, CheckSource] = {}


def register_check_source(name: str, source: CheckSource) -> None:
    """Make `source` the checks for `name` (``server``, ``bundle``)."""
    _SOURCES[name] = source


def check_source(name: str) -> CheckSource:
    """The checks registered for `name` (KeyError for a name no module registered)."""
    return _SOURCES[name]
