"""deploy/observability: the dashboard and alerts use real metric names; the rules are valid.

The names come from the metrics modules themselves (an empty scrape of ``WorkerMetrics``
and ``ApiMetrics``: every family is declared there, labelled ones included), so a renamed
metric fails here. ``promtool check rules`` and ``promtool test rules`` run where promtool is
installed: `make test` installs it into .tools/test-bin from Debian's ``prometheus`` package
(scripts/install-test-tools); the YAML structure is checked everywhere.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from api.metrics import ApiMetrics
from consumer.metrics import WorkerMetrics

ROOT = Path(__file__).resolve().parents[2]
OBS = ROOT / "deploy" / "observability"
DASHBOARD = OBS / "grafana" / "dashboards" / "vehicle-anomaly.json"
ALERTS = OBS / "alerts.yml"
OUR_PREFIXES = ("anomaly_worker_", "vehicle_anomaly_api_", "faststream_")
NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
    "info": ("_info",),
    "summary": ("_sum", "_count", "_created", ""),
}


def yaml(path: Path) -> Any:
    return YAML(typ="safe", pure=True).load(path.read_text())


def exposed_names() -> set[str]:
    """Every sample name the two services can expose, from their ``# TYPE`` lines."""
    names: set[str] = set()
    text = WorkerMetrics().render().decode() + ApiMetrics(process_metrics=False).render().decode()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(" ", 3)
            # the text format names a counter family with its _total, an info family without
            base = family.removesuffix("_total") if kind == "counter" else family
            names |= {base + suffix for suffix in SUFFIXES.get(kind, ("",))}
    return names


def referenced(expr: str) -> set[str]:
    return {n for n in NAME.findall(expr) if n.startswith(OUR_PREFIXES)}


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml(ALERTS)["groups"] for rule in group["rules"]]


def test_the_worker_exposes_the_documented_metrics() -> None:
    """WorkerMetrics and ApiMetrics together expose each listed worker and api metric family."""
    names = exposed_names()
    for name in (
        "anomaly_worker_records_consumed_total",
        "anomaly_worker_verdicts_published_total",
        "anomaly_worker_dead_letters_total",
        "anomaly_worker_batch_size_records_bucket",
        "anomaly_worker_scoring_duration_seconds_bucket",
        "anomaly_worker_end_to_end_latency_seconds_bucket",
        "anomaly_worker_anomaly_score_bucket",
        "anomaly_worker_model_info",
        "anomaly_worker_model_age_seconds",
        "anomaly_worker_model_reloads_total",
        "anomaly_worker_model_reload_failures_total",
        "anomaly_worker_consumer_lag_records",
        "anomaly_worker_alert_episodes_open",
        "anomaly_worker_alert_episodes_opened_total",
        "anomaly_worker_alert_episodes_closed_total",
        "anomaly_worker_alert_episode_seconds_bucket",
        "vehicle_anomaly_api_http_requests_total",
        "vehicle_anomaly_api_http_request_duration_seconds_bucket",
        "vehicle_anomaly_api_training_duration_seconds_bucket",
        "vehicle_anomaly_api_training_records_bucket",
    ):
        assert name in names, name


def test_dashboard_parses_and_uses_only_existing_metrics() -> None:
    """The dashboard parses, its panel ids are unique, and it queries only metrics we expose."""
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["panels"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    exprs = dashboard_exprs()
    assert exprs
    names = exposed_names()
    used: set[str] = set()
    for expr in exprs:
        used |= referenced(expr)
        assert referenced(expr), f"panel expression uses none of the services' metrics: {expr}"
    assert used <= names, used - names
    # every worker metric family the brief lists has a panel
    assert {
        "anomaly_worker_consumer_lag_records",
        "anomaly_worker_dead_letters_total",
        "anomaly_worker_end_to_end_latency_seconds_bucket",
        "anomaly_worker_model_info",
        "anomaly_worker_alert_episodes_open",
        "vehicle_anomaly_api_http_requests_total",
    } <= used


def test_alert_rules_are_valid_and_use_only_existing_metrics() -> None:
    """The seven alert rules have known keys, a severity, a summary, and use only exposed metrics."""
    rules = alert_rules()
    names = exposed_names()
    alerts = {rule["alert"] for rule in rules}
    assert alerts == {
        "AnomalyWorkerLagGrowing",
        "AnomalyWorkerDeadLetterRate",
        "AnomalyRateFarFromContamination",
        "AnomalyModelStale",
        "AnomalyModelReloadFailures",
        "AnomalyFeatureDrift",
        "AnomalyAlertEpisodesOpen",
    }
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}
        assert rule["annotations"]["summary"]
        used = referenced(rule["expr"])
        assert used, rule["alert"]
        assert used <= names, (rule["alert"], used - names)


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool is not installed (make test installs it)"
)
def test_promtool_accepts_the_rules_and_the_scrape_config() -> None:
    """promtool check rules accepts the alert rules file and finds its seven rules."""
    result = subprocess.run(
        ["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout + result.stderr


def test_prometheus_scrapes_both_services_as_compose_names_them() -> None:
    """Prometheus scrapes api:8000 and worker:8001 with the rules mounted, the stack a profile."""
    compose = yaml(ROOT / "compose.yaml")
    config = yaml(OBS / "prometheus.yml")
    targets = {
        job["job_name"]: target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    assert targets == {"anomaly-api": "api:8000", "anomaly-worker": "worker:8001"}
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    services = compose["services"]
    prometheus = services["prometheus"]
    assert (
        "./deploy/observability/alerts.yml:/etc/prometheus/alerts.yml:ro" in prometheus["volumes"]
    )
    for name in ("otel-collector", "jaeger", "prometheus", "grafana"):
        assert services[name]["profiles"] == ["observability"], name
    for name in ("api", "worker"):
        assert "OTEL_EXPORTER_OTLP_ENDPOINT" in services[name]["environment"]
        assert "profiles" not in services[name]
    collector = yaml(OBS / "otel-collector.yaml")
    pipeline = collector["service"]["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"]
    assert collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    grafana_sources = yaml(OBS / "grafana" / "provisioning" / "datasources" / "datasources.yaml")
    assert {s["uid"] for s in grafana_sources["datasources"]} == {"prometheus", "jaeger"}
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "prometheus"


DRIFT_RULE_TEST = """
rule_files:
  - {alerts}
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'anomaly_worker_drift_psi{{feature="oil_pressure", instance="w1"}}'
        values: '0.6x30'
      - series: 'anomaly_worker_drift_psi{{feature="speed", instance="w1"}}'
        values: '0.02x30'
      - series: 'anomaly_worker_drift_psi_threshold{{instance="w1"}}'
        values: '0.25x30'
    alert_rule_test:
      - eval_time: 10m
        alertname: AnomalyFeatureDrift
        exp_alerts: []
      - eval_time: 20m
        alertname: AnomalyFeatureDrift
        exp_alerts:
          - exp_labels:
              severity: warning
              feature: oil_pressure
            exp_annotations:
              summary: "Telemetry feature oil_pressure drifted (PSI 0.60)"
              description: "{description}"
"""


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool is not installed (make test installs it)"
)
def test_drift_alert_fires_for_the_drifted_feature_only(tmp_path: Path) -> None:
    """A feature above the threshold for 15 minutes alerts; one below it does not."""
    spec = tmp_path / "drift-test.yml"
    (rule,) = [r for r in alert_rules() if r["alert"] == "AnomalyFeatureDrift"]
    description = rule["annotations"]["description"].strip().replace('"', '\\"')
    spec.write_text(DRIFT_RULE_TEST.format(alerts=ALERTS, description=description))
    result = subprocess.run(
        ["promtool", "test", "rules", str(spec)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
