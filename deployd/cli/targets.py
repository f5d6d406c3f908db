"""Where the publisher commands act: a deployd server over HTTP, or its Redis directly.

Both targets answer with the shapes the HTTP API answers with, built by the same functions
(`deployd.publishing.responses`), so a command prints the same lines whichever it talks to.
A server is the usual target (`--server URL` with a publisher token): it checks the token and
records its name. Writing into Redis directly (`--redis-url`) needs no server but trusts whoever
can reach Redis, and records the `--publisher` name given.
"""

from __future__ import annotations

import argparse
import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from deployd.channels import Channel
from deployd.cli.remote import SERVER_ENV, TOKEN_ENV, PublisherClient, client_from
from deployd.customers import check_subject
from deployd.customers.changes import clear_customer, customer_dict, set_customer
from deployd.errors import ConfigError, NotFoundError
from deployd.publishing import (
    outcome_dict,
    promote_release,
    promotion_dict,
    publish_channel,
    record_dict,
    rollback_channel,
    rollback_dict,
)
from deployd.rollouts.halts import Rollouts
from deployd.rollouts.history import history_entries
from deployd.rollouts.records import HALT
from deployd.server.settings import settings_from_env
from deployd.store import Store


class Target(Protocol):
    where: str

    def document(self, name: str) -> dict[str, Any] | None:
        """The channel's current record with document and source, or None when it is new."""

    def publish(
        self, channel: Channel, source: str, *, expected_sequence: int | None
    ) -> dict[str, Any]: ...

    def history(self, name: str) -> list[dict[str, Any]]:
        """History entries, oldest first; NotFoundError for an unknown channel."""

    def history_entry(self, name: str, sequence: int) -> dict[str, Any]: ...

    def rollback(self, name: str, sequence: int) -> dict[str, Any]: ...

    def rollout_status(self, name: str) -> list[dict[str, Any]]: ...

    def change_rollout(
        self, name: str, version: str, action: str, reason: str
    ) -> dict[str, Any]: ...

    def promote(
        self, *, source: str, target: str, version: str, rollout: int | None, pin_values: bool
    ) -> dict[str, Any]: ...

    def customer(self, subject: str) -> dict[str, Any]:
        """What `GET /api/v1/customers/<sub>` answers."""

    def change_customer(self, subject: str, values: dict[str, Any]) -> dict[str, Any]:
        """Set the fields in `values` (null clears one), as `PATCH /api/v1/customers/<sub>`."""

    def delete_customer(self, subject: str) -> dict[str, Any]: ...


class ServerTarget:
    """The publisher endpoints of a deployd server."""

    def __init__(self, client: PublisherClient) -> None:
        self.client = client
        self.where = client.server

    def document(self, name: str) -> dict[str, Any] | None:
        return self.client.document(name)

    def publish(
        self, channel: Channel, source: str, *, expected_sequence: int | None
    ) -> dict[str, Any]:
        return self.client.publish(channel.name, source, expected_sequence=expected_sequence)

    def history(self, name: str) -> list[dict[str, Any]]:
        return self.client.history(name)

    def history_entry(self, name: str, sequence: int) -> dict[str, Any]:
        return self.client.history_entry(name, sequence)

    def rollback(self, name: str, sequence: int) -> dict[str, Any]:
        return self.client.rollback(name, sequence)

    def rollout_status(self, name: str) -> list[dict[str, Any]]:
        return self.client.rollout_status(name)

    def change_rollout(self, name: str, version: str, action: str, reason: str) -> dict[str, Any]:
        return self.client.change_rollout(name, version, action, reason=reason)

    def promote(
        self, *, source: str, target: str, version: str, rollout: int | None, pin_values: bool
    ) -> dict[str, Any]:
        return self.client.promote(
            source=source, target=target, version=version, rollout=rollout, pin_values=pin_values
        )

    def customer(self, subject: str) -> dict[str, Any]:
        return self.client.customer(subject)

    def change_customer(self, subject: str, values: dict[str, Any]) -> dict[str, Any]:
        return self.client.change_customer(subject, values)

    def delete_customer(self, subject: str) -> dict[str, Any]:
        return self.client.delete_customer(subject)


class StoreTarget:
    """A store (the servers' Redis) written directly, as publisher `publisher`."""

    def __init__(self, store: Store, *, publisher: str, where: str) -> None:
        self.store = store
        self.publisher = publisher
        self.where = where

    def document(self, name: str) -> dict[str, Any] | None:
        record = self.store.get_channel(name)
        return record_dict(record, full=True) if record is not None else None

    def publish(
        self, channel: Channel, source: str, *, expected_sequence: int | None
    ) -> dict[str, Any]:
        result = publish_channel(
            self.store,
            channel,
            source=source,
            publisher=self.publisher,
            expected_sequence=expected_sequence,
        )
        return outcome_dict(result)

    def history(self, name: str) -> list[dict[str, Any]]:
        records = self.store.history(name)
        if not records:
            raise NotFoundError(f"no channel named {name!r}", code="unknown_channel")
        return list(reversed(history_entries(records, self.store.rollout_events(name))))

    def history_entry(self, name: str, sequence: int) -> dict[str, Any]:
        record = self.store.history_entry(name, sequence)
        if record is None:
            self.history(name)
            raise NotFoundError(
                f"channel {name!r} has no sequence {sequence}", code="unknown_sequence"
            )
        return record_dict(record, full=True)

    def rollout_status(self, name: str) -> list[dict[str, Any]]:
        return [health.to_dict() for health in Rollouts(self.store).health(name)]

    def change_rollout(self, name: str, version: str, action: str, reason: str) -> dict[str, Any]:
        rollouts = Rollouts(self.store)
        change = rollouts.halt if action == HALT else rollouts.resume
        changed = change(name, version, by=self.publisher, reason=reason)
        return {
            "channel": name,
            "changed": changed,
            **rollouts.release_health(name, version).to_dict(),
        }

    def rollback(self, name: str, sequence: int) -> dict[str, Any]:
        result = rollback_channel(self.store, name, sequence, publisher=self.publisher)
        return rollback_dict(result, sequence)

    def promote(
        self, *, source: str, target: str, version: str, rollout: int | None, pin_values: bool
    ) -> dict[str, Any]:
        promotion = promote_release(
            self.store,
            source=source,
            target=target,
            version=version,
            publisher=self.publisher,
            rollout=rollout,
            pin_values=pin_values,
        )
        return promotion_dict(promotion, source)

    def customer(self, subject: str) -> dict[str, Any]:
        return customer_dict(subject, self.store.customer(check_subject(subject)))

    def change_customer(self, subject: str, values: dict[str, Any]) -> dict[str, Any]:
        record = set_customer(self.store, subject, values, by=self.publisher)
        return customer_dict(subject, record)

    def delete_customer(self, subject: str) -> dict[str, Any]:
        return customer_dict(subject, clear_customer(self.store, subject, by=self.publisher))


def add_target_arguments(parser: argparse.ArgumentParser, *, writes: bool = True) -> None:
    """--server/--token (a server) and --redis-url (its Redis, directly); for commands that
    write, also --publisher (who is recorded when writing into Redis)."""
    parser.add_argument(
        "--server",
        metavar="URL",
        help=f"the deployd server, like https://deploy.example.com (default: ${SERVER_ENV})",
    )
    parser.add_argument(
        "--token",
        metavar="TOKEN",
        help=f"publisher token for --server (default: ${TOKEN_ENV}; prefer it: a flag shows in ps)",
    )
    parser.add_argument(
        "--redis-url",
        metavar="URL",
        help=f"{'write into' if writes else 'read from'} the servers' Redis directly instead"
        " (default: $REDIS_URL)",
    )
    if not writes:
        return
    parser.add_argument(
        "--publisher",
        metavar="NAME",
        help="with --redis-url: who publishes, kept in history (default: your user name);"
        " a server records its token's name instead",
    )


@contextmanager
def open_target(args: argparse.Namespace) -> Iterator[Target]:
    """The target the arguments name: --server, else --redis-url, else $DEPLOYD_SERVER, else
    $REDIS_URL. Raises ConfigError when there is none, or both flags are given."""
    if args.server and args.redis_url:
        raise ConfigError("give --server or --redis-url, not both")
    server = args.server or (None if args.redis_url else os.environ.get(SERVER_ENV) or None)
    if server:
        client = client_from(server, args.token)
        try:
            yield ServerTarget(client)
        finally:
            client.close()
        return
    from deployd.store.redis import RedisStore

    store = RedisStore.from_url(_redis_url(args))
    try:
        publisher = getattr(args, "publisher", None) or user_name()
        yield StoreTarget(store, publisher=publisher, where=store.server)
    finally:
        store.close()


def _redis_url(args: argparse.Namespace) -> str:
    overrides = {"redis_url": args.redis_url} if args.redis_url else {}
    redis_url = settings_from_env(**overrides).redis_url
    if redis_url is None:
        raise ConfigError(
            "say where to publish: --server URL with a publisher token in"
            f" ${TOKEN_ENV} (or ${SERVER_ENV}), or the Redis your servers use with --redis-url"
            " or REDIS_URL. A server without Redis keeps its channels in its own memory: publish"
            " to it with --server; `deployd channels check` validates files without publishing"
            " them"
        )
    return redis_url


def user_name() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "cli"
