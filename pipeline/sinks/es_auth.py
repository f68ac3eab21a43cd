"""Does Elasticsearch accept us? One authenticated call before the worker or setup starts, so
that a wrong password, API key or CA is one clear error naming the setting, not a stream of
refused bulk requests."""

from __future__ import annotations

from typing import Any

from pipeline.errors import SinkError
from pipeline.settings import Settings


class ElasticsearchAuthError(SinkError):
    """Elasticsearch refused our credentials or we refused its certificate."""

    error_type = "auth"


def _how(settings: Settings) -> str:
    if settings.es_api_key:
        return "API key (es_api_key)"
    if settings.es_username:
        return f"user {settings.es_username!r} (es_username, es_password)"
    return "no credentials (es_username/es_password or es_api_key unset)"


def explain(exc: BaseException, settings: Settings, doing: str) -> SinkError:
    """The project's error for a failed Elasticsearch call; never shows a secret."""
    status = getattr(getattr(exc, "meta", None), "status", None)
    text = f"{type(exc).__name__}: {exc}"
    for secret in (settings.es_password, settings.es_api_key):
        if secret:
            text = text.replace(secret, "***")
    where = f"Elasticsearch at {settings.es_url}"
    if status == 401:
        return ElasticsearchAuthError(
            f"{doing}: {where} refused the credentials: {_how(settings)} is not valid. Check "
            "es_username and es_password, or es_api_key"
        )
    if status == 403:
        return ElasticsearchAuthError(
            f"{doing}: {where} authenticated {_how(settings)} but denies it the needed "
            f"privileges: {text}"
        )
    lowered = text.lower()
    if "certificate" in lowered or "ssl" in lowered or "tls" in lowered:
        return ElasticsearchAuthError(
            f"{doing}: TLS with {where} failed: {text}. Check es_ca_certs (the CA that signed "
            "the node's HTTP certificate) and that es_url names a host in that certificate"
        )
    return SinkError(f"{doing}: {where} is not reachable: {text}. Check es_url")


def preflight(client: Any, settings: Settings, doing: str, *, reachable: bool = True) -> None:
    """One call that needs authentication (cluster health), explained when it fails.

    ``reachable=False``: an unreachable node is not an error (the worker backs off until it
    is back); refused credentials or certificates still are."""
    try:
        client.cluster.health(timeout="5s")
    except Exception as exc:
        error = explain(exc, settings, doing)
        if reachable or isinstance(error, ElasticsearchAuthError):
            raise error from None
