"""deploy/monitoring/: the alert rules and the Grafana dashboard parse, and name only metrics the project exports.

promtool is not available and no well-kept PromQL parser exists for Python, so each expression is checked by a
small lexer: balanced brackets, known functions and keywords, valid range durations, and every remaining
identifier outside label matchers and grouping clauses must be a series the stage workers export (collected from
prometheus_client's registry after importing the metrics modules). Every alert is explained in
docs/operations.md.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

import leadbus.processors.metrics
import leadbus.processors.report  # noqa: F401 - its metrics register on import

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"

FUNCTIONS = {"abs", "absent", "absent_over_time", "avg_over_time", "ceil", "changes", "clamp", "clamp_max",
             "clamp_min", "count_over_time", "delta", "deriv", "exp", "floor", "histogram_quantile", "idelta",
             "increase", "irate", "label_replace", "last_over_time", "ln", "max_over_time", "min_over_time",
             "predict_linear", "quantile_over_time", "rate", "resets", "round", "scalar", "sort", "sort_desc",
             "sum_over_time", "time", "timestamp", "vector"}
AGGREGATIONS = {"sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values",
                "group"}
KEYWORDS = {"and", "or", "unless", "offset", "bool"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
#: Series Prometheus itself adds to every scrape target.
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def exported_series() -> set[str]:
    names: set[str] = set()
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
                "summary": ("_count", "_sum", "_created"), "gauge": ("",), "info": ("_info",)}
    for family in REGISTRY.collect():
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names


def metric_names(expr: str) -> set[str]:
    """The series an expression selects; raises ValueError on what is not PromQL."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    depth = 0
    for ch in text:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            raise ValueError(f"unbalanced ) in {expr!r}")
    if depth or text.count("{") != text.count("}") or text.count("[") != text.count("]"):
        raise ValueError(f"unbalanced brackets in {expr!r}")
    for duration in re.findall(r"\[([^\]]*)\]", text):
        if not re.fullmatch(r"(\d+(ms|s|m|h|d|w|y))+(:(\d+(ms|s|m|h|d|w|y))*)?", duration):
            raise ValueError(f"bad range {duration!r} in {expr!r}")
    text = re.sub(r"\[[^\]]*\]", "", text)
    for matchers in re.findall(r"\{([^}]*)\}", text):
        for matcher in filter(None, (m.strip() for m in matchers.split(","))):
            if not re.fullmatch(r'[a-zA-Z_]\w*\s*(=~|!~|!=|=)\s*""', matcher):
                raise ValueError(f"bad label matcher {matcher!r} in {expr!r}")
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][\w:]*", text):
        word = match.group()
        before = text[:match.start()].rstrip()
        if before and (before[-1].isdigit() or before[-1] == "."):
            continue  # a number's exponent or unit, e.g. 1e-9
        after = text[match.end():].lstrip()
        if word in FUNCTIONS or word in AGGREGATIONS:
            if not after.startswith("("):
                raise ValueError(f"{word} without its arguments in {expr!r}")
            continue
        if word in KEYWORDS or word in GROUPING:
            continue
        if after.startswith("("):
            raise ValueError(f"unknown function {word} in {expr!r}")
        names.add(word)
    return names


def _rules() -> list[dict]:
    doc = yaml.safe_load((MONITORING / "alerts.yaml").read_text(encoding="utf-8"))
    assert set(doc) == {"groups"}
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    doc = json.loads((MONITORING / "grafana-dashboard.json").read_text(encoding="utf-8"))
    return [target["expr"] for panel in doc["panels"] for target in panel["targets"]]


def test_the_lexer_catches_what_it_should() -> None:
    assert metric_names('sum by (stage) (rate(leadbus_stage_records_total{stage=~"a|b"}[5m])) > 1e-3') == {
        "leadbus_stage_records_total"}
    for bad in ("sum(rate(x[5m])", "rate(x[5 minutes])", "frobnicate(x)", 'x{stage~"a"}'):
        with pytest.raises(ValueError):
            metric_names(bad)


def test_the_rule_files_are_well_formed_prometheus_rules() -> None:
    doc = yaml.safe_load((MONITORING / "alerts.yaml").read_text(encoding="utf-8"))
    names = set()
    for group in doc["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"} and group["name"] and group["rules"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}, rule
            assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", rule["alert"])
            assert rule["alert"] not in names, f"{rule['alert']} declared twice"
            names.add(rule["alert"])
            assert re.fullmatch(r"(\d+(ms|s|m|h|d|w|y))+", rule.get("for", "0m")), rule["for"]
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]
            assert rule["expr"].count("{{") == 0, "templates belong in annotations, not expressions"


def test_every_expression_names_only_metrics_the_project_exports() -> None:
    exported = exported_series() | SYNTHETIC
    exprs = [rule["expr"] for rule in _rules()] + _dashboard_exprs()
    used: set[str] = set()
    for expr in exprs:
        names = metric_names(expr)
        assert names, f"{expr!r} selects no series"
        unknown = names - exported
        assert not unknown, f"{expr!r} names series the project does not export: {sorted(unknown)}"
        used |= names
    # What the issue asks the stages to report is watched by both the rules and the dashboard.
    for wanted in ("leadbus_consumer_lag", "leadbus_stage_latency_seconds_bucket",
                   "leadbus_stage_transaction_seconds_bucket",
                   "leadbus_stage_dead_letter_outputs_total", "leadbus_stage_dead_letters_total",
                   "leadbus_intake_rejected_total", "leadbus_handover_overdue_duties"):
        assert wanted in used


def test_the_dashboard_is_a_grafana_dashboard() -> None:
    doc = json.loads((MONITORING / "grafana-dashboard.json").read_text(encoding="utf-8"))
    assert doc["uid"] and doc["title"] and isinstance(doc["schemaVersion"], int)
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    for panel in doc["panels"]:
        assert panel["type"] in {"timeseries", "stat", "bargauge", "table", "gauge"}
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]) and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        assert panel["targets"] and all(t["refId"] and t["expr"] for t in panel["targets"])


def test_every_alert_is_explained_in_the_operations_guide() -> None:
    guide = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    for rule in _rules():
        assert f"`{rule['alert']}`" in guide, f"docs/operations.md does not explain {rule['alert']}"
