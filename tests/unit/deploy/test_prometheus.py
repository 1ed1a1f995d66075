"""deploy/prometheus: the scrape config finds the gateway pods, the alerts use series
the gateway exports, and promtool (Debian's, from ``scripts/validate_deploy.sh
install``) accepts the rules, passes their unit tests and checks the config.

A missing tool skips locally and fails under ``CI=true``.
"""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gateway.metrics import Metrics
from tests.support.requirements import skip_or_fail

REPO = Path(__file__).resolve().parents[3]
PROMETHEUS = REPO / "deploy" / "prometheus"
SCRAPE = PROMETHEUS / "scrape.yml"
ALERTS = PROMETHEUS / "alerts.yml"
ALERT_TESTS = PROMETHEUS / "alerts.test.yml"
DEPLOYMENT = REPO / "deploy" / "k8s" / "base" / "gateway" / "deployment.yaml"
OPERATIONS = REPO / "docs" / "operations.md"
TOOLS = REPO / "build" / "deploy-tools"

REQUIRED_ALERTS = {
    "ZebraNoPrintersConnected": "10m",
    "ZebraOutcomeFailuresRising": None,
    "ZebraConsumersMissing": "5m",
}


def yaml_module() -> Any:
    """PyYAML, failing under CI and skipping elsewhere if it is not installed."""
    try:
        return importlib.import_module("yaml")
    except ImportError:
        message = "PyYAML is not installed: pip install pyyaml (the dev extra needs it)"
        skip_or_fail(message)


def promtool() -> str:
    """promtool from build/deploy-tools or PATH; skip (fail under CI) if missing."""
    for candidate in (TOOLS / "bin" / "promtool", shutil.which("promtool")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    message = "promtool is not installed: run scripts/validate_deploy.sh install"
    skip_or_fail(message)


def run(*command: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def rules() -> dict[str, dict[str, Any]]:
    document = yaml_module().safe_load(ALERTS.read_text())
    return {
        rule["alert"]: rule
        for group in document["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


@pytest.fixture(scope="module")
def scrape() -> dict[str, Any]:
    return dict(yaml_module().safe_load(SCRAPE.read_text()))


@pytest.fixture(scope="module")
def exported_series() -> set[str]:
    """Every sample name the gateway's /metrics can answer with."""
    body = Metrics(process_metrics=False).render()[0].decode()
    return {
        line.split("{")[0].split(" ")[0]
        for line in body.splitlines()
        if line and not line.startswith("#")
    }


def test_required_alerts_are_defined(rules: dict[str, dict[str, Any]]) -> None:
    """No printers for 10 min, failures rising, consumers missing for 5 min."""
    for name, duration in REQUIRED_ALERTS.items():
        assert name in rules, name
        if duration is not None:
            assert rules[name]["for"] == duration, name


def test_alerts_use_series_the_gateway_exports(
    rules: dict[str, dict[str, Any]], exported_series: set[str]
) -> None:
    """Every zebra_gateway_* name in an expression exists in Metrics' exposition."""
    used = {
        name
        for rule in rules.values()
        for name in re.findall(r"zebra_gateway_\w+", rule["expr"])
    }
    assert used
    assert used <= exported_series, used - exported_series


def test_consumers_are_compared_over_all_replicas(
    rules: dict[str, dict[str, Any]],
) -> None:
    """A printer's raw socket may be on another replica: sum, never compare per pod."""
    expression = " ".join(rules["ZebraConsumersMissing"]["expr"].split())
    assert 'sum by (namespace) (zebra_gateway_consumers{channel="raw"})' in expression
    assert "sum by (namespace) (zebra_gateway_printers_connected)" in expression


def test_failures_leave_out_rejected_requests(rules: dict[str, dict[str, Any]]) -> None:
    """An invalid request is the producer's problem, not an outage."""
    statuses = re.findall(
        r'status=~"([^"]+)"', rules["ZebraOutcomeFailuresRising"]["expr"]
    )
    assert statuses
    for pattern in statuses:
        assert "rejected" not in pattern.split("|")
        assert {"failed", "timeout"} <= set(pattern.split("|"))


def test_every_alert_has_severity_summary_and_a_runbook(
    rules: dict[str, dict[str, Any]],
) -> None:
    """Each alert says how bad it is, what happened, and where the runbook section is."""
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in OPERATIONS.read_text().splitlines()
        if line.startswith("#")
    }
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert rule["annotations"]["summary"], name
        runbook = rule["annotations"]["runbook"]
        page, _, anchor = runbook.partition("#")
        assert page == "docs/operations.md", name
        assert anchor in headings, (
            f"{name}: no heading for #{anchor} in docs/operations.md"
        )


def test_scrape_job_finds_the_gateway_pods(scrape: dict[str, Any]) -> None:
    """The gateway job keeps pods by the Deployment's label and named port, at /metrics."""
    deployment = yaml_module().safe_load(DEPLOYMENT.read_text())
    pod = deployment["spec"]["template"]
    (port,) = pod["spec"]["containers"][0]["ports"]
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    job = jobs["zebra-gateway"]
    assert job["metrics_path"] == "/metrics"
    (discovery,) = job["kubernetes_sd_configs"]
    assert discovery["role"] == "pod"
    (selector,) = discovery["selectors"]
    key, _, value = selector["label"].partition("=")
    assert pod["metadata"]["labels"][key] == value
    keep = [
        r for r in job["relabel_configs"]
        if r.get("action") == "keep"
        and r["source_labels"] == ["__meta_kubernetes_pod_container_port_name"]
    ]  # fmt: skip
    assert [r["regex"] for r in keep] == [port["name"]]
    targets = {r.get("target_label") for r in job["relabel_configs"]}
    assert {"namespace", "pod"} <= targets, "alerts group by namespace and name pods"


def test_rule_file_is_loaded_by_the_config(scrape: dict[str, Any]) -> None:
    """The example config loads alerts.yml from beside it."""
    assert scrape["rule_files"] == [ALERTS.name]


def test_promtool_accepts_the_rules() -> None:
    """promtool check rules: valid PromQL, templates and durations."""
    result = run(promtool(), "check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_unit_tests_pass() -> None:
    """promtool test rules: each alert fires on its series, and only then."""
    result = run(promtool(), "test", "rules", ALERT_TESTS.name, cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_accepts_the_scrape_config(
    tmp_path: Path, scrape: dict[str, Any]
) -> None:
    """promtool check config, with static targets in place of Kubernetes discovery.

    Debian builds Prometheus without Kubernetes service discovery, so its promtool
    rejects kubernetes_sd_configs; the discovery blocks are checked by the tests
    above, everything else (relabelling, parameters, rule files) by promtool.
    """
    tool = promtool()
    config = dict(scrape)
    jobs = []
    for job in config["scrape_configs"]:
        job = dict(job)
        assert job.pop("kubernetes_sd_configs"), job["job_name"]
        job["static_configs"] = [{"targets": ["pod.invalid:8080"]}]
        jobs.append(job)
    config["scrape_configs"] = jobs
    config["rule_files"] = [str(PROMETHEUS / name) for name in config["rule_files"]]
    copy = tmp_path / "scrape.yml"
    copy.write_text(yaml_module().safe_dump(config))
    result = run(tool, "check", "config", str(copy))
    assert result.returncode == 0, result.stdout + result.stderr
