"""deploy/: the Grafana dashboard and Prometheus alert rules parse and use only metrics the code exports."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
# Every module that defines metrics; importing them registers their families.
METRIC_MODULES = (
    "shared.observability.http_metrics",
    "shared.cache.answers",
    "shared.ratelimit.decisions",
    "command_api.metrics",
    "relay.ops",
    "projectors.ops",
)
METRIC_NAME = re.compile(r"\bcqrs_[a-z0-9_]+")
# The series each kind of family exposes, by suffix (prometheus_client's text format).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
}


def exported_series() -> set[str]:
    for module in METRIC_MODULES:
        importlib.import_module(module)
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return names


def dashboard_expressions() -> Iterator[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "cqrs-platform.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            yield target["expr"]


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_the_dashboard_parses_and_every_panel_queries_something() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "cqrs-platform.json").read_text())
    assert dashboard["uid"] == "cqrs-platform"
    assert dashboard["panels"]
    assert all(panel["targets"] and panel["title"] for panel in dashboard["panels"])
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])


def test_the_alert_rules_parse_and_each_has_what_an_on_call_needs() -> None:
    rules = alert_rules()
    names = {rule["alert"] for rule in rules}
    # The ones the observability issue asks for, at least.
    assert {"ProjectionLagging", "DeadLettersParked", "HighServerErrorRate", "OutboxStale"} <= names
    assert any("cqrs_rate_limit_decisions_total" in rule["expr"] for rule in rules)
    for rule in rules:
        assert rule["expr"].strip()
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["description"]


@pytest.mark.parametrize("source", ["dashboard", "alerts"])
def test_only_metrics_the_code_exports_are_used(source: str) -> None:
    if source == "dashboard":
        expressions = list(dashboard_expressions())
    else:
        expressions = [rule["expr"] for rule in alert_rules()]
    used = {name for expression in expressions for name in METRIC_NAME.findall(expression)}
    assert used
    assert used - exported_series() == set()
