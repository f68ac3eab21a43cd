"""Kafka client configuration from Settings, in one place, for every client of the project:
the ingest producer and the setup admin (kafka-python), and the worker (aiokafka through Faust's
``broker_credentials``).

Security: ``kafka_security_protocol`` is PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL; SASL uses
``kafka_sasl_mechanism`` (SCRAM-SHA-512 by default, also SCRAM-SHA-256 and PLAIN) with
``kafka_sasl_username`` / ``kafka_sasl_password``; TLS verifies the broker with
``kafka_ssl_cafile`` (else the system's CAs) and presents ``kafka_ssl_certfile`` /
``kafka_ssl_keyfile`` when set, for brokers that require client certificates. ``kafka_error``
turns what the clients raise into the project's error, naming the setting to look at and never
the password.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from pipeline.errors import ConfigError, SinkError
from pipeline.settings import Settings

PROTOCOLS = frozenset({"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"})
MECHANISMS = frozenset({"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"})


class KafkaAuthError(SinkError):
    """Kafka refused our credentials or TLS: a retry with the same settings cannot succeed."""

    error_type = "auth"


def check(settings: Settings) -> None:
    """Refuse a security configuration that cannot work, naming the setting."""
    protocol = settings.kafka_security_protocol.upper()
    if protocol not in PROTOCOLS:
        raise ConfigError(
            f"setting kafka_security_protocol must be one of {', '.join(sorted(PROTOCOLS))}, "
            f"got {settings.kafka_security_protocol!r}"
        )
    if protocol.startswith("SASL"):
        if settings.kafka_sasl_mechanism.upper() not in MECHANISMS:
            raise ConfigError(
                f"setting kafka_sasl_mechanism must be one of {', '.join(sorted(MECHANISMS))}, "
                f"got {settings.kafka_sasl_mechanism!r}"
            )
        if not settings.kafka_sasl_username or not settings.kafka_sasl_password:
            raise ConfigError(
                f"kafka_security_protocol={protocol} needs kafka_sasl_username and "
                "kafka_sasl_password (or kafka_sasl_password_file)"
            )


def uses_tls(settings: Settings) -> bool:
    return settings.kafka_security_protocol.upper() in {"SSL", "SASL_SSL"}


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """The client TLS context: verifies the broker against ``kafka_ssl_cafile`` and presents
    the client certificate if one is set."""
    try:
        context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"setting kafka_ssl_cafile: {exc}") from exc
    if settings.kafka_ssl_certfile or settings.kafka_ssl_keyfile:
        if not settings.kafka_ssl_certfile:
            raise ConfigError("setting kafka_ssl_keyfile needs kafka_ssl_certfile")
        try:
            context.load_cert_chain(
                settings.kafka_ssl_certfile,
                settings.kafka_ssl_keyfile or None,
                settings.kafka_ssl_key_password or None,
            )
        except (OSError, ssl.SSLError) as exc:
            # the message of a wrong key password names no secret, only what failed
            raise ConfigError(
                f"settings kafka_ssl_certfile/kafka_ssl_keyfile/kafka_ssl_key_password: {exc}"
            ) from exc
    return context


def security_kwargs(settings: Settings) -> dict[str, Any]:
    """Security options for every kafka-python client (producer, consumer, admin)."""
    check(settings)
    protocol = settings.kafka_security_protocol.upper()
    out: dict[str, Any] = {"security_protocol": protocol}
    if uses_tls(settings):
        out["ssl_context"] = ssl_context(settings)
    if protocol.startswith("SASL"):
        out["sasl_mechanism"] = settings.kafka_sasl_mechanism.upper()
        out["sasl_plain_username"] = settings.kafka_sasl_username
        out["sasl_plain_password"] = settings.kafka_sasl_password
    return out


# The largest record batch panos.raw takes (its max.message.bytes, set by `setup`): room for
# a full producer batch, uncompressed, with its overhead.
RAW_MAX_MESSAGE_BYTES = 4 * 1024 * 1024


def producer_kwargs(settings: Settings) -> dict[str, Any]:
    """An idempotent, acks=all, batching, compressing kafka-python producer."""
    return {
        "bootstrap_servers": settings.kafka_bootstrap.split(","),
        "client_id": f"{settings.worker_id}-ingest",
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": settings.ingest_linger_ms,
        # Batches of 1 MiB: at full rate kafka-python wakes its sender for every message while
        # a partition has more than one batch waiting; larger batches make that rare (ingest
        # CPU per message 36-40 µs at 256 KiB, 23-25 µs at 1 MiB: bench/README.md, "Ingest").
        "batch_size": 1024 * 1024,
        "compression_type": settings.kafka_compression or None,
        "max_request_size": max(RAW_MAX_MESSAGE_BYTES, settings.max_message_bytes * 4),
        "max_in_flight_requests_per_connection": 5,
        **security_kwargs(settings),
    }


def admin_kwargs(settings: Settings, client_id: str = "setup") -> dict[str, Any]:
    return {
        "bootstrap_servers": settings.kafka_bootstrap.split(","),
        "client_id": f"{settings.worker_id}-{client_id}",
        **security_kwargs(settings),
    }


def consumer_kwargs(settings: Settings, **extra: Any) -> dict[str, Any]:
    return {
        "bootstrap_servers": settings.kafka_bootstrap.split(","),
        **security_kwargs(settings),
        **extra,
    }


def faust_broker_credentials(settings: Settings) -> Any:
    """``broker_credentials`` for ``faust.App`` (aiokafka), or None for PLAINTEXT."""
    check(settings)
    protocol = settings.kafka_security_protocol.upper()
    if protocol == "PLAINTEXT":
        return None
    import faust

    if protocol == "SSL":
        return faust.SSLCredentials(ssl_context(settings))
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=settings.kafka_sasl_password,
        mechanism=settings.kafka_sasl_mechanism.upper(),
        ssl_context=ssl_context(settings) if protocol == "SASL_SSL" else None,
    )


_AUTH_MARKERS = (
    "authentication",
    "sasl",
    "scram",
    "credentials",
    "unsupportedsaslmechanism",
    "illegalsaslstate",
)
_TLS_MARKERS = ("ssl", "certificate", "handshake", "wrong version number")


def kafka_error(exc: BaseException, settings: Settings, doing: str) -> SinkError:
    """The project's error for a Kafka client failure, with the cause and the settings to check.

    The message names ``kafka_bootstrap``, the protocol and the user, never the password."""
    text = f"{type(exc).__name__}: {exc}"
    lowered = text.lower()
    where = f"Kafka at {settings.kafka_bootstrap} ({settings.kafka_security_protocol})"
    if settings.kafka_sasl_password:
        text = text.replace(settings.kafka_sasl_password, "***")
    if any(m in lowered for m in _AUTH_MARKERS):
        return KafkaAuthError(
            f"{doing}: {where} refused the credentials of user "
            f"{settings.kafka_sasl_username!r} (mechanism {settings.kafka_sasl_mechanism}): "
            f"{text}. Check kafka_sasl_username, kafka_sasl_password and kafka_sasl_mechanism"
        )
    if uses_tls(settings) and any(m in lowered for m in _TLS_MARKERS):
        return KafkaAuthError(
            f"{doing}: TLS with {where} failed: {text}. Check kafka_ssl_cafile, that "
            "the broker's certificate names the host in kafka_bootstrap, "
            "kafka_ssl_certfile/kafka_ssl_keyfile if the broker requires a client certificate, "
            "and kafka_security_protocol"
        )
    return SinkError(f"{doing}: {where}: {text}. Check kafka_bootstrap and kafka_security_protocol")


async def _probe(settings: Settings, timeout_s: float) -> None:
    from aiokafka.conn import create_conn
    from aiokafka.errors import KafkaConnectionError

    protocol = settings.kafka_security_protocol.upper()
    context = ssl_context(settings) if uses_tls(settings) else None
    last: BaseException | None = None
    for server in settings.kafka_bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"setting kafka_bootstrap: {server!r} is not host:port")
        try:
            conn = await asyncio.wait_for(
                create_conn(
                    host.strip("[]"),
                    int(port),
                    security_protocol=protocol,
                    ssl_context=context,
                    sasl_mechanism=settings.kafka_sasl_mechanism.upper(),
                    sasl_plain_username=settings.kafka_sasl_username or None,
                    sasl_plain_password=settings.kafka_sasl_password or None,
                    request_timeout_ms=int(timeout_s * 1000),
                ),
                timeout_s,
            )
        except Exception as exc:  # every client failure is explained by kafka_error
            if _is_auth(exc) or (uses_tls(settings) and isinstance(exc, ssl.SSLError)):
                raise exc
            if uses_tls(settings) and isinstance(exc, KafkaConnectionError):
                raise _dropped_after_handshake(exc) from exc
            last = exc
            continue
        conn.close()
        return
    if last is not None:
        raise last


class _ClosedAfterHandshake(ConnectionError):
    pass


def _dropped_after_handshake(exc: BaseException) -> _ClosedAfterHandshake:
    # aiokafka's first request (ApiVersions) runs after the TLS handshake; with TLS 1.3 the
    # client's side of the handshake completes before the broker checks the client
    # certificate, so a refused certificate shows only as that request's closed connection
    return _ClosedAfterHandshake(
        f"the broker dropped the connection after the TLS handshake ({exc}): it requires a "
        "client certificate it trusts, or the listener speaks another protocol"
    )


def _is_auth(exc: BaseException) -> bool:
    name = type(exc).__name__.lower()
    return "sasl" in name or "authentication" in name or "authorization" in name


def preflight(settings: Settings, doing: str, timeout_s: float = 10.0) -> None:
    """Connect and authenticate to one bootstrap broker, or raise the project's error.

    The Kafka clients retry a refused login until their own timeout and then report only
    "unable to bootstrap"; this check says at once which setting is wrong."""
    check(settings)
    try:
        asyncio.run(_probe(settings, timeout_s))
    except (ConfigError, SinkError):
        raise
    except Exception as exc:
        raise kafka_error(exc, settings, doing) from None
