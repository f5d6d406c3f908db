"""The hierarchy `channel < user input < custom resource`: laws, then the concrete cases."""

from __future__ import annotations

import copy
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deployd.client.errors import InputError
from deployd.client.hierarchy import desired_state, merge_specs
from deployd.client.inputs import (
    CustomResource,
    load_custom_resource,
    load_values_file,
    parse_custom_resource,
)
from deployd.client.verify import verify_spec
from tests.client.specs import encode, spec_document

KEYS = st.sampled_from(["a", "b", "c", "global", "image"])
SCALARS = st.one_of(
    st.integers(-5, 5), st.text(max_size=3), st.booleans(), st.lists(st.integers(0, 3), max_size=3)
)


def mappings(leaves):
    return st.recursive(
        st.dictionaries(KEYS, leaves, max_size=3),
        lambda children: st.dictionaries(KEYS, st.one_of(leaves, children), max_size=3),
        max_leaves=12,
    )


VALUES = mappings(SCALARS)
VALUES_WITH_NULLS = mappings(st.one_of(SCALARS, st.none()))
# Values whose every key has one kind in all layers: "x"/"y" always scalars, the rest mappings.
CONSISTENT = st.recursive(
    st.dictionaries(st.sampled_from(["x", "y"]), SCALARS, max_size=2),
    lambda children: st.builds(
        lambda leaves, nested: {**leaves, **nested},
        st.dictionaries(st.sampled_from(["x", "y"]), SCALARS, max_size=2),
        st.dictionaries(st.sampled_from(["a", "b", "global"]), children, max_size=2),
    ),
    max_leaves=12,
)
CHARTS = st.one_of(st.none(), st.fixed_dictionaries({"name": st.sampled_from(["x", "y", "z"])}))


def layers(values):
    return st.fixed_dictionaries({"values": values}, optional={"chart": CHARTS})


def leaves(mapping, prefix=()):
    """Every (path, value) whose value is not a mapping; None included."""
    for key, value in mapping.items():
        if isinstance(value, dict):
            yield from leaves(value, prefix + (key,))
        else:
            yield prefix + (key,), value


def lookup(mapping, path):
    for key in path:
        if not isinstance(mapping, dict) or key not in mapping:
            return KeyError
        mapping = mapping[key]
    return mapping


def touched(higher, path):
    """True when `higher` sets `path`, or a prefix of it to something that is not a mapping."""
    for depth in range(1, len(path) + 1):
        found = lookup(higher, path[:depth])
        if found is KeyError:
            return False
        if not isinstance(found, dict):
            return True
    return True


# --- laws ---------------------------------------------------------------------------------------


@given(layers(VALUES_WITH_NULLS))
def test_identity_merging_with_nothing_on_either_side_changes_nothing(x):
    assert merge_specs(x, {}) == merge_specs({}, x) == merge_specs(x)
    assert merge_specs(merge_specs(x)) == merge_specs(x)


@given(VALUES)
def test_identity_keeps_null_free_values_exactly(values):
    assert merge_specs({"values": values})["values"] == values


@given(layers(CONSISTENT), layers(CONSISTENT), layers(CONSISTENT))
def test_associativity_without_nulls_or_kind_changes(a, b, c):
    flat = merge_specs(a, b, c)
    assert merge_specs(merge_specs(a, b), c) == flat
    assert merge_specs(a, merge_specs(b, c)) == flat


@pytest.mark.parametrize(
    ("a", "b", "c", "flat", "grouped_right"),
    [
        # A null in c removes k from b only, when b and c are merged first.
        ({"k": 1}, {}, {"k": None}, {}, {"k": 1}),
        # b's scalar wipes a's mapping; grouped first with c it is itself replaced by a mapping,
        # which then merges into a's mapping instead of replacing it.
        ({"k": {"x": 0}}, {"k": 0}, {"k": {}}, {"k": {}}, {"k": {"x": 0}}),
    ],
)
def test_where_associativity_does_not_hold(a, b, c, flat, grouped_right):
    a, b, c = ({"values": v} for v in (a, b, c))
    assert merge_specs(a, b, c)["values"] == flat
    assert merge_specs(merge_specs(a, b), c)["values"] == flat
    assert merge_specs(a, merge_specs(b, c))["values"] == grouped_right


@given(VALUES_WITH_NULLS, VALUES_WITH_NULLS)
def test_precedence_every_leaf_of_the_higher_level_wins(lower, higher):
    merged = merge_specs({"values": lower}, {"values": higher})["values"]
    for path, value in leaves(higher):
        if value is None:
            assert lookup(merged, path) is KeyError
        else:
            assert lookup(merged, path) == value


@given(VALUES, VALUES_WITH_NULLS)
def test_lower_leaves_the_higher_level_does_not_touch_survive(lower, higher):
    merged = merge_specs({"values": lower}, {"values": higher})["values"]
    for path, value in leaves(lower):
        if not touched(higher, path):
            assert lookup(merged, path) == value


@given(VALUES_WITH_NULLS, VALUES_WITH_NULLS, VALUES_WITH_NULLS)
def test_precedence_holds_across_three_levels(channel, user, cr):
    merged = merge_specs({"values": channel}, {"values": user}, {"values": cr})["values"]
    for path, value in leaves(cr):
        assert lookup(merged, path) == (KeyError if value is None else value)


@given(VALUES_WITH_NULLS, VALUES_WITH_NULLS)
def test_null_removal_leaves_no_nulls(lower, higher):
    merged = merge_specs({"values": lower}, {"values": higher})["values"]
    assert all(value is not None for _, value in leaves(merged))


@given(st.lists(layers(VALUES_WITH_NULLS), max_size=4))
def test_the_chart_comes_whole_from_the_highest_level_that_sets_one(stack):
    charts = [layer["chart"] for layer in stack if layer.get("chart")]
    assert merge_specs(*stack)["chart"] == (charts[-1] if charts else {})


@given(layers(VALUES_WITH_NULLS), layers(VALUES_WITH_NULLS))
def test_inputs_are_not_modified(a, b):
    before = copy.deepcopy((a, b))
    merged = merge_specs(a, b)
    merged["values"]["new"] = 1
    assert (a, b) == before


# --- concrete cases -----------------------------------------------------------------------------


def test_the_three_levels_in_order():
    channel = {
        "chart": {"url": "https://charts.example.com", "name": "server", "version": "0.10.0"},
        "values": {
            "global": {"logLevel": "info", "host": "x"},
            "app": {"replicas": 1, "env": ["A"]},
        },
    }
    user = {"values": {"global": {"host": "https://wandb.example.com"}, "app": {"env": ["B"]}}}
    cr = {"chart": {"path": "/charts/server"}, "values": {"global": {"logLevel": None}}}
    assert merge_specs(channel, user, cr) == {
        "chart": {"path": "/charts/server"},
        "values": {
            "global": {"host": "https://wandb.example.com"},
            "app": {"replicas": 1, "env": ["B"]},
        },
    }


def _verified(signer, **fields):
    body = encode(spec_document(**fields))
    return verify_spec(
        body,
        signer.sign(body),
        trusted_keys=signer.trusted,
        now=time.time(),
        expected_channel=fields.get("channel", "stable"),
    )


def test_desired_state_merges_user_and_custom_resource_over_the_channel(signer):
    spec = _verified(signer, values={"app": {"tag": "1"}, "global": {"size": "small"}})
    cr = CustomResource("apps.wandb.com/v1", "WeightsAndBiases", "wandb", {"path": "c"}, {})
    desired = desired_state(
        spec,
        user_values={"global": {"size": "large"}, "_releaseId": "1.0.0"},
        custom_resource=cr,
    )
    assert desired.values == {"app": {"tag": "1"}, "global": {"size": "large"}}
    assert desired.chart == {"path": "c"}
    assert desired.release == "1.0.0" and desired.metadata == spec.metadata
    assert desired.document()["metadata"]["sequence"] == "1"


def test_the_digest_ignores_re_signing_but_not_content(signer):
    now = time.time()
    first = desired_state(_verified(signer, sequence=1, issued_at=now - 10, expires=now + 100))
    resigned = desired_state(_verified(signer, sequence=2, issued_at=now, expires=now + 200))
    other_values = desired_state(_verified(signer, values={"app": {"tag": "2"}}))
    other_release = desired_state(_verified(signer, release="1.0.1", values=first.values))
    assert first.digest == resigned.digest
    assert len({first.digest, other_values.digest, other_release.digest}) == 3


def test_to_json_is_stable_bytes(signer):
    desired = desired_state(_verified(signer))
    assert desired.to_json() == desired_state(_verified(signer)).to_json()


# --- reading the user's files -------------------------------------------------------------------

CR_YAML = """\
apiVersion: apps.wandb.com/v1
kind: WeightsAndBiases
metadata: {name: wandb, namespace: default}
spec:
  chart: {url: https://charts.wandb.ai, name: operator-wandb, version: 0.19.0}
  values:
    global: {host: "https://wandb.example.com", license: from-cr}
    app: {image: {tag: 2026-01-01}}
"""


def test_a_custom_resource_manifest_is_read_whole(tmp_path):
    path = tmp_path / "cr.yaml"
    path.write_text(CR_YAML)
    cr = load_custom_resource(path)
    assert (cr.api_version, cr.kind, cr.name) == ("apps.wandb.com/v1", "WeightsAndBiases", "wandb")
    assert cr.chart == {
        "url": "https://charts.wandb.ai",
        "name": "operator-wandb",
        "version": "0.19.0",
    }
    # Timestamps stay strings, as Helm reads them, so the spec stays JSON.
    assert cr.values["app"]["image"]["tag"] == "2026-01-01"


def test_a_custom_resource_without_chart_or_values():
    cr = parse_custom_resource({"apiVersion": "v1", "kind": "X", "spec": {}})
    assert cr.chart is None and cr.values == {}


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (["a"], "mapping"),
        ({"kind": "X", "spec": {}}, "apiVersion"),
        ({"apiVersion": "v1", "spec": {}}, "kind"),
        ({"apiVersion": "v1", "kind": "X", "metadata": "x"}, "metadata"),
        ({"apiVersion": "v1", "kind": "X", "spec": ["a"]}, "spec"),
        ({"apiVersion": "v1", "kind": "X", "spec": {"chart": "server"}}, "spec.chart"),
        ({"apiVersion": "v1", "kind": "X", "spec": {"values": [1]}}, "spec.values"),
    ],
)
def test_bad_custom_resources_name_the_field(document, field):
    with pytest.raises(InputError, match=field.replace(".", r"\.")):
        parse_custom_resource(document, source="cr.yaml")


def _alias_bomb(levels: int) -> str:
    lines = ["l0: &l0 [x, x]"]
    lines += [f"l{i}: &l{i} [*l{i - 1}, *l{i - 1}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "mapping"),
        ("a: 1\n---\nb: 2\n", "2 YAML documents"),
        ("a: [1\n", "not valid YAML"),
        ("1: a\n", "key must be a string"),
        ("a: !!binary aGVsbG8=\n", "bytes values"),
        ("a: .nan\n", "JSON can carry"),
        (_alias_bomb(30), "nodes"),
    ],
)
def test_bad_values_files_are_refused_clearly(tmp_path, text, message):
    path = tmp_path / "values.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        load_values_file(path)


def test_values_files_may_be_empty_or_json(tmp_path):
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "v.json").write_text('{"global": {"host": "h"}}')
    assert load_values_file(tmp_path / "empty.yaml") == {}
    assert load_values_file(tmp_path / "v.json") == {"global": {"host": "h"}}


def test_an_oversized_or_missing_values_file_is_refused(tmp_path):
    (tmp_path / "big.yaml").write_text("a: " + "x" * 1_100_000)
    with pytest.raises(InputError, match="larger"):
        load_values_file(tmp_path / "big.yaml")
    with pytest.raises(InputError, match="cannot read"):
        load_values_file(tmp_path / "missing.yaml")
