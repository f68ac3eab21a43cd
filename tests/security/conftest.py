"""Fixtures of the security tests: certificates, a SASL/SCRAM Kafka broker and an Elasticsearch
node with TLS, users and API keys, each of its own on free ports (the shared stack keeps
running unchanged), and real API keys minted on that node."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import certs
import pytest
import servers
from elasticsearch import Elasticsearch

from tests.harness import free_port

KAFKA_USER = "pipeline"
KAFKA_PASSWORD = "kafka-Scram-pw-7f3a9c"
ES_USER = "ingestor"
ES_PASSWORD = "es-Basic-pw-51d2e8"
TLS_KEY_PASSWORD = "tls-Key-pw-c09b77"


@dataclass(frozen=True)
class Pki:
    folder: Path
    ca: certs.Authority
    server: certs.Pair  # no key password
    server_locked: certs.Pair  # key encrypted with TLS_KEY_PASSWORD
    client: certs.Pair
    client_locked: certs.Pair  # key encrypted with TLS_KEY_PASSWORD
    rogue_client: certs.Pair  # signed by a CA nobody trusts


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = certs.authority(folder, "decryptscope-test-ca")
    rogue = certs.authority(folder, "rogue-ca")
    return Pki(
        folder=folder,
        ca=ca,
        server=certs.issue(ca, folder, "server", server=True),
        server_locked=certs.issue(
            ca, folder, "server-locked", server=True, key_password=TLS_KEY_PASSWORD
        ),
        client=certs.issue(ca, folder, "firewall-1", server=False),
        client_locked=certs.issue(
            ca, folder, "pipeline-client", server=False, key_password=TLS_KEY_PASSWORD
        ),
        rogue_client=certs.issue(rogue, folder, "rogue-firewall", server=False),
    )


@pytest.fixture(scope="session")
def secure_kafka(settings, stack, pki: Pki, tmp_path_factory) -> Iterator[servers.SecureKafka]:
    folder = tmp_path_factory.mktemp("secure-kafka")
    ports = {name: free_port() for name in ("controller", "internal", "sasl", "sasl_ssl", "ssl")}
    pem = certs.combined_pem(pki.server, folder / "server.pem")
    users = {KAFKA_USER: KAFKA_PASSWORD}
    ca = pki.ca.cert_path
    with servers.secure_kafka(settings, folder, ports, users, pem, client_ca=ca) as kafka:
        yield kafka


def mint_api_key(
    secure_es: servers.SecureElasticsearch, name: str, *patterns: str
) -> tuple[str, str]:
    """A real API key (id, encoded) made on the node with basic auth, holding the privileges
    docs/operations.md asks of the pipeline's role on the index ``patterns``."""
    admin = Elasticsearch(
        secure_es.url, ca_certs=str(secure_es.ca), basic_auth=(ES_USER, ES_PASSWORD)
    )
    role = {
        "cluster": ["monitor", "manage_index_templates"],
        "indices": [{"names": list(patterns), "privileges": ["create_index", "index", "manage"]}],
    }
    try:
        key = admin.security.create_api_key(name=name, role_descriptors={"decryptscope": role})
    finally:
        admin.close()
    return key["id"], key["encoded"]


@pytest.fixture(scope="session")
def secure_es(settings, stack, pki: Pki) -> Iterator[servers.SecureElasticsearch]:
    ports = {"http": free_port(), "transport": free_port()}
    with servers.secure_elasticsearch(
        settings, ports, pki.server, pki.ca.cert_path, user=ES_USER, password=ES_PASSWORD
    ) as es:
        yield es
