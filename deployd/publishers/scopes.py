"""Publisher scopes: the actions a publisher token may take and the channels it may change.

``admin`` implies every other action on every channel; `require_scope` is the one check every
publisher endpoint makes before it reads its body.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from deployd.errors import BadRequestError, DeploydError
from deployd.store import ADMIN_ACTIONS, EVERY_CHANNEL, PublisherRecord

logger = logging.getLogger(__name__)

PUBLISH, PROMOTE, ROLLBACK, REVOKE, ADMIN = "publish", "promote", "rollback", "revoke", "admin"
CUSTOMERS = "customers"  # change customer records (deployd.customers); concerns no channel
ROLLOUT = "rollout"  # halt and resume a channel's releases (deployd.rollouts)
# Export offline bundles (deployd.offline): a license's signed specs, for an air-gapped site.
# Like `customers` it concerns no channel: the license decides which channels a bundle may hold.
BUNDLES = "bundles"
ACTIONS = (PUBLISH, PROMOTE, ROLLBACK, ROLLOUT, REVOKE, CUSTOMERS, BUNDLES, ADMIN)
# The actions that change one channel, and so are limited by the channel globs.
CHANNEL_ACTIONS = frozenset({PUBLISH, PROMOTE, ROLLBACK, ROLLOUT})
# A channel name ([a-z0-9-]) with `*` (any run of characters) and `?` (one character).
GLOB_PATTERN = re.compile(r"[a-z0-9*?-]{1,63}", re.ASCII)


class ScopeError(DeploydError):
    """A valid publisher token asked for something outside its scopes: 403, naming the action
    and the channel (None for revocation) it lacks."""

    status = 403
    code = "scope_not_allowed"

    def __init__(self, message: str, *, action: str, channel: str | None) -> None:
        super().__init__(message)
        self.action = action
        self.channel = channel

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        body["error"]["scope"] = {"action": self.action, "channel": self.channel}
        return body


@dataclass(frozen=True)
class Scopes:
    """What a publisher may do: `actions`, and the channel globs limiting the channel actions.

    ``admin`` implies every action on every channel. Build with `Scopes.of` (which checks and
    normalizes); `Scopes.admin()` is what credentials from before scopes get.
    """

    actions: frozenset[str]
    channels: tuple[str, ...]

    @classmethod
    def admin(cls) -> Scopes:
        return cls(frozenset(ADMIN_ACTIONS), EVERY_CHANNEL)

    @classmethod
    def of(cls, actions: Iterable[str], channels: Iterable[str]) -> Scopes:
        """Checked scopes; BadRequestError naming what is wrong.

        At least one action; every channel action needs at least one channel glob, and globs
        are only for channel actions. ``admin`` stands alone, for every channel.
        """
        wanted, globs = frozenset(actions), tuple(dict.fromkeys(channels))
        unknown = sorted(wanted - set(ACTIONS))
        if not wanted or unknown:
            problem = f"unknown action {unknown[0]!r}" if unknown else "no action given"
            raise BadRequestError(f"{problem}; the actions are {', '.join(ACTIONS)}")
        bad_globs = [g for g in globs if not GLOB_PATTERN.fullmatch(g)]
        if bad_globs:
            raise BadRequestError(
                f"channel {bad_globs[0]!r} is neither a channel name nor a glob of one"
                " (a-z, 0-9, '-', with '*' for any characters and '?' for one)"
            )
        if ADMIN in wanted:
            if globs not in ((), EVERY_CHANNEL) or len(wanted) > 1:
                raise BadRequestError(
                    "admin implies every action on every channel: give it alone, without"
                    " --channel (or with --channel '*')"
                )
            return cls.admin()
        if wanted & CHANNEL_ACTIONS and not globs:
            raise BadRequestError(
                "publish, promote, rollback and rollout need the channels they may change"
                " (--channel NAME or GLOB, repeatable)"
            )
        if globs and not wanted & CHANNEL_ACTIONS:
            raise BadRequestError(
                "channels limit only publish, promote, rollback and rollout; revoke concerns no"
                " channel (nor do customers and bundles)"
            )
        return cls(wanted, globs)

    @classmethod
    def of_record(cls, record: PublisherRecord) -> Scopes:
        """The scopes a store record holds, as written (an unknown action just grants nothing)."""
        return cls(frozenset(record.actions), tuple(record.channels))

    def allows(self, action: str, channel: str | None = None) -> bool:
        """True when `action` (on `channel`, for the channel actions) is within these scopes."""
        if ADMIN in self.actions:
            return True
        if action not in self.actions:
            return False
        if action not in CHANNEL_ACTIONS:
            return True
        return channel is not None and any(fnmatchcase(channel, glob) for glob in self.channels)

    @property
    def sorted_actions(self) -> tuple[str, ...]:
        """The actions in the order of `ACTIONS` (how they are stored and shown)."""
        return tuple(a for a in ACTIONS if a in self.actions)

    def describe(self) -> str:
        """Like ``publish, promote on beta-*, stable``, ``revoke`` or ``admin``."""
        actions = ", ".join(self.sorted_actions)
        if ADMIN in self.actions or not self.actions & CHANNEL_ACTIONS:
            return actions
        return f"{actions} on {', '.join(self.channels)}"


@dataclass(frozen=True)
class Publisher:
    """Who a valid publisher token belongs to and what it may do."""

    name: str
    scopes: Scopes


def require_scope(publisher: Publisher, action: str, channel: str | None = None) -> None:
    """Raise ScopeError (403) unless `publisher` may take `action` (on `channel`).

    The one scope check: every publisher endpoint that changes something calls it before it
    reads its body, so a refused request changes nothing.
    """
    if publisher.scopes.allows(action, channel):
        return
    what = f"{action} channel {channel!r}" if channel is not None else _what(action)
    logger.warning("publisher %s refused: may not %s", publisher.name, what)
    raise ScopeError(
        f"publisher {publisher.name!r} may not {what}: its scopes are"
        f" {publisher.scopes.describe()}",
        action=action,
        channel=channel,
    )


def _what(action: str) -> str:
    """What an action that concerns no channel changes, for messages."""
    if action == BUNDLES:
        return "export offline bundles"
    return "change customer records" if action == CUSTOMERS else f"{action} licenses"
