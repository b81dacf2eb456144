"""Shared by the deploy tests: where the kit lives, the external tools, the app's metrics."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from dialer.metrics.registry import Metrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
GRAFANA_DIR = DEPLOY / "grafana"

# Series Prometheus makes itself for every target (not app metrics).
PROMETHEUS_SERIES = {"up"}
# Sample names each metric type exposes (prometheus_client adds `_created` too).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
}


def tool(name: str) -> str:
    """The tool's path; a clear failure (never a skip) when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"`{name}` is not installed: `make setup` (scripts/services.sh) installs Debian's "
            "prometheus package, which provides promtool and prometheus"
        )
    return path


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def promtool(*args: str) -> str:
    """Run promtool; its output, after asserting it succeeded."""
    result = run(tool("promtool"), *args)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def exported_series() -> dict[str, str]:
    """Every sample name the app can expose -> its metric family, from the registry."""
    names: dict[str, str] = {}
    for family in Metrics().registry.collect():
        for suffix in SUFFIXES[family.type]:
            names[family.name + suffix] = family.name
    return names


def exported_labels() -> dict[str, set[str]]:
    """Label names of each family (histograms add `le`), after filling every metric once."""
    m = Metrics()
    m.set_campaign_state("c", "running")
    m.set_agent_counts({})
    for counter, values in (
        (m.calls_dialed, ("c",)),
        (m.calls_received, ("c",)),
        (m.calls_answered, ("c", "human")),
        (m.calls_abandoned, ("c",)),
        (m.emails_sent, ("c", "sent")),
        (m.dispatch, ("voice", "ok")),
    ):
        counter.labels(*values).inc()
    m.call_duration.labels("c").observe(1)
    m.pause_duration.observe(0.01)
    m.imap_connected.labels("INBOX").set(1)  # only a process with a watcher has it
    labels: dict[str, set[str]] = {}
    for family in m.registry.collect():
        for sample in family.samples:
            labels.setdefault(family.name, set()).update(sample.labels)
    return labels


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", re.IGNORECASE
)
_IDENT = re.compile(r"(?<![\w:.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
KEYWORDS |= {"group_left", "group_right", "inf", "nan", "atan2"}


def metric_names(expr: str) -> set[str]:
    """Metric names an expression reads: identifiers minus functions (followed by `(`),
    keywords, label names (in matchers and grouping clauses) and strings."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in KEYWORDS:
            continue
        names.add(name)
    return names


def grouping_labels(expr: str) -> set[str]:
    """Label names of `by (...)`, `on (...)` and the like."""
    out: set[str] = set()
    for match in _GROUPING.finditer(_STRING.sub('""', expr)):
        out.update(x.strip() for x in match.group(2).split(",") if x.strip())
    return out


def check_rules_parse(exprs: dict[str, str], directory: Path) -> str:
    """Write the expressions as recording rules and have `promtool check rules` parse them."""
    rules = [{"record": name, "expr": expr} for name, expr in exprs.items()]
    path = directory / "exprs.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "exprs", "rules": rules}]}))
    return promtool("check", "rules", str(path))


_MATCHER_LABEL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
# Labels Prometheus adds to every scraped series (job, instance) or our targets carry (role).
TARGET_LABELS = {"job", "instance", "role"}


def label_names(expr: str) -> set[str]:
    """Label names an expression matches on or groups by."""
    out = grouping_labels(expr)
    for block in _MATCHERS.findall(_STRING.sub('""', expr)):
        out.update(_MATCHER_LABEL.findall(block))
    return out
