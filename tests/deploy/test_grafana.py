"""The Grafana dashboard asks only for what the daemon really exports.

Every PromQL expression in deploy/grafana/dashboards/monitor.json (panel targets and template
variables) is taken apart: each metric name must be a series the daemon serves on /metrics
(read from a real HealthServer over HTTP, with every labelled metric touched so that its
series exist), and each label it selects on, groups by or prints in a legend must be one that
series carries, or one Prometheus adds to every target (job, instance). The provisioning files
must parse and point at the data source and the folder that deploy/docker-compose.yml wires up.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from ruamel.yaml import YAML

from monitor.config.settings import MetricsSettings
from monitor.health import HealthServer
from monitor.metrics import Metrics, PollOutcome
from monitor.model import FeedState

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "monitor.json"
COMPOSE = ROOT / "deploy" / "docker-compose.yml"

TARGET_LABELS = {"job", "instance"}  # added by Prometheus to every scraped series
# Series Prometheus itself writes for every target (labels: job, instance).
SCRAPE_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped",
                 "scrape_samples_post_metric_relabeling", "scrape_series_added"}
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}

FUNCTIONS = {
    "abs", "absent", "absent_over_time", "avg_over_time", "ceil", "changes", "clamp",
    "clamp_max", "clamp_min", "count_over_time", "day_of_month", "day_of_week", "delta",
    "deriv", "exp", "floor", "histogram_avg", "histogram_count", "histogram_fraction",
    "histogram_quantile", "histogram_sum", "hour", "idelta", "increase", "irate",
    "label_join", "label_replace", "last_over_time", "ln", "log2", "log10", "max_over_time",
    "min_over_time", "minute", "month", "predict_linear", "present_over_time",
    "quantile_over_time", "rate", "resets", "round", "scalar", "sgn", "sort", "sort_desc",
    "sqrt", "stddev_over_time", "sum_over_time", "time", "timestamp", "vector", "year",
    # aggregations
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile",
}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
            "unless", "offset", "inf", "nan"}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_SELECTOR = re.compile(r"([A-Za-z_:][\w:]*)?\s*\{([^}]*)\}")
_MATCHER = re.compile(r"\s*([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*\"\"\s*")
_IDENT = re.compile(r"[A-Za-z_:][\w:]*")
_LEGEND = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}")


# --------------------------------------------------------------------------- what is exported
def _touch_every_labelled_metric(metrics: Metrics) -> None:
    """Give every labelled metric one series, so /metrics shows its samples and labels: the
    feed fails while a poll of it is in flight, so it is listed in either per-feed mode."""
    state = FeedState("ria-world", consecutive_failures=1, last_success_at=1.0,
                      next_check_at=2.0)
    metrics.init_feed("ria-world", 300, state)
    metrics.feeds.record_poll(PollOutcome.FETCH_ERROR, state)
    metrics.feeds.poll_started("ria-world", 300, 3.0)
    metrics.init_receiver("desk")
    for metric in vars(metrics).values():
        labelnames = getattr(metric, "_labelnames", ())  # prometheus_client's label names
        if labelnames:
            metric.labels(*["x"] * len(labelnames))


def _served(per_feed: str) -> str:
    registry = CollectorRegistry()
    metrics = Metrics(registry, MetricsSettings(per_feed=per_feed))  # type: ignore[arg-type]
    _touch_every_labelled_metric(metrics)
    server = HealthServer("127.0.0.1", 0, registry)
    server.add_check("scheduler", lambda: True)
    server.start()
    try:
        return httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=10).text
    finally:
        server.stop()


@pytest.fixture(scope="module")
def exported() -> dict[str, set[str]]:
    """Sample name -> label names, as a real /metrics endpoint serves them in either per-feed
    mode (the counters carry a feed label only with per_feed=all: see the $feed test)."""
    series: dict[str, set[str]] = {}
    for per_feed in ("all", "unhealthy"):
        for family in text_string_to_metric_families(_served(per_feed)):
            for sample in family.samples:
                series.setdefault(sample.name, set()).update(sample.labels)
    # And what the registry itself describes (same names; guards against a served subset).
    for family in Metrics(CollectorRegistry()).registry.collect():
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    return series


# --------------------------------------------------------------------------- what is asked
def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def _queries(dashboard: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(where, PromQL, legend) for every panel target."""
    found = []
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            found.append((f"panel {panel['title']!r} {target['refId']}", target["expr"],
                          target.get("legendFormat", "")))
    return found


def _variable_queries(dashboard: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(where, selector PromQL, label) for every label_values(...) template variable."""
    found = []
    for variable in dashboard["templating"]["list"]:
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else query
        match = re.fullmatch(r"\s*label_values\((.*),\s*([A-Za-z_]\w*)\s*\)\s*", text)
        assert match, f"variable {variable['name']}: not a label_values() query: {text}"
        found.append((f"variable {variable['name']}", match[1], match[2]))
    return found


def analyse(expr: str) -> tuple[set[str], list[tuple[str | None, str]], set[str]]:
    """(metric names, (metric or None, matcher label) pairs, grouping labels) of a query."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    text = _STRING.sub('""', expr)
    grouping: set[str] = set()
    for match in _GROUPING.finditer(text):
        grouping.update(label.strip() for label in match[2].split(",") if label.strip())
    text = _GROUPING.sub(" ", text)
    matchers: list[tuple[str | None, str]] = []
    for match in _SELECTOR.finditer(text):
        for part in filter(str.strip, match[2].split(",")):
            pair = _MATCHER.fullmatch(part)
            assert pair, f"cannot read label matcher {part!r} in {expr}"
            matchers.append((match[1], pair[1]))
    text = _SELECTOR.sub(lambda m: f" {m[1] or ''} ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)                 # ranges and subqueries
    text = re.sub(r"\boffset\s+\w+", " ", text)
    text = re.sub(r"(?<![\w:])\d+(\.\d+)?([eE][+-]?\d+)?", " ", text)
    names = set()
    for match in _IDENT.finditer(text):
        word = match[0]
        follows = text[match.end():].lstrip()[:1]
        if follows == "(":
            assert word in FUNCTIONS, f"unknown PromQL function {word!r} in {expr}"
        elif word.lower() not in KEYWORDS:
            names.add(word)
    return names, matchers, grouping


def test_the_analyser_reads_selectors_groupings_and_functions() -> None:
    names, matchers, grouping = analyse(
        'histogram_quantile(0.95, sum by (feed, le) (rate(monitor_x_bucket{job=~"$job", '
        'feed=~"a|b"}[$__rate_interval]))) / on (feed) group_left up offset 5m')
    assert names == {"monitor_x_bucket", "up"}
    assert matchers == [("monitor_x_bucket", "job"), ("monitor_x_bucket", "feed")]
    assert grouping == {"feed", "le"}


def _check_query(where: str, expr: str, legend: str, exported: dict[str, set[str]]) -> list[str]:
    problems = []
    names, matchers, grouping = analyse(expr)
    if not names:
        problems.append(f"{where}: no metric in {expr}")
    known = {**exported, **{name: set() for name in SCRAPE_SERIES}}
    labels = set(TARGET_LABELS)
    for name in names:
        if name not in known:
            problems.append(f"{where}: {name} is not exported by the daemon")
        else:
            labels |= known[name]
    for metric, label in matchers:
        allowed = TARGET_LABELS | known.get(metric, set()) if metric else labels
        if label not in allowed:
            problems.append(f"{where}: {metric or 'selector'} has no label {label!r}")
    for label in grouping | set(_LEGEND.findall(legend)):
        if label not in labels:
            problems.append(f"{where}: label {label!r} is on none of {sorted(names)}")
    return problems


def test_every_query_uses_only_exported_metrics_and_their_labels(dashboard, exported) -> None:
    problems = []
    for where, expr, legend in _queries(dashboard):
        problems += _check_query(where, expr, legend, exported)
    for where, selector, label in _variable_queries(dashboard):
        problems += _check_query(where, selector, "{{" + label + "}}", exported)
    assert not problems, "\n".join(problems)


def test_the_feed_filter_keeps_the_counters_summed_over_feeds(dashboard) -> None:
    """With per_feed=unhealthy the poll counters have no feed label: `feed=~"$feed"` must still
    match them when every feed is selected, so "All" has to match the empty string."""
    [variable] = [v for v in dashboard["templating"]["list"] if v["name"] == "feed"]
    assert re.fullmatch(variable["allValue"], "")
    assert "monitor_feed_consecutive_failures" in variable["query"]["query"]


def test_the_dashboard_covers_what_ops_watch(dashboard) -> None:
    used = set()
    for _, expr, _ in _queries(dashboard):
        used |= analyse(expr)[0]
    wanted = {
        "monitor_feed_last_success_timestamp_seconds", "monitor_feed_consecutive_failures",
        "monitor_feed_polls_total", "monitor_feed_next_poll_timestamp_seconds",
        "monitor_items_published_total", "monitor_claim_matches_total", "monitor_alerts_total",
        "monitor_dead_letters_total", "monitor_alert_outbox_size",
        "monitor_alert_oldest_pending_age_seconds", "monitor_consumer_lag",
        "monitor_feed_poll_duration_seconds_bucket", "monitor_match_duration_seconds_bucket",
        "monitor_feeds_by_health", "monitor_polls_in_flight",
        "monitor_feed_poll_started_timestamp_seconds", "monitor_feed_interval_seconds",
        "monitor_alert_delivery_duration_seconds_bucket", "monitor_build_info", "up",
    }
    assert wanted <= used, f"not on the dashboard: {sorted(wanted - used)}"


def test_feed_health_comes_first(dashboard) -> None:
    first = dashboard["panels"][0]
    assert first["type"] == "row" and first["title"].lower().startswith("feed health")
    ordered = sorted(dashboard["panels"], key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"]))
    assert ordered[0] is first
    second_row = next(p for p in ordered[1:] if p["type"] == "row")
    before = [p for p in ordered if p["gridPos"]["y"] < second_row["gridPos"]["y"]][1:]
    feed_exprs = " ".join(t["expr"] for p in before for t in p.get("targets", []))
    assert "monitor_feed_consecutive_failures" in feed_exprs
    assert "monitor_feed_last_success_timestamp_seconds" in feed_exprs


def test_process_resources_are_shown_once_the_daemon_exports_them(dashboard, exported) -> None:
    used = set()
    for _, expr, _ in _queries(dashboard):
        used |= analyse(expr)[0]
    if "process_resident_memory_bytes" in exported:
        assert {"process_resident_memory_bytes", "process_cpu_seconds_total"} <= used, (
            "the daemon now exports process_* metrics: give them panels")
    else:
        notes = [p for p in _panels(dashboard) if p["type"] == "text"]
        assert any("ProcessCollector" in p["options"]["content"] for p in notes)


def test_panels_are_well_formed(dashboard) -> None:
    ids = [p["id"] for p in _panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    assert dashboard["uid"] and dashboard["schemaVersion"] >= 36
    for panel in _panels(dashboard):
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys(), panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        refs = [t["refId"] for t in panel.get("targets", [])]
        assert len(refs) == len(set(refs)), panel["title"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_every_query_is_valid_promql(dashboard, tmp_path) -> None:
    """promtool parses each expression as a recording rule (Grafana variables filled in)."""
    rules = []
    for index, (_, expr, _) in enumerate(_queries(dashboard)):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"dashboard:query_{index}", "expr": expr})
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------- provisioning
def _yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


def _grafana_mounts() -> dict[str, Path]:
    """Container path -> repository path of the Grafana service's bind mounts."""
    grafana = _yaml(COMPOSE)["services"]["grafana"]
    mounts = {}
    for volume in grafana["volumes"]:
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[target] = (COMPOSE.parent / source).resolve()
    return mounts


def _on_host(container_path: str) -> Path:
    for target, source in _grafana_mounts().items():
        if container_path == target or container_path.startswith(target + "/"):
            return source / Path(container_path).relative_to(target)
    raise AssertionError(f"{container_path} is not mounted into the grafana service")


def test_the_datasource_is_the_compose_prometheus_and_the_dashboard_uses_it(dashboard) -> None:
    assert _on_host("/etc/grafana/provisioning") == GRAFANA / "provisioning"
    datasources = _yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
    assert datasources["apiVersion"] == 1
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus"
    url = httpx.URL(source["url"])
    services = _yaml(COMPOSE)["services"]
    assert url.host in services and services[url.host]["image"].startswith("prom/prometheus")
    assert url.port == 9090
    uids = {node["datasource"]["uid"] for node in _walk(dashboard)
            if isinstance(node.get("datasource"), dict)
            and node["datasource"].get("type") == "prometheus"}
    assert uids == {source["uid"]}


def test_the_dashboard_provider_loads_the_dashboards_folder() -> None:
    providers = _yaml(GRAFANA / "provisioning" / "dashboards" / "monitor.yml")
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    folder = _on_host(provider["options"]["path"])
    assert folder == GRAFANA / "dashboards"
    assert (folder / "monitor.json").is_file()
    for path in folder.glob("*.json"):
        json.loads(path.read_text(encoding="utf-8"))
    home = _yaml(COMPOSE)["services"]["grafana"]["environment"][
        "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert _on_host(home) == DASHBOARD
