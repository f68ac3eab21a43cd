"""The Sigma rules of deploy/sigma/: valid for pySigma, one per alert-worthy cause family of
the catalogue, written against fields the index template maps, and their committed
conversions (Lucene, ES|QL, Splunk) equal to a fresh run of deploy/sigma/convert.py.
The Lucene queries run on the real Elasticsearch in tests/integration/test_sigma_es.py."""

from __future__ import annotations

import importlib.util
import tomllib

import pytest
import yaml
from sigma.backends.elasticsearch import EqlBackend, ESQLBackend, LuceneBackend
from sigma.backends.splunk import SplunkBackend
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.plugins import InstalledSigmaPlugins
from sigma.processing.pipeline import ProcessingPipeline
from sigma.rule import SigmaRule
from sigma.validation import SigmaValidator

from pipeline.resources import DEPLOY, SCHEMAS
from pipeline.sinks.es_templates import desired_templates

SIGMA = DEPLOY / "sigma"
# The alert-worthy families and the catalogue categories each covers (client authentication
# is one of the decryption profile's "unsupported mode checks", beside versions and ciphers).
FAMILIES = {
    "decryptscope_client_trust": {"client-trust"},
    "decryptscope_server_certificate": {"server-certificate"},
    "decryptscope_unsupported_parameters": {"unsupported-parameter", "client-authentication"},
    "decryptscope_inbound_inspection": {"inbound-inspection"},
    "decryptscope_resources": {"resources"},
}
# No rule on purpose: generic protocol errors and unclassified failures have no single fix.
NOT_ALERTED = {"protocol", "unknown"}
# pySigma validators that download MITRE ATT&CK / D3FEND data when run (no network in tests);
# they check tags of those namespaces, which the rules do not use.
DOWNLOADING_VALIDATORS = {"attacktag", "d3_fendtag"}


def load_converter():
    spec = importlib.util.spec_from_file_location("sigma_convert", SIGMA / "convert.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CONVERT = load_converter()


def fresh() -> SigmaCollection:
    return CONVERT.load(CONVERT.rule_files())


def test_rules_load_and_pass_the_offline_validators_of_pysigma():
    rules = fresh()
    assert not rules.errors
    plugins = InstalledSigmaPlugins.autodiscover()
    assert set(plugins.validators) >= DOWNLOADING_VALIDATORS
    validators = [v for name, v in plugins.validators.items() if name not in DOWNLOADING_VALIDATORS]
    assert len(validators) > 20
    assert SigmaValidator(validators).validate_rules(rules) == []
    for rule in rules:
        assert not any(t.namespace in ("attack", "d3fend") for t in rule.tags or ())


def test_one_detection_rule_per_family_and_every_category_decided():
    rules = {r.name: r for r in fresh() if isinstance(r, SigmaRule)}
    assert set(rules) == set(FAMILIES)
    for name, rule in rules.items():
        (selection,) = rule.detection.detections.values()
        items = {i.field: {str(v) for v in i.value} for i in selection.detection_items}
        assert items == {"event.outcome": {"failure"}, "decryptscope.category": FAMILIES[name]}
        assert rule.logsource.product == "panos"
    categories = set(tomllib.loads((SCHEMAS / "causes.toml").read_text())["categories"])
    covered = set().union(*FAMILIES.values())
    assert covered | NOT_ALERTED == categories and not covered & NOT_ALERTED


def test_correlations_count_failures_of_the_family_rules():
    correlations = [r for r in fresh() if isinstance(r, SigmaCorrelationRule)]
    assert {c.name for c in correlations} == {
        "decryptscope_failure_spike_by_server",
        "decryptscope_resources_spike_by_firewall",
        "decryptscope_client_trust_spread_by_server",
    }
    for c in correlations:
        assert {ref.reference for ref in c.rules} <= set(FAMILIES)
        assert c.timespan.seconds > 0 and c.group_by


def _mapped_fields() -> set[str]:
    fields: set[str] = set()

    def walk(props: dict, prefix: str) -> None:
        for name, spec in props.items():
            path = f"{prefix}{name}"
            if "properties" in spec:
                walk(spec["properties"], path + ".")
            else:
                fields.add(path)

    templates = desired_templates("probe")
    for body in templates.components.values():
        walk(body["template"]["mappings"].get("properties", {}), "")
    return fields


def test_rules_use_only_fields_the_index_template_maps():
    mapped = _mapped_fields()
    pipeline = yaml.safe_load((SIGMA / "processing-pipeline.yml").read_text())
    used = {field for t in pipeline["transformations"] for field in t.get("conditions", {})}
    for rule in fresh():
        if isinstance(rule, SigmaRule):
            for detection in rule.detection.detections.values():
                used.update(i.field for i in detection.detection_items)
            used.update(rule.fields)
        else:
            used.update(rule.group_by)
            if rule.condition.fieldref:
                used.add(rule.condition.fieldref)
    assert used and used <= mapped, sorted(used - mapped)


def test_the_committed_conversions_are_up_to_date():
    wanted = CONVERT.render()
    for path, text in wanted.items():
        assert (SIGMA / path).read_text() == text, f"run python deploy/sigma/convert.py ({path})"
    assert CONVERT.main(["--check"]) == 0
    rules = [p.stem for p in CONVERT.rule_files()]
    splunk = sorted(p.stem for p in (SIGMA / "splunk").glob("*.spl"))
    assert splunk == sorted(rules)


def _pipeline() -> ProcessingPipeline:
    return CONVERT.processing_pipeline()


@pytest.mark.parametrize("name", sorted(n for n in FAMILIES))
def test_lucene_and_splunk_scope_each_rule_to_the_pipelines_documents(name):
    path = next(p for p in CONVERT.rule_files() if yaml.safe_load(p.read_text())["name"] == name)
    lucene = LuceneBackend(_pipeline()).convert_rule(CONVERT.load([path])[0])
    splunk = SplunkBackend(_pipeline()).convert_rule(CONVERT.load([path])[0])
    assert lucene[0].startswith("event.dataset:panw.panos AND ")
    assert splunk[0].startswith('event.dataset="panw.panos" ')


def test_which_backends_convert_correlations():
    """Lucene has no correlations; ES|QL and Splunk convert all three; EQL renders them as
    sequences, right only for a one-rule event count (documented in deploy/sigma/README.md)."""
    files = CONVERT.rule_files()
    for backend_class, converts in (
        (LuceneBackend, False),
        (ESQLBackend, True),
        (SplunkBackend, True),
        (EqlBackend, True),
    ):
        backend = backend_class(_pipeline())
        rules = CONVERT.load(files)
        for rule in rules:
            if isinstance(rule, SigmaRule):
                backend.convert_rule(rule)
        for rule in rules:
            if not isinstance(rule, SigmaCorrelationRule):
                continue
            if not converts:
                with pytest.raises(NotImplementedError):
                    backend.convert_correlation_rule(rule)
                continue
            (query,) = backend.convert_correlation_rule(rule)
            if backend_class is EqlBackend:
                # value_count becomes "runs" of the same source.ip, not distinct ones
                assert "sequence by" in query and "with runs=" in query
    esql = (SIGMA / "elasticsearch" / "client-trust-spread-by-server.esql").read_text()
    assert "count_distinct(source.ip)" in esql and "value_count >= 10" in esql
