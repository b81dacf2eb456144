"""deploy/grafana: provisioning with a fixed datasource uid, and a dashboard whose every panel
uses it, whose every query reads metrics the app exports, and whose every PromQL parses."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.deploy.tools import (
    GRAFANA_DIR,
    PROMETHEUS_SERIES,
    TARGET_LABELS,
    check_rules_parse,
    exported_labels,
    exported_series,
    label_names,
    load_yaml,
    metric_names,
)

DASHBOARD = GRAFANA_DIR / "dashboards" / "dialer.json"
# Grafana's variables, replaced by concrete values before promtool parses a query.
VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
    "$campaign": ".*",
}
LABEL_VALUES = re.compile(r"^label_values\(\s*([A-Za-z_:][\w:]*)\s*,\s*(\w+)\s*\)$")


def datasource_uid() -> str:
    doc = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml")
    (source,) = doc["datasources"]
    assert source["type"] == "prometheus"
    assert source["uid"] == "dialer-prometheus"
    return str(source["uid"])


def dashboard() -> dict[str, Any]:
    doc = json.loads(DASHBOARD.read_text())
    assert isinstance(doc, dict)
    return doc


def panels(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows' nested panels included; rows themselves are layout only."""
    out = []
    for panel in doc["panels"]:
        out.extend(panels(panel) if panel.get("panels") else [])
        if panel["type"] != "row":
            out.append(panel)
    return out


def queries(doc: dict[str, Any]) -> dict[str, str]:
    """Recording-rule name -> PromQL of every panel target."""
    out = {}
    for panel in panels(doc):
        for target in panel["targets"]:
            out[f"dashboard:panel_{panel['id']}_{target['refId']}"] = target["expr"]
    return out


def concrete(expr: str) -> str:
    for variable, value in VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a Grafana variable is left in {expr!r}"
    return expr


def test_provisioning_files() -> None:
    uid = datasource_uid()
    assert uid
    doc = load_yaml(GRAFANA_DIR / "provisioning" / "dashboards" / "dialer.yml")
    (provider,) = doc["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] in {
        "/var/lib/grafana/dashboards/dialer",
        "/etc/dialer/dashboards",
    }


def test_dashboard_is_json_with_unique_ids_and_a_stable_uid() -> None:
    doc = dashboard()
    assert doc["uid"] == "dialer-overview"
    assert doc["title"]
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels(doc):
        assert panel["title"] and panel["targets"], panel


def test_every_panel_and_variable_uses_the_provisioned_datasource() -> None:
    uid = datasource_uid()
    doc = dashboard()
    for panel in panels(doc):
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid, (panel["title"], target)
    for variable in doc["templating"]["list"]:
        assert variable["datasource"]["uid"] == uid, variable["name"]


def test_campaign_variable_lists_campaigns_from_the_state_gauge() -> None:
    (variable,) = [v for v in dashboard()["templating"]["list"] if v["name"] == "campaign"]
    query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
    assert query == "label_values(dialer_campaign_state, campaign)"
    match = LABEL_VALUES.match(query)
    assert match is not None
    metric, label = match.groups()
    assert label in exported_labels()[metric]
    assert variable["includeAll"] and variable["multi"]


def test_every_query_reads_only_metrics_and_labels_the_app_exports() -> None:
    series = exported_series()
    labels = set().union(*exported_labels().values()) | TARGET_LABELS
    for name, expr in queries(dashboard()).items():
        assert metric_names(expr), f"{name}: no metric found in {expr!r}"
        unknown = metric_names(expr) - set(series) - PROMETHEUS_SERIES
        assert not unknown, f"{name} queries metrics the app does not export: {unknown}"
        unknown_labels = label_names(expr) - labels
        assert not unknown_labels, f"{name} uses labels the app does not export: {unknown_labels}"


def test_every_metric_the_app_exports_has_a_panel() -> None:
    series = exported_series()
    used = {
        series[m] for e in queries(dashboard()).values() for m in metric_names(e) if m in series
    }
    assert used == set(series.values())


def test_every_query_parses(tmp_path: Path) -> None:
    exprs = {name: concrete(expr) for name, expr in queries(dashboard()).items()}
    out = check_rules_parse(exprs, tmp_path)
    assert f"SUCCESS: {len(exprs)} rules found" in out, out


def test_metric_name_extraction() -> None:
    """The parser the checks above rely on: functions, keywords and labels are not names."""
    expr = (
        'histogram_quantile(0.95, sum by (campaign, le) (rate(x_bucket{campaign=~"$c"}[5m])))'
        ' / on (campaign) group_left() y:z and up{job="a"} == bool 1 offset 5m unless w'
    )
    assert metric_names(expr) == {"x_bucket", "y:z", "up", "w"}
    assert label_names(expr) == {"campaign", "le", "job"}
