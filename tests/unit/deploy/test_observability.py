"""The Grafana dashboard and Prometheus rules: well-formed PromQL, the required
coverage, and the metric names they reference (listed in docs/operations.md)."""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import promql_parser
import pytest
import yaml

from tests.unit.deploy.conftest import ROOT

DASHBOARD = ROOT / "deploy" / "grafana" / "logriver-overview.json"
RULES = ROOT / "deploy" / "prometheus" / "logriver-rules.yaml"
OPERATIONS = ROOT / "docs" / "operations.md"
METRIC = re.compile(r"\blogriver_[a-z0-9_]+\b")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

# What the issue asks the dashboard and the rules to cover, by metric.
COVERAGE = {
    "ingest rate": "logriver_ingest_events_accepted_total",
    "rejects": "logriver_ingest_events_rejected_total",
    "consumer lag": "logriver_writer_consumer_lag",
    "write latency": "logriver_writer_write_seconds",
    "DLQ growth": "logriver_writer_dlq_records_total",
    "live-tail subscribers": "logriver_stream_subscribers",
    "live-tail drops": "logriver_stream_events_dropped_total",
    "notification failures": "logriver_alerter_notifications_total",
}
# Gauges worth a panel but not an alert on their own.
DASHBOARD_ONLY = {"live-tail subscribers"}


@cache
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


@cache
def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    return [
        target["expr"] for panel in dashboard()["panels"] for target in panel.get("targets", [])
    ]


def rule_exprs() -> list[str]:
    return [str(rule["expr"]) for rule in rules()]


def base_name(name: str) -> str:
    """A histogram's series (``x_bucket``) belong to the metric ``x``."""
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def referenced(exprs: list[str]) -> set[str]:
    return {base_name(m) for expr in exprs for m in METRIC.findall(expr)}


def _parse(expr: str) -> promql_parser.Expr:
    # Grafana's interval variable is not PromQL; it becomes a duration at query time.
    return promql_parser.parse(expr.replace("$__rate_interval", "5m"))


@pytest.mark.parametrize("source", ["dashboard", "rules"])
def test_every_expression_is_valid_promql(source: str) -> None:
    exprs = dashboard_exprs() if source == "dashboard" else rule_exprs()
    assert exprs
    for expr in exprs:
        _parse(expr)  # raises ValueError on a syntax error
        for name in METRIC.findall(expr):
            if name.endswith("_bucket"):
                assert "histogram_quantile" in expr, f"bare buckets: {expr}"
        for func in re.findall(r"\b(?:rate|increase)\(\s*(logriver_[a-z0-9_]+)", expr):
            assert func.endswith(("_total", "_bucket")), f"rate() of a non-counter: {expr}"


def test_the_parser_rejects_bad_promql() -> None:
    with pytest.raises(ValueError, match="parenthesis"):
        _parse("sum(rate(logriver_ingest_events_accepted_total[5m])")


def test_dashboard_is_importable_and_uses_the_datasource_variable() -> None:
    data = dashboard()
    assert data["uid"] == "logriver-overview"
    assert data["schemaVersion"] >= 36
    (variable,) = data["templating"]["list"]
    assert variable["type"] == "datasource"
    assert variable["query"] == "prometheus"
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids))
    for panel in data["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0
        assert grid["x"] + grid["w"] <= 24
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


def test_rules_are_complete_alerts() -> None:
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names))
    for rule in rules():
        assert re.fullmatch(r"Logriver[A-Za-z]+", rule["alert"])
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert rule["annotations"]["description"], rule["alert"]


@pytest.mark.parametrize("topic", sorted(COVERAGE))
def test_dashboard_and_rules_cover(topic: str) -> None:
    metric = COVERAGE[topic]
    assert metric in referenced(dashboard_exprs()), f"no panel for {topic}"
    if topic not in DASHBOARD_ONLY:
        assert metric in referenced(rule_exprs()), f"no alert for {topic}"


def _documented() -> set[str]:
    text = OPERATIONS.read_text()
    match = re.search(r"<!-- metrics:start -->(.*?)<!-- metrics:end -->", text, re.S)
    assert match, "docs/operations.md has no metrics list"
    return set(re.findall(r"`(logriver_[a-z0-9_]+)`", match.group(1)))


def test_the_metric_list_in_the_docs_is_exactly_what_is_referenced() -> None:
    """docs/operations.md lists every metric the dashboard and rules use, so a
    check against the running services' /metrics can compare the two."""
    used = referenced(dashboard_exprs()) | referenced(rule_exprs())
    assert _documented() == used


def test_every_referenced_metric_is_defined_by_a_service() -> None:
    """Each name is declared in the services' or libraries' source today."""
    sources = [*ROOT.glob("services/*/src/**/*.py"), *ROOT.glob("libs/*/src/**/*.py")]
    defined = {
        name
        for path in sources
        for name in re.findall(r"[\"'](logriver_[a-z0-9_]+)[\"']", path.read_text())
    }
    used = referenced(dashboard_exprs()) | referenced(rule_exprs())
    assert not used - defined, f"not defined by any service: {sorted(used - defined)}"
