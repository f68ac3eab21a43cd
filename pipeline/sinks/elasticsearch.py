"""Bulk writes to Elasticsearch: daily indices, deterministic ``_id``, retries that never drop.

``BulkWriter.write(docs)`` indexes ECS documents into ``<index_prefix>-YYYY.MM.DD`` (the UTC
day of ``@timestamp``) with ``_id`` = ``document_id``, so a replay overwrites instead of
duplicating. A whole request that fails on a connection error, a 429 or a 5xx is retried with
exponential backoff (forever unless ``bulk_max_retries`` is set), and so is every single item
answered 429/5xx. Items Elasticsearch refuses for good (mapping errors and the like) are
returned as ``Rejected`` for the caller to dead-letter. ``write`` returns only when every
document is indexed or rejected. ``write_encoded`` does the same for documents that are already
JSON (the events topic's values), with their index and id known: their bytes go into the bulk
body as they are, with no decoding and re-encoding.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from pipeline.ecs import index_name
from pipeline.metrics import METRICS, Metrics, es_error_type_label
from pipeline.settings import Settings

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Rejected:
    """A document Elasticsearch refused for a reason a retry will not fix."""

    doc_id: str
    document: Any  # the dict given to ``write``, the bytes given to ``write_encoded``
    status: int
    error_type: str
    reason: str


def index_for(document: dict[str, Any], prefix: str) -> str:
    """``<prefix>-YYYY.MM.DD`` from the document's ``@timestamp`` (UTC day)."""
    stamp = document.get("@timestamp")
    return index_name(stamp if isinstance(stamp, str) else "", prefix)


def encoded_pair(doc_id: str, index: str, source: bytes) -> bytes:
    """The two NDJSON lines of one ``index`` operation over an already encoded document."""
    action = orjson.dumps({"index": {"_index": index, "_id": doc_id}})
    return b"%s\n%s\n" % (action, source)


def bulk_body(docs: Sequence[tuple[str, dict[str, Any]]], prefix: str) -> bytes:
    """The NDJSON of ``index`` operations for (id, document) pairs."""
    dumps = orjson.dumps
    lines: list[bytes] = []
    for doc_id, doc in docs:
        lines.append(dumps({"index": {"_index": index_for(doc, prefix), "_id": doc_id}}))
        lines.append(dumps(doc))
    lines.append(b"")
    return b"\n".join(lines)


def make_client(settings: Settings, *, asynchronous: bool = True) -> Any:
    """An Elasticsearch client authenticated from settings (basic, API key, CA)."""
    from elasticsearch import AsyncElasticsearch, Elasticsearch
    from elasticsearch.serializer import OrjsonSerializer

    kwargs: dict[str, Any] = {"request_timeout": 60}
    if settings.es_api_key:
        kwargs["api_key"] = settings.es_api_key
    elif settings.es_username:
        kwargs["basic_auth"] = (settings.es_username, settings.es_password)
    if settings.es_ca_certs:
        kwargs["ca_certs"] = settings.es_ca_certs
    orjson_serializer = OrjsonSerializer()
    kwargs["serializers"] = {
        "application/json": orjson_serializer,
        "application/vnd.elasticsearch+json": orjson_serializer,
    }
    cls = AsyncElasticsearch if asynchronous else Elasticsearch
    return cls(settings.es_url, **kwargs)


def _status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if status is None:
        meta = getattr(exc, "meta", None)
        status = getattr(meta, "status", None)
    return status if isinstance(status, int) else None


def is_retriable(exc: BaseException) -> bool:
    """Connection trouble, timeouts, 429 and 5xx: Elasticsearch is away or busy, not refusing."""
    from elastic_transport import ConnectionError as TransportConnectionError
    from elastic_transport import ConnectionTimeout

    if isinstance(exc, TransportConnectionError | ConnectionTimeout | OSError | TimeoutError):
        return True
    status = _status_of(exc)
    # 401/403 on the whole request: credentials revoked or expired while running. Waiting for
    # an operator to fix them is backpressure; dead-lettering every event would lose the stream.
    return status is None or status in _RETRY_STATUS or status >= 500 or status in (401, 403)


class BulkWriter:
    """Writes batches of ECS documents; retries what Elasticsearch could take later."""

    def __init__(
        self,
        client: Any,
        settings: Settings,
        *,
        metrics: Metrics = METRICS,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        index_prefix: str | None = None,
    ) -> None:
        self.client = client
        self.prefix = index_prefix or settings.index_prefix
        self.max_retries = settings.bulk_max_retries
        self.backoff_max = settings.bulk_backoff_max_s
        self.metrics = metrics
        self.sleep = sleep
        self.retries = 0  # retry rounds so far (observability and tests)

    def _backoff(self, attempt: int) -> float:
        base = min(self.backoff_max, 0.1 * (2**attempt))
        return base * (0.5 + random.random() / 2)

    async def write(self, docs: Sequence[tuple[str, dict[str, Any]]]) -> list[Rejected]:
        """Index (id, document) pairs; return those refused for good."""
        dumps = orjson.dumps
        prefix = self.prefix
        return await self._write(
            [
                (doc_id, encoded_pair(doc_id, index_for(doc, prefix), dumps(doc)), doc)
                for doc_id, doc in docs
            ]
        )

    async def write_encoded(self, docs: Sequence[tuple[str, str, bytes]]) -> list[Rejected]:
        """Index (id, index, JSON bytes) triples; return those refused for good.

        The bytes must be one JSON object on one line (as orjson writes it)."""
        return await self._write(
            [
                (doc_id, encoded_pair(doc_id, index, source), source)
                for doc_id, index, source in docs
            ]
        )

    async def _write(self, items: list[tuple[str, bytes, Any]]) -> list[Rejected]:
        """(id, NDJSON of its operation, document as given) -> Rejected."""
        rejected: list[Rejected] = []
        pending = items
        attempt = 0
        m = self.metrics
        while pending:
            if attempt and self.max_retries and attempt > self.max_retries:
                rejected.extend(
                    Rejected(i, d, 503, "retries_exhausted", "Elasticsearch kept refusing")
                    for i, _, d in pending
                )
                break
            started = time.perf_counter()
            try:
                response = await self.client.bulk(
                    operations=b"".join(lines for _, lines, _ in pending), refresh=False
                )
            except Exception as exc:
                if not is_retriable(exc):
                    # The request as a whole is refused (too large, malformed): halve it until
                    # the culprit is alone, then reject that one.
                    if len(pending) > 1:
                        half = len(pending) // 2
                        rejected.extend(await self._write(pending[:half]))
                        rejected.extend(await self._write(pending[half:]))
                    else:
                        status = _status_of(exc) or 400
                        rejected.append(
                            Rejected(pending[0][0], pending[0][2], status, "request", str(exc))
                        )
                    break
                m.es_bulk_errors.labels(
                    "connection" if _status_of(exc) is None else "transport"
                ).inc()
                await self.sleep(self._backoff(attempt))
                attempt += 1
                self.retries += 1
                continue
            m.es_bulk_duration.observe(time.perf_counter() - started)
            body = response.body if hasattr(response, "body") else response
            if not body.get("errors"):
                m.es_documents.labels("created").inc(len(pending))
                break
            retry: list[tuple[str, bytes, Any]] = []
            ok = 0
            refused = len(rejected)
            for pair, item in zip(pending, body["items"], strict=True):
                result = item.get("index") or next(iter(item.values()))
                status = result.get("status", 500)
                if status < 300:
                    ok += 1
                    continue
                error = result.get("error") or {}
                etype = error.get("type", "unknown") if isinstance(error, dict) else "unknown"
                m.es_bulk_errors.labels(es_error_type_label(etype)).inc()
                if status in _RETRY_STATUS:
                    retry.append(pair)
                else:
                    reason = error.get("reason", "") if isinstance(error, dict) else str(error)
                    rejected.append(Rejected(pair[0], pair[2], status, etype, str(reason)))
            m.es_documents.labels("created").inc(ok)
            if len(rejected) > refused:
                m.es_documents.labels("error").inc(len(rejected) - refused)
            if retry:
                m.es_documents.labels("retried").inc(len(retry))
                await self.sleep(self._backoff(attempt))
                attempt += 1
                self.retries += 1
            pending = retry
        return rejected
