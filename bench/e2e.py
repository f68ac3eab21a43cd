"""End-to-end throughput, latency and CPU of the streaming pipeline on the local stack.

Measurements in one run, each on its own topics and index prefix:

1. ceiling: the ECS documents of the messages bulk-indexed straight into Elasticsearch by one
   process (the worker's BulkWriter, one batch per request, two requests in flight), until
   searchable;
2. pipeline: the messages replayed over TCP into ``ingest`` -> Kafka -> ``--workers N``
   worker(s) -> Elasticsearch, from the first byte sent until the last document is
   searchable (events/s), the workers' peak RSS and the CPU time (user + system) the workers
   and the ingest used per event (less sensitive to a busy machine than wall time);
3. latency: a replay at half the measured pipeline rate; send -> searchable latency (p50,
   p99), estimated by order: the i-th message counts as searchable at the first poll (every
   50 ms) where the index holds at least i+1 documents;
4. with ``--processing-only``: instead of 1-3, the messages are first put on ``panos.raw``
   (a backlog), then N workers that publish to ``panos.events`` without Elasticsearch
   (``worker_index`` false) drain it: events/s and CPU per event of the workers alone.

Messages are the parseable lines of deploy/demo/sample-traffic.log with unique sequence numbers
and session ids. The machine (CPU, cores, load average before and after) and the command are
printed with the figures. Needs the stack (``decryptscope stack up``). Usage:

    python bench/e2e.py [--messages 60000] [--latency-seconds 10] [--partitions 2] [--workers 1]
    python bench/e2e.py --processing-only --workers 2 --partitions 4 --messages 100000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import io
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

# run from the checkout: the test harness (tests/harness.py) is beside the package
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402

from pipeline import kafka_config, wire  # noqa: E402
from pipeline.chain import Chain, ChainConfig, Message  # noqa: E402
from pipeline.commands import replay  # noqa: E402
from pipeline.commands.demo import SAMPLE  # noqa: E402
from pipeline.commands.setup import setup as _setup  # noqa: E402
from pipeline.panos import parse_line  # noqa: E402
from pipeline.settings import Settings, load_settings  # noqa: E402
from pipeline.sinks.elasticsearch import BulkWriter, make_client  # noqa: E402
from pipeline.stream.indexing import MAX_IN_FLIGHT  # noqa: E402
from tests.harness import Services, isolated_settings, wait_group  # noqa: E402


def setup(s: Settings, **kwargs) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        _setup(s, **kwargs)


# Firewalls the messages come from, round robin: panos.raw is keyed by serial, so this is
# what spreads them over partitions (and workers).
FIREWALLS = 16


def make_messages(count: int, offset: int = 0) -> list[bytes]:
    """``count`` syslog messages with unique seqno/sessionid (so unique document ids), from
    ``FIREWALLS`` firewalls in turn."""
    templates = []
    for line in replay.prepare(replay.read_lines([SAMPLE]), now=True):
        try:
            record = parse_line(line)
        except Exception:
            continue
        parts = line.split(b",")
        seq = str(record.get("seqno")).encode()
        sid = str(record.get("sessionid")).encode()
        serial = str(record.get("serial")).encode()
        if seq in parts and sid in parts and parts[2:3] == [serial]:
            templates.append((parts, parts.index(seq), parts.index(sid)))
    out = []
    for n in range(offset, offset + count):
        parts, seq_at, sid_at = templates[n % len(templates)]
        parts = list(parts)
        parts[2] = b"0128010%05d" % (n % FIREWALLS)
        parts[seq_at] = b"%d" % (9_000_000_000_000_000_000 + n)
        parts[sid_at] = b"%d" % (100_000 + n)
        out.append(b",".join(parts))
    return out


def run_settings(base: Settings, tag: str, partitions: int) -> Settings:
    return isolated_settings(
        base,
        tag,
        Path(tempfile.mkdtemp(prefix=f"{tag}-worker-")),
        topic_partitions=partitions,
        syslog_tls_cert="",
    )


def count(client, index: str) -> int:
    try:
        return client.count(index=index)["count"]
    except Exception:
        return 0


def documents(s: Settings, messages: list[bytes]) -> list[tuple[str, str, bytes]]:
    result = Chain(ChainConfig.from_settings(s)).run(
        [Message(m) for m in messages], {}, time.time()
    )
    return [(d.doc_id, d.index, d.source) for d in result.documents]


def ceiling(s: Settings, messages: list[bytes]) -> float:
    """Documents/s of one process bulk-indexing the ECS documents straight into ES."""
    docs = documents(s, messages)
    setup(s, kafka=False)
    client = make_client(s, asynchronous=False)

    async def index_all() -> None:
        writer = BulkWriter(make_client(s), s, index_prefix=s.index_prefix)
        batches = [docs[i : i + s.batch_size] for i in range(0, len(docs), s.batch_size)]

        async def run(mine: list) -> None:
            for batch in mine:
                await writer.write_encoded(batch)

        await asyncio.gather(*(run(batches[k::MAX_IN_FLIGHT]) for k in range(MAX_IN_FLIGHT)))
        await writer.client.close()

    started = time.perf_counter()
    asyncio.run(index_all())
    while count(client, s.index_prefix) < len(docs):
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    client.close()
    return len(docs) / elapsed


def topic_size(s: Settings, topic: str) -> int:
    """Messages on ``topic`` (the sum of its partitions' end offsets)."""
    consumer = KafkaConsumer(**kafka_config.consumer_kwargs(s))
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(parts).values()) if parts else 0
    finally:
        consumer.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_kb = 0
        self.stop = threading.Event()

    def run(self) -> None:
        status = Path(f"/proc/{self.pid}/status")
        while not self.stop.wait(0.2):
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.peak_kb = max(self.peak_kb, int(line.split()[1]))
            except OSError:
                return


def pipeline_rate(
    s: Settings, messages: list[bytes], log_dir: Path, workers: int
) -> tuple[float, list[int], list[float], float]:
    """(events/s send -> searchable, peak RSS kB and CPU µs per event of each worker, CPU µs
    per event of the ingest)."""
    setup(s)
    client = make_client(s, asynchronous=False)
    services = Services(s, log_dir, workers=workers).start()
    samplers = [RssSampler(services.pid(f"worker{i}")) for i in range(workers)]
    for sampler in samplers:
        sampler.start()
    try:
        # warm-up: the worker joins its group and indexes a first small batch
        warm = make_messages(200, offset=10_000_000)
        target = replay.Target("tcp", "127.0.0.1", s.syslog_tcp_port)
        replay.replay(warm, target, progress=False)
        while count(client, s.index_prefix) < len(warm):
            services.check_alive()
            time.sleep(0.2)
        base = count(client, s.index_prefix)
        pids = [services.pid(f"worker{i}") for i in range(workers)]
        cpu_before = [cpu_seconds(pid) for pid in pids]
        ingest_before = cpu_seconds(services.pid("ingest"))
        started = time.perf_counter()
        sender = threading.Thread(
            target=replay.replay, args=(messages, target), kwargs={"progress": False}
        )
        sender.start()
        while count(client, s.index_prefix) < base + len(messages):
            services.check_alive()
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        cpu_us = [
            (cpu_seconds(pid) - before) / len(messages) * 1e6
            for pid, before in zip(pids, cpu_before, strict=True)
        ]
        ingest_us = (cpu_seconds(services.pid("ingest")) - ingest_before) / len(messages) * 1e6
        sender.join()
        return len(messages) / elapsed, [x.peak_kb for x in samplers], cpu_us, ingest_us
    finally:
        for sampler in samplers:
            sampler.stop.set()
        services.stop()
        client.close()


def latency(
    s: Settings, rate: float, seconds: float, log_dir: Path, workers: int
) -> tuple[float, float, int]:
    """(p50, p99 seconds) of send -> searchable at ``rate`` messages/s."""
    setup(s)
    client = make_client(s, asynchronous=False)
    services = Services(s, log_dir, workers=workers).start()
    try:
        warm = make_messages(200, offset=20_000_000)
        target = replay.Target("tcp", "127.0.0.1", s.syslog_tcp_port)
        replay.replay(warm, target, progress=False)
        while count(client, s.index_prefix) < len(warm):
            services.check_alive()
            time.sleep(0.2)
        base = count(client, s.index_prefix)
        messages = make_messages(int(rate * seconds), offset=30_000_000)
        sent_at = [0.0] * len(messages)

        def on_sent(i: int, t: float) -> None:
            sent_at[i] = t

        sender = threading.Thread(
            target=replay.replay,
            args=(messages, target),
            kwargs={"rate": rate, "progress": False, "on_sent": on_sent},
        )
        sender.start()
        seen_at: list[float] = []
        while len(seen_at) < len(messages):
            n = count(client, s.index_prefix) - base
            now = time.time()
            while len(seen_at) < min(n, len(messages)):
                seen_at.append(now)
            services.check_alive()
            time.sleep(0.05)
        sender.join()
        lat = sorted(b - a for a, b in zip(sent_at, seen_at, strict=True))
        p50 = statistics.median(lat)
        p99 = lat[int(len(lat) * 0.99) - 1]
        return p50, p99, len(messages)
    finally:
        services.stop()
        client.close()


def processing_only(
    s: Settings, messages: list[bytes], log_dir: Path, workers: int
) -> tuple[float, list[float], list[int]]:
    """Workers draining a backlog on ``panos.raw`` into ``panos.events`` (no Elasticsearch):
    (events/s, CPU µs per event of each worker, peak RSS kB of each)."""
    s = dataclasses.replace(s, worker_index=False)
    setup(s, es=False)
    wanted = len(documents(s, messages))
    services = Services(s, log_dir, workers=workers).start(ingest=False)
    # every worker holds its share of the partitions before the backlog arrives
    if wait_group(s, workers, 180) == float("inf"):
        raise RuntimeError(f"the {workers} workers did not form a stable group")
    producer = KafkaProducer(**kafka_config.producer_kwargs(s))
    for m in messages:
        producer.send(s.topic_raw, value=m, key=wire.raw_key(m, "127.0.0.1"))
    producer.flush()
    producer.close()
    pids = [services.pid(f"worker{i}") for i in range(workers)]
    samplers = [RssSampler(pid) for pid in pids]
    for sampler in samplers:
        sampler.start()
    try:
        cpu_before = [cpu_seconds(pid) for pid in pids]
        started = None
        while True:
            done = topic_size(s, s.topic_events)
            if started is None and done:
                # the clock starts at the first event out: group join is not processing
                started, first, cpu_before = (
                    time.perf_counter(),
                    done,
                    [cpu_seconds(p) for p in pids],
                )
            if done >= wanted:
                break
            services.check_alive()
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
        events = wanted - first
        cpu_us = [
            (cpu_seconds(p) - b) / events * 1e6 for p, b in zip(pids, cpu_before, strict=True)
        ]
        return events / elapsed, cpu_us, [x.peak_kb for x in samplers]
    finally:
        for sampler in samplers:
            sampler.stop.set()
        services.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=60_000)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="workers in the consumer group")
    parser.add_argument(
        "--processing-only",
        action="store_true",
        help="workers drain a backlog to panos.events, without Elasticsearch",
    )
    args = parser.parse_args()
    base = load_settings()
    tag = f"bench{time.strftime('%H%M%S')}"
    log_dir = Path(tempfile.mkdtemp(prefix=f"{tag}-logs-"))
    messages = make_messages(args.messages)
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"machine: {machine()}; load average {load()} (1, 5, 15 min) before")
    print(
        f"{len(messages)} messages, {args.partitions} partitions, {args.workers} worker(s), "
        f"logs in {log_dir}",
        flush=True,
    )
    try:
        if args.processing_only:
            rate, cpu_us, rss_kb = processing_only(
                run_settings(base, f"{tag}b", args.partitions), messages, log_dir, args.workers
            )
            print(f"processing only (panos.raw backlog -> panos.events): {rate:,.0f} events/s")
            print(f"worker CPU per event: {', '.join(f'{us:,.0f} µs' for us in cpu_us)}")
            print(f"worker peak RSS: {', '.join(f'{kb / 1024:.0f} MB' for kb in rss_kb)}")
            print(f"load average {load()} after", flush=True)
            return 0
        top = ceiling(run_settings(base, f"{tag}c", args.partitions), messages)
        print(f"ceiling (one process, bulk straight to ES): {top:,.0f} docs/s", flush=True)
        rate, rss_kb, cpu_us, ingest_us = pipeline_rate(
            run_settings(base, f"{tag}p", args.partitions), messages, log_dir, args.workers
        )
        print(f"pipeline (TCP -> ingest -> Kafka -> worker -> ES searchable): {rate:,.0f} events/s")
        print(f"pipeline / ceiling: {rate / top:.2f}")
        print(f"worker peak RSS: {', '.join(f'{kb / 1024:.0f} MB' for kb in rss_kb)}")
        print(f"worker CPU per event: {', '.join(f'{us:,.0f} µs' for us in cpu_us)}")
        print(f"ingest CPU per event: {ingest_us:,.1f} µs", flush=True)
        half = rate / 2
        p50, p99, n = latency(
            run_settings(base, f"{tag}l", args.partitions),
            half,
            args.latency_seconds,
            log_dir,
            args.workers,
        )
        print(f"latency at {half:,.0f} events/s ({n} events): p50 {p50:.2f} s, p99 {p99:.2f} s")
        print(f"load average {load()} after", flush=True)
    finally:
        cleanup(base, tag)
    return 0


def cleanup(base: Settings, tag: str) -> None:
    """Remove the run's indices, templates and topics (Faust's internal ones included)."""
    from kafka.admin import KafkaAdminClient

    client = make_client(base, asynchronous=False).options(ignore_status=404)
    client.indices.delete(index=f"{tag}*", expand_wildcards="all")
    client.indices.delete_index_template(name=f"{tag}*")
    client.cluster.delete_component_template(name=f"{tag}*")
    client.close()
    admin = KafkaAdminClient(bootstrap_servers=base.kafka_bootstrap)
    ours = [t for t in admin.list_topics() if t.startswith(tag)]
    if ours:
        admin.delete_topics(ours)
    admin.close()


if __name__ == "__main__":
    sys.exit(main())
