"""Rollback, promotion and the dry-run diff (deployd.publishing), on the memory store."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from deployd.channels import channel_from_document, load_channel_file, parse_channel_text
from deployd.errors import ConflictError, NotFoundError, PreconditionFailedError
from deployd.publishing import (
    describe_changes,
    document_source,
    promote_release,
    publish_channel,
    rollback_channel,
    seed_store,
)
from deployd.store.memory import MemoryStore
from tests.support.factories import CHANNEL_YAML, write_channels

REPO = Path(__file__).resolve().parents[1]
EXTRA = """\
  - version: 1.9.0
    chart: {version: 0.19.0}
"""


def channel(name: str, text: str):
    return parse_channel_text(text, filename=f"{name}.yaml", expected_name=name)


@pytest.fixture
def store(tmp_path):
    store = MemoryStore()
    seed_store(store, write_channels(tmp_path / "channels"))
    return store


def publish_text(store, name, text, **kwargs):
    return publish_channel(store, channel(name, text), source=text, publisher="t", **kwargs)


# --- rollback


def test_rollback_is_a_new_sequence_with_the_old_source(store):
    publish_text(store, "stable", CHANNEL_YAML.format(name="stable") + EXTRA)
    result = rollback_channel(store, "stable", 1, publisher="alice")
    assert (result.changed, result.record.sequence) == (True, 3)
    assert result.record.summary == "rollback to 1: removed 1.9.0"
    first = store.history_entry("stable", 1)
    assert (result.record.document, result.record.source) == (first.document, first.source)


@pytest.mark.parametrize(
    ("name", "sequence", "code"),
    [("ghost", 1, "unknown_channel"), ("stable", 2, "unknown_sequence")],
)
def test_rollback_to_nothing_is_not_found(store, name, sequence, code):
    with pytest.raises(NotFoundError) as raised:
        rollback_channel(store, name, sequence, publisher="alice")
    assert raised.value.code == code


def test_rollback_honours_the_expected_sequence(store):
    publish_text(store, "stable", CHANNEL_YAML.format(name="stable") + EXTRA)
    with pytest.raises(PreconditionFailedError):
        rollback_channel(store, "stable", 1, publisher="alice", expected_sequence=1)


# --- promotion


class Interleaving(MemoryStore):
    """A memory store on which `action` runs once, right after the next read of `channel`: as if
    another publisher got in between a read and the write that follows it."""

    def __init__(self, channel: str) -> None:
        super().__init__()
        self.channel = channel
        self.action = None

    def get_channel(self, name):
        record = super().get_channel(name)
        if name == self.channel and self.action is not None:
            action, self.action = self.action, None
            action()
        return record


def test_a_promotion_never_overwrites_a_publish_made_meanwhile(tmp_path):
    store = Interleaving("stable")
    seed_store(store, write_channels(tmp_path / "channels"))
    publish_text(store, "beta", CHANNEL_YAML.format(name="beta") + EXTRA)
    meanwhile = CHANNEL_YAML.format(name="stable").replace("version: 1.0.0", "version: 0.9.0")
    store.action = lambda: publish_text(store, "stable", meanwhile)
    promotion = promote_release(
        store, source="beta", target="stable", version="1.9.0", publisher="alice"
    )
    assert promotion.result.record.sequence == 3
    versions = [
        r.version for r in channel_from_document(store.get_channel("stable").document).releases
    ]
    assert versions == ["0.9.0", "1.1.0", "1.2.0", "1.9.0"]
    assert store.get_channel("stable").summary == "promoted 1.9.0 from beta: added 1.9.0"


def test_with_an_expected_sequence_a_promotion_raced_is_412(tmp_path):
    store = Interleaving("stable")
    seed_store(store, write_channels(tmp_path / "channels"))
    publish_text(store, "beta", CHANNEL_YAML.format(name="beta") + EXTRA)
    store.action = lambda: publish_text(
        store, "stable", CHANNEL_YAML.format(name="stable") + "#\n" + EXTRA
    )
    with pytest.raises(PreconditionFailedError):
        promote_release(
            store,
            source="beta",
            target="stable",
            version="1.9.0",
            publisher="alice",
            expected_sequence=1,
        )


def test_a_release_whose_chart_drops_a_key_keeps_dropping_it(store):
    oci = (
        CHANNEL_YAML.format(name="beta")
        + """\
  - version: 2.0.0
    chart: {url: "oci://registry.example.com/charts/server", name: null, version: 0.20.0}
"""
    )
    publish_text(store, "beta", oci)
    promote_release(store, source="beta", target="stable", version="2.0.0", publisher="alice")
    stable = channel_from_document(store.get_channel("stable").document)
    assert stable.release("2.0.0").chart == {
        "url": "oci://registry.example.com/charts/server",
        "version": "0.20.0",
    }


def test_values_that_cannot_be_pinned_are_a_conflict(store):
    # A null in the source's channel values survives into its effective values; a release
    # cannot write a null into another channel (a null there removes the key).
    beta = CHANNEL_YAML.format(name="beta").replace(
        "values: {global: {logLevel: info}", "values: {global: {logLevel: null}"
    )
    publish_text(store, "beta", beta + EXTRA)
    with pytest.raises(ConflictError) as raised:
        promote_release(
            store,
            source="beta",
            target="stable",
            version="1.9.0",
            publisher="alice",
            pin_values=True,
        )
    assert raised.value.code == "promotion_conflict"
    assert store.get_channel("stable").sequence == 1


def test_promotion_between_the_sample_channels(tmp_path):
    store = MemoryStore()
    seed_store(store, REPO / "channels")
    promotion = promote_release(
        store, source="beta", target="stable", version="1.6.0-beta.2", publisher="alice"
    )
    assert promotion.result.changed
    assert "values.global.logLevel" in promotion.values_differ
    stable = channel_from_document(store.get_channel("stable").document)
    beta = channel_from_document(store.get_channel("beta").document)
    assert stable.release("1.6.0-beta.2").chart == beta.release("1.6.0-beta.2").chart
    pinned = promote_release(
        store,
        source="beta",
        target="stable",
        version="1.6.0-beta.1",
        publisher="alice",
        pin_values=True,
    )
    assert pinned.values_differ == []
    stable = channel_from_document(store.get_channel("stable").document)
    assert stable.release("1.6.0-beta.1").values == beta.release("1.6.0-beta.1").values
    with pytest.raises(ConflictError) as raised:
        promote_release(store, source="beta", target="stable", version="1.5.0", publisher="a")
    assert raised.value.code == "release_exists"


# --- sources the server writes


@pytest.mark.parametrize("name", ["stable", "beta"])
def test_document_source_parses_back_to_the_same_document(name):
    document = load_channel_file(REPO / "channels" / f"{name}.yaml").document
    assert parse_channel_text(document_source(document), filename=name).document == document


# --- the dry-run diff

BASE = parse_channel_text(CHANNEL_YAML.format(name="stable"), filename="s").document


def changed(edit):
    document = copy.deepcopy(BASE)
    edit(document)
    return document


@pytest.mark.parametrize(
    ("edit", "lines"),
    [
        (lambda d: None, []),
        (
            lambda d: d.update(description="New."),
            ['~ description: "Test channel stable." -> "New."'],
        ),
        (
            lambda d: d["values"]["global"].update(logLevel="debug", extra=1),
            ['~ values.global.logLevel: "info" -> "debug"', "+ values.global.extra: 1"],
        ),
        (lambda d: d["values"].pop("app"), ['- values.app: {"image": {"tag": "0.1.0"}}']),
        (
            lambda d: d["releases"].append({"version": "2.0.0", "rollout": 5, "required": True}),
            ["+ release 2.0.0 (rollout 5, required)"],
        ),
        (lambda d: d["releases"].pop(0), ["- release 1.0.0"]),
        (
            lambda d: d["releases"][2].update(rollout=10, notes="Hi."),
            ["~ release 1.2.0", "    ~ rollout: 100 -> 10", '    + notes: "Hi."'],
        ),
        (lambda d: d["releases"][1].update(required=True), []),
        (lambda d: d["releases"].reverse(), ["~ releases reordered"]),
    ],
    ids=[
        "nothing",
        "description",
        "values",
        "values removed",
        "release added",
        "release removed",
        "release changed",
        "default written out",
        "reordered",
    ],
)
def test_describe_changes(edit, lines):
    assert describe_changes(BASE, changed(edit)) == lines


def test_describe_a_new_channel():
    assert describe_changes(None, BASE) == ["+ new channel with releases 1.0.0, 1.1.0, 1.2.0"]
