"""Publishing: validate everything first, skip what did not change, summarize what did."""

from __future__ import annotations

import dataclasses
import re

import pytest
import yaml

from deployd.channels import channel_digest, load_channel_sources, parse_channel_text
from deployd.cli.main import main
from deployd.errors import ChannelValidationError, PreconditionFailedError
from deployd.publishing import (
    check_channels,
    publish_channel,
    publish_channels,
    seed_store,
    summarize,
)
from deployd.store.memory import MemoryStore
from deployd.store.redis import RedisStore
from tests.support.backends import BACKENDS, open_backend
from tests.support.factories import CHANNEL_YAML, write_channels
from tests.support.redis_server import free_port

NEW_RELEASE = "  - version: 1.3.0\n    chart: {version: 0.13.0}\n"


@pytest.fixture(params=BACKENDS)
def store(request):
    """An empty store of each kind in turn."""
    yield from open_backend(request)


def parsed(name: str = "stable", extra: str = "") -> tuple:
    text = CHANNEL_YAML.format(name=name) + extra
    return parse_channel_text(text, filename=f"{name}.yaml", expected_name=name), text


# --- publish_channel


def test_a_new_channel_is_published_at_sequence_one(store):
    channel, text = parsed()
    result = publish_channel(store, channel, source=text, publisher="alice")
    assert result.changed is True
    record = result.record
    assert (record.name, record.sequence, record.publisher) == ("stable", 1, "alice")
    assert (record.document, record.source) == (channel.document, text)
    assert record.digest == channel_digest(channel.document)
    assert record.summary == "created with 3 releases"
    assert store.get_channel("stable") == record


def test_the_same_document_again_is_not_republished(store):
    channel, text = parsed()
    first = publish_channel(store, channel, source=text, publisher="alice")
    generation = store.generation()
    again = publish_channel(store, channel, source=text + "# a comment\n", publisher="bob")
    assert again == dataclasses.replace(first, changed=False)
    assert (store.sequences(), store.generation()) == ({"stable": 1}, generation)
    assert len(store.history("stable")) == 1


def test_a_changed_document_gets_the_next_sequence_and_a_summary(store):
    channel, text = parsed()
    publish_channel(store, channel, source=text, publisher="alice")
    changed, new_text = parsed(extra=NEW_RELEASE)
    result = publish_channel(store, changed, source=new_text, publisher="bob")
    assert (result.changed, result.record.sequence) == (True, 2)
    assert result.record.summary == "added 1.3.0"
    assert [r.source for r in store.history("stable")] == [text, new_text]


def test_expected_sequence_guards_a_publish(store):
    channel, text = parsed()
    assert publish_channel(store, channel, source=text, publisher="a", expected_sequence=0)
    changed, new_text = parsed(extra=NEW_RELEASE)
    with pytest.raises(PreconditionFailedError, match="at sequence 1, not 0"):
        publish_channel(store, changed, source=new_text, publisher="b", expected_sequence=0)
    result = publish_channel(store, changed, source=new_text, publisher="b", expected_sequence=1)
    assert result.record.sequence == 2


def test_an_unchanged_document_with_a_stale_expected_sequence_is_still_a_conflict(store):
    channel, text = parsed()
    publish_channel(store, channel, source=text, publisher="a")
    with pytest.raises(PreconditionFailedError):
        publish_channel(store, channel, source=text, publisher="a", expected_sequence=0)
    same = publish_channel(store, channel, source=text, publisher="a", expected_sequence=1)
    assert (same.changed, same.record.sequence) == (False, 1)


def test_a_publish_that_loses_a_race_is_summarized_against_the_winner():
    """Without an expected sequence, a publish that meets a newer channel retries on top of it."""
    memory = MemoryStore()
    channel, text = parsed()
    publish_channel(memory, channel, source=text, publisher="a")
    changed, new_text = parsed(extra=NEW_RELEASE)
    real_get = memory.get_channel
    stale = real_get("stable")

    def get_then_lose_the_race(name):
        # The first read returns the old record, then someone else publishes `changed`.
        memory.get_channel = real_get
        publish_channel(memory, changed, source=new_text, publisher="winner")
        return stale

    memory.get_channel = get_then_lose_the_race
    result = publish_channel(memory, changed, source=new_text, publisher="loser")
    assert (result.changed, result.record.sequence, result.record.publisher) == (
        False,
        2,
        "winner",
    )
    assert len(memory.history("stable")) == 2


# --- publish_channels and seeding


def test_publish_channels_publishes_each_in_order(store):
    items = [parsed("stable"), parsed("beta")]
    results = publish_channels(store, items, publisher="ci")
    assert [(r.record.name, r.record.sequence, r.changed) for r in results] == [
        ("stable", 1, True),
        ("beta", 1, True),
    ]
    results = publish_channels(
        store, [parsed("stable", NEW_RELEASE), parsed("beta")], publisher="ci"
    )
    assert [(r.record.sequence, r.changed) for r in results] == [(2, True), (1, False)]


def broken(channel, text):
    """A channel whose document was changed by hand after it was validated."""
    document = {**channel.document, "releases": [{"version": "not-semver"}]}
    return dataclasses.replace(channel, document=document), text


@pytest.mark.parametrize(
    ("items", "field"),
    [
        ([parsed("stable"), broken(*parsed("beta"))], "releases[0].version"),
        ([parsed("stable"), parsed("beta"), parsed("stable")], "name"),
        ([parsed("stable"), (dataclasses.replace(parsed("beta")[0], name="gamma"), "")], "name"),
    ],
    ids=["invalid document", "channel given twice", "name and document disagree"],
)
def test_publish_channels_writes_nothing_unless_every_channel_is_valid(store, items, field):
    with pytest.raises(ChannelValidationError) as raised:
        publish_channels(store, items, publisher="ci")
    assert field in [p.field for p in raised.value.problems]
    assert (store.sequences(), store.generation()) == ({}, 0)


def test_check_channels_lists_every_problem():
    items = [broken(*parsed("stable")), broken(*parsed("beta")), parsed("beta")]
    with pytest.raises(ChannelValidationError) as raised:
        check_channels(items)
    found = [(p.file, p.field) for p in raised.value.problems]
    assert ("stable", "releases[0].version") in found
    assert ("beta", "releases[0].version") in found
    assert found[-1] == ("beta", "name")


def test_seed_store_loads_every_channel_file_once(store, tmp_path):
    channels_dir = write_channels(tmp_path / "channels")
    results = seed_store(store, channels_dir)
    assert sorted(r.record.name for r in results) == ["beta", "stable"]
    assert store.sequences() == {"beta": 1, "stable": 1}
    stable = store.get_channel("stable")
    assert stable.publisher == "seed"
    assert stable.source == (channels_dir / "stable.yaml").read_text()
    assert not any(r.changed for r in seed_store(store, channels_dir))
    assert store.sequences() == {"beta": 1, "stable": 1}


def test_load_channel_sources_pairs_each_channel_with_its_text(tmp_path):
    directory = write_channels(tmp_path / "channels", ("stable", "beta"))
    extra = tmp_path / "alpha.yml"
    extra.write_text(CHANNEL_YAML.format(name="alpha") + "# trailing comment\n")
    items = load_channel_sources([directory, extra])
    assert [(c.name, text) for c, text in items] == [
        ("beta", (directory / "beta.yaml").read_text()),
        ("stable", (directory / "stable.yaml").read_text()),
        ("alpha", extra.read_text()),
    ]


def test_load_channel_sources_parses_each_file_once(tmp_path, monkeypatch):
    directory = write_channels(tmp_path / "channels", ("stable", "beta"))
    composed = []
    compose = yaml.compose

    def counting_compose(stream, *args, **kwargs):
        composed.append(stream)
        return compose(stream, *args, **kwargs)

    monkeypatch.setattr(yaml, "compose", counting_compose)
    items = load_channel_sources([directory])
    assert [text for _channel, text in items] == composed
    assert len(composed) == 2


def test_load_channel_sources_reports_the_problems_of_every_file(tmp_path):
    (tmp_path / "stable.yaml").write_text(CHANNEL_YAML.format(name="stable").replace("1.1.0", "x"))
    (tmp_path / "beta.yaml").write_text(CHANNEL_YAML.format(name="gamma"))
    with pytest.raises(ChannelValidationError) as raised:
        load_channel_sources([tmp_path, tmp_path / "missing.yaml"])
    files = {p.file for p in raised.value.problems}
    assert files == {str(tmp_path / n) for n in ("stable.yaml", "beta.yaml", "missing.yaml")}


# --- summarize

OLD = {
    "name": "stable",
    "description": "Production.",
    "chart": {"url": "https://charts.example.com"},
    "values": {"a": 1},
    "releases": [
        {"version": "1.2.0", "chart": {"version": "0.12.0"}},
        {"version": "1.4.0", "chart": {"version": "0.14.0"}, "rollout": 25},
        {"version": "1.3.0", "chart": {"version": "0.13.0"}, "required": True},
    ],
}


def edited(**changes):
    return {**OLD, **changes}


def releases(*edits):
    """OLD's releases with `edits` (version -> replacement; None drops it; new ones appended)."""
    table = dict(edits)
    kept = [table.pop(r["version"], r) for r in OLD["releases"]]
    return [r for r in kept if r is not None] + list(table.values())


@pytest.mark.parametrize(
    ("old", "new", "summary"),
    [
        (None, OLD, "created with 3 releases"),
        (None, {**OLD, "releases": OLD["releases"][:1]}, "created with 1 release"),
        (OLD, OLD, "no change"),
        (
            OLD,
            edited(
                releases=releases(
                    ("1.2.0", None),
                    ("1.4.0", {"version": "1.4.0", "chart": {"version": "0.14.0"}}),
                    ("1.5.0", {"version": "1.5.0", "chart": {"version": "0.15.0"}}),
                ),
                values={"a": 2},
            ),
            "added 1.5.0; removed 1.2.0; changed 1.4.0 (rollout 25 -> 100); channel values changed",
        ),
        (
            OLD,
            edited(
                releases=releases(
                    ("1.3.0", {"version": "1.3.0", "chart": {"version": "0.13.1"}, "notes": "n"})
                )
            ),
            "changed 1.3.0 (required true -> false, chart changed, notes changed)",
        ),
        (
            OLD,
            edited(
                releases=releases(
                    ("1.10.0", {"version": "1.10.0"}),
                    ("1.9.0", {"version": "1.9.0"}),
                    ("1.2.0", {"version": "1.2.0", "chart": {"version": "0.12.0"}, "rollout": 100}),
                )
            ),
            "added 1.9.0, 1.10.0",
        ),
        (OLD, edited(releases=OLD["releases"][::-1]), "releases reordered"),
        (
            OLD,
            edited(description="Now for everyone.", chart={"url": "oci://registry.example.com/c"}),
            "channel description changed; channel chart changed",
        ),
    ],
    ids=[
        "created",
        "created with one",
        "identical",
        "added removed changed",
        "required and other keys",
        "semver order and explicit defaults",
        "reordered",
        "channel keys",
    ],
)
def test_summarize(old, new, summary):
    assert summarize(old, new) == summary


# --- deployd publish


def run(capsys, *argv):
    code = main(["publish", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def redis_url(real_redis, redis_server, monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    return redis_server.url


@pytest.mark.redis_server
def test_publish_command_publishes_then_reports_unchanged(tmp_path, capsys, redis_url, real_redis):
    channels_dir = write_channels(tmp_path / "channels")
    assert run(capsys, str(channels_dir), "--redis-url", redis_url, "--publisher", "ci") == (
        0,
        "beta: sequence 1 (created with 3 releases)\n"
        "stable: sequence 1 (created with 3 releases)\n",
        "",
    )
    published = RedisStore(real_redis)
    assert published.get_channel("stable").publisher == "ci"
    assert run(capsys, str(channels_dir), "--redis-url", redis_url) == (
        0,
        "beta: unchanged (sequence 1)\nstable: unchanged (sequence 1)\n",
        "",
    )
    (channels_dir / "stable.yaml").write_text(CHANNEL_YAML.format(name="stable") + NEW_RELEASE)
    code, out, _ = run(capsys, str(channels_dir / "stable.yaml"), "--redis-url", redis_url)
    assert (code, out) == (0, "stable: sequence 2 (added 1.3.0)\n")
    assert published.sequences() == {"beta": 1, "stable": 2}


@pytest.mark.redis_server
def test_publish_command_takes_redis_url_from_the_environment(
    tmp_path, capsys, redis_url, monkeypatch
):
    monkeypatch.setenv("REDIS_URL", redis_url)
    code, out, _ = run(capsys, str(write_channels(tmp_path / "channels", ("stable",))))
    assert (code, out) == (0, "stable: sequence 1 (created with 3 releases)\n")


@pytest.mark.redis_server
def test_publish_command_with_a_bad_file_lists_every_problem_and_changes_nothing(
    tmp_path, capsys, redis_url, real_redis
):
    channels_dir = write_channels(tmp_path / "channels")
    bad = channels_dir / "beta.yaml"
    bad.write_text(
        CHANNEL_YAML.format(name="beta").replace("1.1.0", "one").replace("rollout", "x")
        + "  - version: 1.0.0\n    rolout: 5\n"
    )
    code, out, err = run(capsys, str(channels_dir), "--redis-url", redis_url)
    assert (code, out) == (1, "")
    lines = err.splitlines()
    assert len(lines) >= 3
    assert all(re.match(rf"{re.escape(str(bad))}:\d+: \S+: .+", line) for line in lines)
    assert any("releases[1].version" in line for line in lines)
    assert any("releases[3].rolout" in line for line in lines)
    assert RedisStore(real_redis).sequences() == {}
    assert real_redis.keys("*") == [b"deployd:epoch"]  # only what `store init` wrote


def test_publish_command_without_redis_refuses(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    code, out, err = run(capsys, str(write_channels(tmp_path / "channels")))
    assert (code, out) == (1, "")
    assert "--redis-url" in err and "REDIS_URL" in err


def test_publish_command_reports_an_unreachable_redis_without_its_password(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.delenv("REDIS_URL", raising=False)
    port = free_port()
    url = f"redis://:hunter2@127.0.0.1:{port}/0"
    code, out, err = run(capsys, str(write_channels(tmp_path / "channels")), "--redis-url", url)
    assert (code, out) == (1, "")
    assert f"Redis at 127.0.0.1:{port}/0 failed" in err
    assert "hunter2" not in err
