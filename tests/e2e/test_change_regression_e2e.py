"""A change point end to end on the real stack: a firewall decrypts inbound sessions on PAN-OS
10.1, is upgraded (its logs' config version steps 2561 -> 2562, the SSLMGR daemon reloads), and
its inbound inspection then fails. Replayed over syslog to the ingest and a worker, this must
give: the change's own document in Elasticsearch, found by the failure dashboard's annotation
query; the in-stream ``regression`` alert naming the change (alerts topic and index); and the
Prometheus rule's DecryptionRegressionAfterChange in Alertmanager, for that firewall. Needs
`decryptscope stack up`; the stack's Prometheus scrapes the worker on 6066, so that port must be
free (as for test_alert_e2e)."""

from __future__ import annotations

import json
import secrets
import socket
import time
import urllib.parse

import pytest
from elasticsearch import Elasticsearch
from test_alert_e2e import (  # the same real pipeline as the alert test
    alertmanager_alerts,
    http_json,
    pipeline_env,  # noqa: F401  (fixture)
    prometheus_alerts,
    running_pipeline,  # noqa: F401  (fixture)
    wait_for,
)

from pipeline.resources import ROOT
from pipeline.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DIAGNOSIS = ROOT / "tests" / "golden" / "diagnosis"
DASHBOARD = ROOT / "grafana" / "dashboards" / "decryption-failures.json"
CAUSE = "inbound-proxy-handshake-failure"  # the golden case of the failing lines
WINDOW_S = 10


def golden(name: str) -> list[str]:
    """The CSV fields (syslog header dropped) of a golden case's log line."""
    text = (DIAGNOSIS / f"{name}.log").read_text()
    line = next(x for x in text.splitlines() if x and not x.startswith("#"))
    return ("1," + line.partition(" 1,")[2]).split(",")


def stamp(when: float) -> tuple[str, str, str]:
    """(syslog header time, PAN-OS time, ISO time) of an epoch time, in UTC."""
    t = time.gmtime(when)
    return (
        time.strftime("%b %d %H:%M:%S", t),
        time.strftime("%Y/%m/%d %H:%M:%S", t),
        time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", t),
    )


class Firewall:
    """Log lines of one firewall (a serial of its own per run), stamped with the current time."""

    def __init__(self) -> None:
        self.serial = "0128" + "".join(secrets.choice("0123456789") for _ in range(8))
        self.name = f"fw-e2e-{self.serial[-4:]}"
        self.seqno = 7470000000000000000 + secrets.randbelow(10**12) * 1000
        self.session = 600000 + secrets.randbelow(10**5) * 10

    def _next(self) -> tuple[int, int]:
        self.seqno += 1
        self.session += 1
        return self.seqno, self.session

    def _line(self, fields: list[str]) -> bytes:
        header = stamp(time.time())[0]
        return f"<14>{header} {self.name} {','.join(fields)}\n".encode()

    def traffic_end(self, version: str) -> bytes:
        """A decrypted inbound session's end (golden case none-tcp-fin)."""
        f = golden("none-tcp-fin")
        seqno, session = self._next()
        _, panos, iso = stamp(time.time())
        f[1] = f[6] = f[35] = panos
        f[2], f[5], f[22], f[39], f[52], f[102] = (
            self.serial,
            version,
            str(session),
            str(seqno),
            self.name,
            iso,
        )
        return self._line(f)

    def inbound_failure(self, version: str) -> bytes:
        """A failed inbound inspection handshake (golden case inbound-proxy-handshake-failure-
        index: Proxy Type Inbound, Error Index Unknown)."""
        f = golden("inbound-proxy-handshake-failure-index")
        seqno, session = self._next()
        _, panos, iso = stamp(time.time())
        f[1] = f[6] = f[21] = panos
        f[2], f[5], f[22], f[89], f[96], f[72] = (
            self.serial,
            version,
            str(session),
            str(seqno),
            self.name,
            iso,
        )
        return self._line(f)

    def sslmgr_loaded(self, version: str) -> bytes:
        """System Log Reference: sslmgr-config-p2-success (SYSTEM Log Fields, 26 columns)."""
        seqno, _ = self._next()
        _, panos, iso = stamp(time.time())
        fields = ["1", panos, self.serial, "SYSTEM", "sslmgr", version, panos, "",
                  "sslmgr-config-p2-success", "", "0", "0", "general", "informational",
                  "SSLMGR daemon configuration load phase-2 succeeded.", str(seqno), "0x0", "0",
                  "0", "0", "0", "", self.name, "0", "0", iso]  # fmt: skip
        return self._line(fields)


def send(syslog: str, payload: bytes) -> None:
    host, port = urllib.parse.urlsplit(syslog).netloc.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(payload)


@pytest.fixture
def firewall(pipeline_env: dict[str, str]) -> Firewall:  # noqa: F811
    fw = Firewall()
    pipeline_env.update(
        {
            # windows of 10 s; compare a minute before with two after; name the firewall
            "DECRYPTSCOPE_ALERT_WINDOW_S": str(WINDOW_S),
            "DECRYPTSCOPE_ALERT_GRACE_S": "2",
            "DECRYPTSCOPE_CHANGE_BEFORE_S": "60",
            "DECRYPTSCOPE_CHANGE_AFTER_S": "120",
            "DECRYPTSCOPE_CHANGE_MIN_FAILURES": "5",
            "DECRYPTSCOPE_METRIC_FIREWALLS": fw.serial,
        }
    )
    return fw


def test_an_upgrade_then_inbound_failures_yield_the_regression_and_the_annotation(
    firewall: Firewall,
    running_pipeline: dict[str, str],  # noqa: F811
    settings: Settings,
) -> None:
    env = running_pipeline
    syslog = env["E2E_SYSLOG"]
    index = env["DECRYPTSCOPE_INDEX_PREFIX"]
    es = Elasticsearch(settings.es_url)
    try:
        # PAN-OS 10.1: inbound inspection works; the worker learns the firewall's version.
        send(syslog, b"".join(firewall.traffic_end("2561") for _ in range(3)))
        query = {"term": {"observer.serial_number": firewall.serial}}
        wait_for(
            "the 10.1 sessions in Elasticsearch",
            lambda: es.options(ignore_status=404).count(index=index, query=query).get("count"),
            120,
            1,
        )
        # the detector has watched this firewall for a window before the change
        time.sleep(2 * WINDOW_S)

        # The upgrade: the first 10.2 line, then inbound handshakes fail (two windows' worth).
        send(syslog, firewall.sslmgr_loaded("2562"))
        for _ in range(2):
            send(syslog, b"".join(firewall.inbound_failure("2562") for _ in range(6)))
            time.sleep(WINDOW_S)

        # The change's own document, found the way the dashboard's annotation finds it.
        annotation = json.loads(DASHBOARD.read_text())["annotations"]["list"][0]
        search = {
            "bool": {
                "filter": [
                    {"query_string": {"query": annotation["target"]["query"]}},
                    {"term": {annotation["tagsField"]: "software"}},
                    {"term": {"observer.serial_number": firewall.serial}},
                ]
            }
        }
        [hit] = wait_for(
            "the change document",
            lambda: es.search(index=index, query=search)["hits"]["hits"],
            60,
            1,
        )
        change = hit["_source"]
        assert change["decryptscope"]["change"]["from"] == "10.1"
        assert change["decryptscope"]["change"]["to"] == "10.2"
        assert (
            change[annotation["textField"]] == "PAN-OS 10.1 to 10.2 (config version 2561 to 2562)"
        )
        assert change[annotation["timeField"]]

        # The in-stream alert names it (alerts index).
        alert_query = {
            "bool": {
                "filter": [
                    {"term": {"kind": "regression"}},
                    {"term": {"firewall": firewall.serial}},
                ]
            }
        }
        [alert_hit] = wait_for(
            "the regression alert in the alerts index",
            lambda: (
                es.options(ignore_status=404)
                .search(index=env["DECRYPTSCOPE_ALERTS_INDEX"], query=alert_query)
                .get("hits", {})
                .get("hits")
            ),
            90,
            2,
        )
    finally:
        es.close()
    alert = alert_hit["_source"]
    assert alert["cause"] == CAUSE
    assert alert["change"]["id"] == hit["_id"]
    assert alert["change"]["kind"] == "software"
    assert alert["after"]["failures"] >= 5 and alert["before"]["failures"] == 0

    # Prometheus turns it into an alert Alertmanager holds, labelled with the firewall.
    def firing() -> list[dict]:
        return [
            a
            for a in prometheus_alerts(env["E2E_PROMETHEUS"], "DecryptionRegressionAfterChange")
            if a["state"] == "firing" and a["labels"].get("firewall") == firewall.serial
        ]

    [rule_alert] = wait_for("DecryptionRegressionAfterChange in Prometheus", firing, 90, 3)
    assert rule_alert["labels"]["cause"] == CAUSE
    assert rule_alert["labels"]["change_kind"] == "software"
    received = wait_for(
        "the regression alert in Alertmanager",
        lambda: [
            a
            for a in alertmanager_alerts(env["E2E_ALERTMANAGER"], "DecryptionRegressionAfterChange")
            if a["labels"].get("firewall") == firewall.serial
        ],
        60,
        3,
    )
    assert received[0]["labels"]["severity"] == "critical"
    assert received[0]["annotations"]["runbook_url"].endswith("#decryptionregressionafterchange")
    # the worker's metrics for Grafana: the change counted for the named firewall
    series = f'decryptscope_change_points_total{{kind="software",firewall="{firewall.serial}"}}'
    query = urllib.parse.urlencode({"query": series})
    result = http_json(f"{env['E2E_PROMETHEUS']}/api/v1/query?{query}")["data"]["result"]
    assert result and float(result[0]["value"][1]) >= 1
