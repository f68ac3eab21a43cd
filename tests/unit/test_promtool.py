"""The shipped Prometheus rules and Alertmanager config, checked by promtool and amtool."""

from __future__ import annotations

import re
import shutil
import subprocess

import yaml

from pipeline.resources import DEPLOY

RULES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
RULE_TESTS = sorted((DEPLOY / "prometheus" / "tests").glob("*.yml"))
RUNBOOK = DEPLOY / "prometheus" / "runbook.md"
ALERTMANAGER = DEPLOY / "alertmanager" / "alertmanager.yml"
RECORD_NAME = re.compile(r"^[a-z_]+:[a-z_]+:[a-z0-9_]+$")


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed (apt-get install prometheus prometheus-alertmanager)"
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def alerting_rules() -> list[dict]:
    rules = []
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(rule for rule in group["rules"] if "alert" in rule)
    return rules


def test_rule_files_exist():
    assert {p.name for p in RULES} >= {"recording.yml", "decryption.yml", "pipeline.yml"}


def test_promtool_check_rules():
    result = run(tool("promtool"), "check", "rules", *map(str, RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_unit_tests():
    result = run(tool("promtool"), "test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_a_wrong_expectation_fails(tmp_path):
    # The unit tests can fail: flip one expected label and promtool must say so.
    source = (DEPLOY / "prometheus" / "tests" / "decryption_test.yml").read_text()
    broken = tmp_path / "broken_test.yml"
    broken.write_text(
        source.replace("cause: cert-expired", "cause: something-else", 1).replace(
            "../rules/", str(DEPLOY / "prometheus" / "rules") + "/"
        )
    )
    result = run(tool("promtool"), "test", "rules", str(broken))
    assert result.returncode != 0


def test_recording_rules_are_named_level_metric_operation():
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    assert RECORD_NAME.match(rule["record"]), rule["record"]


def test_every_alert_has_severity_summary_description_and_runbook():
    runbook = RUNBOOK.read_text()
    anchors = {line[3:].strip().lower() for line in runbook.splitlines() if line.startswith("## ")}
    for rule in alerting_rules():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        notes = rule["annotations"]
        assert notes["summary"] and notes["description"], rule["alert"]
        page, _, anchor = notes["runbook_url"].partition("#")
        assert page == "deploy/prometheus/runbook.md"
        assert anchor == rule["alert"].lower() and anchor in anchors, rule["alert"]


def test_every_alert_is_tested_not_firing_and_firing():
    edges: dict[str, set[bool]] = {}
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                edges.setdefault(check["alertname"], set()).add(bool(check["exp_alerts"]))
    for rule in alerting_rules():
        assert edges.get(rule["alert"]) == {False, True}, rule["alert"]


def test_amtool_check_config():
    result = run(tool("amtool"), "check-config", str(ALERTMANAGER))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_routes_by_severity():
    config = yaml.safe_load(ALERTMANAGER.read_text())
    routes = config["route"]["routes"]
    matched = {m for route in routes for m in route["matchers"]}
    assert matched == {'severity="critical"', 'severity="warning"'}
    receivers = {r["name"]: r for r in config["receivers"]}
    assert all(route["receiver"] in receivers for route in routes)
    assert any("webhook_configs" in r for r in receivers.values())
