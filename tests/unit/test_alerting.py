"""The spike detector driven by synthetic minute series: when exactly does it fire?"""

from __future__ import annotations

import json

import pytest

from pipeline.alerting import AlertConfig, SpikeDetector, escape_text
from pipeline.errors import ConfigError
from pipeline.settings import load_settings
from pipeline.wire import Failure, WindowCount

CFG = AlertConfig(
    window_s=60,
    baseline_windows=10,
    min_count=20,
    ratio=3.0,
    sigma=4.0,
    alpha=0.2,
    new_min_count=5,
    cooldown_windows=5,
)


def run(series: list[dict[tuple[str, str], int]], cfg: AlertConfig = CFG, detector=None):
    """Feed minute ``i`` of ``series`` ({(cause, server): count}) and return
    {minute: [alerts of that minute]} as the windows close."""
    det = detector or SpikeDetector(cfg)
    fired: dict[int, list[dict]] = {}
    for minute, counts in enumerate(series):
        start = minute * cfg.window_s
        for (cause, server), n in counts.items():
            for i in range(n):
                det.observe(
                    Failure(
                        cause=cause, server=server, rule="r1", source="192.0.2.1", event_id=f"e{i}"
                    ),
                    start + 1 + i * (cfg.window_s - 2) / max(n, 1),
                )
        for alert in det.tick((minute + 1) * cfg.window_s):
            fired.setdefault(minute, []).append(alert)
    return fired


def steady(minutes: int, n: int, cause: str = "cert-expired", server: str = "a.example"):
    return [{(cause, server): n} for _ in range(minutes)]


def kinds(fired):
    return {
        minute: sorted((a["kind"], a["server"]) for a in alerts) for minute, alerts in fired.items()
    }


def test_quiet_series_never_fires():
    noisy = [{("cert-expired", "a.example"): 8 + (i * 7) % 5} for i in range(60)]
    assert run(noisy) == {}


def test_steady_high_volume_never_fires():
    noisy = [{("cert-expired", "a.example"): 100 + (i * 13) % 21 - 10} for i in range(60)]
    assert run(noisy) == {}


def test_gradual_growth_never_fires():
    growing = [{("cert-expired", "a.example"): int(30 * 1.05**i)} for i in range(50)]
    assert growing[-1][("cert-expired", "a.example")] > 300  # tenfold over the series
    assert run(growing) == {}


def test_sudden_spike_fires_at_the_spike_minute_only():
    series = [*steady(15, 10), {("cert-expired", "a.example"): 200}, *steady(3, 10)]
    fired = run(series)
    assert kinds(fired) == {15: [("spike", ""), ("spike", "a.example")]}
    alert = fired[15][0]
    assert alert["cause"] == "cert-expired"
    assert alert["observed"] == 200
    assert 9 < alert["expected"] < 11
    assert alert["top_servers"] == [{"value": "a.example", "count": 200}]
    assert alert["top_rules"] == [{"value": "r1", "count": 200}]
    assert alert["top_sources"] == [{"value": "192.0.2.1", "count": 200}]
    assert alert["sample_event_ids"] == ["e0", "e1", "e2", "e3", "e4"]
    assert alert["window"]["seconds"] == 60
    json.dumps(alert)  # a plain JSON document


def test_spike_below_the_volume_floor_does_not_fire():
    # Tenfold, but 19 < alert_min_count.
    series = [{("cert-expired", "a.example"): 2}] * 15 + [{("cert-expired", "a.example"): 19}]
    assert run(series) == {}
    series[-1] = {("cert-expired", "a.example"): 20}
    assert kinds(run(series)) == {15: [("spike", ""), ("spike", "a.example")]}


def test_spike_just_under_the_ratio_does_not_fire():
    # The baseline after 15 minutes of 10 is 9.65: the ratio floor is 28.9.
    series = [*steady(15, 10), {("cert-expired", "a.example"): 28}]
    assert run(series) == {}
    series[-1] = {("cert-expired", "a.example"): 30}
    assert 15 in run(series)


def test_a_sustained_spike_alerts_once_per_cooldown():
    series = [*steady(15, 10), *[{("cert-expired", "a.example"): 400}] * 3]
    fired = run(series)
    assert sorted(fired) == [15]


def test_new_cause_fires_after_the_baseline_period_only():
    background = steady(12, 10)
    series = [dict(m) for m in background]
    series[11][("unsupported-cipher", "b.example")] = 5
    fired = run(series)
    assert kinds(fired) == {11: [("new_cause", "")]}
    assert fired[11][0]["cause"] == "unsupported-cipher"


def test_new_cause_under_its_floor_does_not_fire():
    series = [dict(m) for m in steady(12, 10)]
    series[11][("unsupported-cipher", "b.example")] = 4
    assert run(series) == {}


def test_nothing_is_new_before_one_baseline_period():
    # The detector started at minute 0; at minute 5 it cannot tell new from unseen.
    series = [dict(m) for m in steady(8, 10)]
    series[5][("unsupported-cipher", "b.example")] = 50
    assert run(series) == {}


def test_a_cause_back_after_the_baseline_period_is_new_again():
    series = [dict(m) for m in steady(30, 10)]
    series[2][("unsupported-cipher", "b.example")] = 3
    series[13][("unsupported-cipher", "b.example")] = 6  # 11 windows later: > baseline (10)
    assert kinds(run(series)) == {13: [("new_cause", "")]}
    series[13][("unsupported-cipher", "b.example")] = 0
    series[12][("unsupported-cipher", "b.example")] = 6  # 10 windows later: still known
    assert run(series) == {}


def test_new_failing_server_for_a_known_cause():
    series = [dict(m) for m in steady(14, 10)]
    series[13][("cert-expired", "new.example")] = 5
    fired = run(series)
    assert kinds(fired) == {13: [("new_server", "new.example")]}
    alert = fired[13][0]
    assert alert["observed"] == 5
    assert alert["cause"] == "cert-expired"
    series[13][("cert-expired", "new.example")] = 4
    assert run(series) == {}


def test_baseline_survives_export_and_restore():
    first = SpikeDetector(CFG)
    run(steady(15, 10), detector=first)
    saved = {cause: json.loads(json.dumps(first.export(cause))) for cause in first.pending()}
    assert first.pending() == frozenset()
    assert saved == {"cert-expired": saved["cert-expired"]}
    second = SpikeDetector(CFG, load=saved.get)
    # A fresh detector with the saved baseline: the spike is relative to ~10/min.
    t0 = 15 * 60
    for i in range(200):
        second.observe(Failure("cert-expired", "a.example"), t0 + 1 + i * 0.2)
    assert second.tick(t0 - 60) == []
    alerts = second.tick(t0 + 60)
    assert [(a["kind"], a["server"]) for a in alerts] == [("spike", ""), ("spike", "a.example")]
    assert 9 < alerts[0]["expected"] < 11


def test_server_baselines_are_bounded():
    cfg = AlertConfig(window_s=60, baseline_windows=3, max_servers=50)
    det = SpikeDetector(cfg)
    for minute in range(20):
        for i in range(100):
            det.observe(Failure("cert-expired", f"s{minute}-{i}.example"), minute * 60 + 1)
    det.tick(21 * 60)
    assert len(det.export("cert-expired")["servers"]) == 50


def test_alert_text_escapes_sni_and_markup():
    evil = "<script>x</script>\x1b[31m\u202e.example\n*bold*"
    series = [dict(m) for m in steady(14, 10)]
    series[13][("cert-expired", evil)] = 6
    alert = run(series)[13][0]
    text = json.dumps(alert)
    for bad in ("<", ">", "\x1b", "\u202e", "\\n", "*"):
        assert bad not in alert["server"] and bad not in alert["message"]
    assert alert["server"].startswith("\\x3cscript\\x3ex")
    assert "\x1b" not in text


def test_escape_text_keeps_host_names_and_cuts_long_values():
    assert escape_text("www.example.com") == "www.example.com"
    assert escape_text("2001:db8::1") == "2001:db8::1"
    assert escape_text("a\x00b") == "a\\x00b"
    assert escape_text("é") == "\\xe9"
    assert len(escape_text("x" * 5000)) == 300


def test_counts_of_several_workers_add_up_to_one_alert():
    # Two workers each saw half of a spike window: the detector alerts once, on the sum.
    det = SpikeDetector(CFG, grace_s=5.0)
    for minute in range(CFG.baseline_windows + 1):
        for worker in range(2):
            part = WindowCount("cert-expired", minute, CFG.window_s)
            for i in range(2):
                part.add(Failure("cert-expired", "a.example", event_id=f"w{worker}-{minute}-{i}"))
            det.add(part)
        assert det.tick((minute + 1) * CFG.window_s + 5.0) == []
    spike = CFG.baseline_windows + 1
    for worker in range(2):
        part = WindowCount("cert-expired", spike, CFG.window_s)
        for i in range(30):
            part.add(Failure("cert-expired", "a.example", event_id=f"w{worker}-s{i}"))
        det.add(part)
    # not yet: the window waits grace_s for late counts
    assert det.tick((spike + 1) * CFG.window_s + 4.0) == []
    alerts = det.tick((spike + 1) * CFG.window_s + 5.0)
    assert sorted(a["kind"] for a in alerts) == ["spike", "spike"]
    assert {a["observed"] for a in alerts} == {60}
    assert len(alerts[0]["sample_event_ids"]) == 5
    # a count that arrives after its window was evaluated is not added to a later one
    late = WindowCount("cert-expired", spike, CFG.window_s, count=7)
    det.add(late)
    assert det.late == 7


@pytest.mark.parametrize(
    "name,value",
    [
        ("alert_window_s", "0"),
        ("alert_baseline_windows", "-1"),
        ("alert_min_count", "0"),
        ("alert_ratio", "-2"),
        ("alert_sigma", "0"),
        ("alert_ewma_alpha", "1.5"),
        ("alert_new_cause_min_count", "0"),
        ("alert_cooldown_windows", "0"),
        ("alert_max_servers", "0"),
    ],
)
def test_misconfigured_thresholds_are_refused_naming_the_setting(name, value):
    with pytest.raises(ConfigError, match=name):
        load_settings(env={f"DECRYPTSCOPE_{name.upper()}": value})


def test_config_from_settings():
    settings = load_settings(env={"DECRYPTSCOPE_ALERT_WINDOW_S": "10"})
    cfg = AlertConfig.from_settings(settings)
    assert cfg.window_s == 10
    assert cfg.cooldown_windows == settings.alert_cooldown_windows
