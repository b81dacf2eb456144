"""deploy/prometheus: promtool accepts the scrape config and the alert rules, the rules'
unit tests pass, and every alert reads only metrics the app exports."""

from __future__ import annotations

from typing import Any

from tests.deploy.tools import (
    PROMETHEUS_DIR,
    PROMETHEUS_SERIES,
    TARGET_LABELS,
    exported_labels,
    exported_series,
    label_names,
    load_yaml,
    metric_names,
    promtool,
)

ALERTS = {
    "DialerAbandonRateHigh",
    "DialerCampaignStuckStopping",
    "DialerCampaignNotDispatching",
    "DialerPauseSlow",
    "DialerTargetDown",
    "DialerChannelDown",
    "DialerMailboxUnreachable",
}


def alert_rules() -> list[dict[str, Any]]:
    doc = load_yaml(PROMETHEUS_DIR / "alerts.yml")
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_promtool_check_config() -> None:
    out = promtool("check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert "SUCCESS" in out and "WARNING" not in out, out


def test_promtool_check_rules() -> None:
    out = promtool("check", "rules", str(PROMETHEUS_DIR / "alerts.yml"))
    assert f"SUCCESS: {len(ALERTS)} rules found" in out, out


def test_promtool_test_rules() -> None:
    out = promtool("test", "rules", str(PROMETHEUS_DIR / "alerts_test.yml"))
    assert "SUCCESS" in out, out


def test_the_required_alerts_exist_and_each_has_unit_tests() -> None:
    rules = alert_rules()
    assert {r["alert"] for r in rules} == ALERTS
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule
        assert {"summary", "description"} <= set(rule["annotations"]), rule
    tests = load_yaml(PROMETHEUS_DIR / "alerts_test.yml")["tests"]
    assert tests, "alerts_test.yml has no tests"
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    for alert in ALERTS:
        mine = [c for c in cases if c["alertname"] == alert]
        assert any(c["exp_alerts"] for c in mine), f"{alert}: no case where it fires"
        assert any(not c["exp_alerts"] for c in mine), f"{alert}: no case where it stays quiet"


def test_alerts_read_only_exported_metrics_and_labels() -> None:
    series = exported_series()
    labels = set().union(*exported_labels().values()) | TARGET_LABELS
    for rule in alert_rules():
        expr = str(rule["expr"])
        unknown = metric_names(expr) - set(series) - PROMETHEUS_SERIES
        assert not unknown, f"{rule['alert']} reads metrics the app does not export: {unknown}"
        unknown_labels = label_names(expr) - labels
        assert not unknown_labels, f"{rule['alert']} uses unknown labels: {unknown_labels}"


def test_scrape_config_reads_the_rules_and_lists_one_target_per_process() -> None:
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    assert config["rule_files"] == ["alerts.yml"]
    assert config["global"]["scrape_interval"] == "15s"
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    serve = jobs["dialer-serve"]
    assert serve["metrics_path"] == "/metrics"
    for sd in serve["file_sd_configs"]:
        for name in sd["files"]:
            groups = load_yaml(PROMETHEUS_DIR / name)
            targets = [t for g in groups for t in g["targets"]]
            assert targets == ["127.0.0.1:8080"], targets  # DIALER_PORT's default
            assert len(set(targets)) == len(targets)
    # Workers: their own metrics port each (dialer-worker@N listens on 910N).
    worker = jobs["dialer-worker"]
    assert worker["metrics_path"] == "/metrics"
    for sd in worker["file_sd_configs"]:
        for name in sd["files"]:
            groups = load_yaml(PROMETHEUS_DIR / name)
            targets = [t for g in groups for t in g["targets"]]
            assert targets == ["127.0.0.1:9101", "127.0.0.1:9102"], targets
            assert all(g["labels"] == {"role": "worker"} for g in groups)
    assert set(jobs) == {"dialer-serve", "dialer-worker"}
