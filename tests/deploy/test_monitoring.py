"""deploy/grafana/deployd.json and deploy/prometheus/alerts.yaml use only metrics deployd defines
(deployd/metrics/registry.py) and have the structure Grafana and Prometheus load. promtool is not
needed: the files are parsed and their structure checked here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from deployd.metrics.registry import metric_names

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "deployd.json"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yaml"
METRIC = re.compile(r"\bdeployd_[a-z_]+\b")
# What Prometheus adds to a family's name in the samples a query can use.
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def used_metrics(expression: str) -> set[str]:
    return set(METRIC.findall(expression))


def defined(name: str) -> bool:
    names = metric_names()
    if name in names:
        return True
    stems = {n.removesuffix("_total") for n in names}
    return any(name.endswith(s) and name.removesuffix(s) in stems for s in SUFFIXES)


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        target["expr"]
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


def alert_rules() -> list[dict]:
    return [
        rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]
    ]


@pytest.mark.parametrize("expression", dashboard_expressions())
def test_every_dashboard_query_uses_defined_metrics(expression):
    used = used_metrics(expression)
    assert used, expression
    assert all(defined(name) for name in used), used


def test_the_dashboard_has_grafanas_structure():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["uid"] and isinstance(dashboard["schemaVersion"], int)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert [t["refId"] for t in panel["targets"]], panel["title"]


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_every_alert_rule_uses_defined_metrics_and_says_what_to_do(rule):
    assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
    assert re.fullmatch(r"[A-Z][A-Za-z]+", rule["alert"])
    used = used_metrics(rule["expr"])
    assert used and all(defined(name) for name in used), used
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    if "for" in rule:
        assert re.fullmatch(r"\d+[smh]", rule["for"])
    assert rule["expr"].count("(") == rule["expr"].count(")")


def test_the_alerts_cover_what_on_call_must_hear_of():
    used = {name for rule in alert_rules() for name in used_metrics(rule["expr"])}
    for metric in (
        "deployd_revocation_list_age_seconds",
        "deployd_store_errors_total",
        "deployd_release_halted",
        "deployd_http_requests_total",
    ):
        assert metric in used, metric


def test_an_undefined_metric_is_caught():
    assert not defined("deployd_no_such_metric_total")
    assert defined("deployd_http_request_duration_seconds_bucket")
    assert defined("deployd_store_errors_total")
