"""Parsing throughput: framing + parse + ECS + JSON per event, on one core.

Generates a mixed PAN-OS corpus (DECRYPTION failures and successes, TRAFFIC, THREAT, each with
a BSD syslog header; documentation IP ranges), streamed from a generator, never held in
memory, and measures:

* decryptscope: ``parse_line`` -> ``to_ecs`` -> ``orjson.dumps``;
* a naive baseline on the same lines in the same run: stdlib ``csv`` reader, ``dict(zip(names,
  row))`` over the full layout, ``orjson.dumps``;
* peak memory (max RSS of a child process) of the decryptscope loop for two corpus sizes,
  to show it is flat.

Run: ``python bench/parse.py [--events 200000] [--profile]``
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import gc
import itertools
import platform
import pstats
import random
import resource
import subprocess
import sys
import time
from collections.abc import Iterator

import orjson

from pipeline.ecs import to_ecs
from pipeline.panos import parse_line
from pipeline.panos.layouts import layouts

LAYOUTS = layouts()
HEADER = "<14>Nov 27 {hh:02d}:{mm:02d}:{ss:02d} fw-edge-{fw:02d} "
ERRORS = [
    ("Certificate", "Received fatal alert UnknownCA from client", "Certificate", "Client_Hello"),
    (
        "Certificate",
        "Received fatal alert CertificateUnknown from client",
        "Server_Hello",
        "Finished",
    ),
    (
        "Protocol",
        "General TLS protocol error. Received fatal alert HandshakeFailure from server",
        "Client_Hello",
        "Server_Hello",
    ),
    ("Version", "Unsupported protocol version TLS1.0 from server", "Client_Hello", "Client_Hello"),
]
CHARACTERISTIC = (
    '"used-by-malware,able-to-transfer-file,has-known-vulnerability,tunnel-other-application"'
)


def _join(log_type: str, values: dict[str, str], count: int) -> str:
    names = LAYOUTS[log_type].names[:count]
    cols = [values.get(n, "") for n in names]
    cols[0] = "1"
    return ",".join(cols)


def corpus(n: int, seed: int = 7) -> Iterator[bytes]:
    """``n`` syslog messages, generated lazily: 35% DECRYPTION failure, 15% DECRYPTION
    success, 40% TRAFFIC, 10% THREAT (url)."""
    rng = random.Random(seed)
    for i in range(n):
        sec = i // 50  # ~50 events per second of firewall time
        hh, mm, ss = (sec // 3600) % 24, (sec // 60) % 60, sec % 60
        t = f"2026/11/27 {hh:02d}:{mm:02d}:{ss:02d}"
        v = {
            "receive_time": t,
            "serial": f"0132010000{i % 8:02d}",
            "subtype": "0",
            "config_ver": "2562",
            "time_generated": t,
            "src": f"192.0.2.{rng.randrange(1, 255)}",
            "dst": f"203.0.113.{rng.randrange(1, 255)}",
            "natsrc": f"198.51.100.{rng.randrange(1, 255)}",
            "natdst": "0.0.0.0",
            "rule": "allow-web",
            "srcuser": "example\\alice",
            "app": "ssl",
            "vsys": "vsys1",
            "from": "trust",
            "to": "untrust",
            "inbound_if": "ethernet1/2",
            "outbound_if": "ethernet1/1",
            "logset": "fwd",
            "time_logged": t,
            "sessionid": str(rng.randrange(1, 1 << 24)),
            "repeatcnt": "1",
            "sport": str(rng.randrange(1024, 65535)),
            "dport": "443",
            "natsport": str(rng.randrange(1024, 65535)),
            "natdport": "443",
            "flags": "0x1400000",
            "proto": "tcp",
            "action": "allow",
            "tunnel": "N/A",
            "seqno": str(7_300_000_000_000_000_000 + i),
            "actionflags": "0x8000000000000000",
            "dg_hier_level_1": "0",
            "dg_hier_level_2": "0",
            "dg_hier_level_3": "0",
            "dg_hier_level_4": "0",
            "device_name": f"fw-edge-{i % 8:02d}",
            "vsys_id": "1",
            "high_res_timestamp": f"2026-11-27T{hh:02d}:{mm:02d}:{ss:02d}.{i % 1000:03d}+01:00",
            "subcategory_of_app": "encrypted-tunnel",
            "category_of_app": "networking",
            "technology_of_app": "browser-based",
            "risk_of_app": "4",
            "characteristic_of_app": CHARACTERISTIC,
            "tunneled_app": "ssl",
            "is_saas_of_app": "no",
            "sanctioned_state_of_app": "no",
        }
        r = rng.random()
        if r < 0.5:
            v["type"] = "DECRYPTION"
            v.update(
                tls_version="TLS1.2",
                tls_keyxchg="ECDHE",
                tls_enc="AES_128_GCM",
                tls_auth="SHA256",
                policy_name="decrypt-outbound",
                ec_curve="secp256r1",
                proxy_type="Forward",
                cert_serial=f"{rng.getrandbits(64):016x}",
                fingerprint=f"{rng.getrandbits(256):064x}",
                notbefore="2026/01/01 00:00:00",
                notafter="2027/01/01 00:00:00",
                cert_ver="V3",
                cert_size="2048",
                cn_len="16",
                issuer_len="14",
                rootcn_len="12",
                sni_len="16",
                cert_flags=":::::RSA",
                cn=f"app{i % 500}.example.test",
                issuer_cn="Example Sub CA",
                root_cn="Example Root",
                sni=f"app{i % 500}.example.test",
            )
            if r < 0.35:
                err_index, error, c2f, f2s = ERRORS[i % len(ERRORS)]
                v.update(
                    err_index=err_index,
                    error=error,
                    hs_stage_c2f=c2f,
                    hs_stage_f2s=f2s,
                    root_status="untrusted",
                    chain_status="Untrusted",
                )
            else:
                v.update(
                    err_index="None",
                    hs_stage_c2f="Finished",
                    hs_stage_f2s="Finished",
                    root_status="trusted",
                    chain_status="Trusted",
                )
            body = _join("DECRYPTION", v, 107)
        elif r < 0.9:
            v.update(
                type="TRAFFIC",
                subtype="end",
                bytes="5120",
                bytes_sent="1024",
                bytes_received="4096",
                packets="20",
                start=t,
                elapsed=str(rng.randrange(0, 600)),
                category="computer-and-internet-info",
                srcloc="192.0.2.0-192.0.2.255",
                dstloc="US",
                pkts_sent="9",
                pkts_received="11",
                session_end_reason=rng.choice(
                    ["tcp-fin", "tcp-rst-from-client", "decrypt-error", "aged-out"]
                ),
                action_source="from-policy",
                offloaded="0",
            )
            body = _join("TRAFFIC", v, 115)
        else:
            v.update(
                type="THREAT",
                subtype="url",
                misc=f"www{i % 97}.example.test/path?q={i}",
                threatid="(9999)",
                category="computer-and-internet-info",
                severity="informational",
                direction="client-to-server",
                contenttype="text/html",
                user_agent="Mozilla/5.0",
                http_method="get",
                action="alert",
            )
            body = _join("THREAT", v, 121)
        yield (HEADER.format(hh=hh, mm=mm, ss=ss, fw=i % 8) + body).encode()


def decryptscope_pipeline(line: bytes) -> bytes:
    return orjson.dumps(to_ecs(parse_line(line)))


_NAMES = {t: layout.names for t, layout in LAYOUTS.items()}


def naive_baseline(line: bytes) -> bytes:
    row = next(csv.reader([line.decode("utf-8", "replace")]))
    return orjson.dumps(dict(zip(_NAMES[row[3]], row, strict=False)))


def measure(n: int, chunk: int = 5_000) -> tuple[float, float, int]:
    """Events per second of decryptscope and of the baseline over the same ``n`` events.

    Both run on the same chunk of lines, one after the other, so that load from other
    processes on a shared machine hits both alike; corpus generation is not timed."""
    clock = time.perf_counter
    ours = base = 0.0
    count = 0
    lines = corpus(n)
    while True:
        batch = list(itertools.islice(lines, chunk))
        if not batch:
            break
        gc.collect()
        start = clock()
        for line in batch:
            decryptscope_pipeline(line)
        ours += clock() - start
        gc.collect()
        start = clock()
        for line in batch:
            naive_baseline(line)
        base += clock() - start
        count += len(batch)
    return count / ours, count / base, count


def max_rss(n: int) -> float:
    """Peak resident memory (MiB) of a fresh process that runs the decryptscope loop over ``n``
    events: the same for 10x more events means memory does not grow with the stream."""
    done = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(n)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout.strip()) / 1024


def _rss_child(n: int) -> None:
    for line in corpus(n):
        decryptscope_pipeline(line)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--profile", action="store_true", help="cProfile the decryptscope loop")
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        _rss_child(args.rss_child)
        return
    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, Python {platform.python_version()}, one core")
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        for line in corpus(min(args.events, 50_000)):
            decryptscope_pipeline(line)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(20)
        return
    measure(2_000)  # warm up: layouts, caches
    ours, base, n = measure(args.events)
    print(f"events: {n}")
    print(f"decryptscope (frame+parse+ECS+JSON): {ours:,.0f} events/s")
    print(f"naive baseline (csv+dict+JSON):      {base:,.0f} events/s")
    print(f"ratio: {ours / base:.2f}x")
    small, large = max(args.events // 10, 1_000), args.events
    print(f"max RSS, {small} events: {max_rss(small):.1f} MiB")
    print(f"max RSS, {large} events: {max_rss(large):.1f} MiB")


if __name__ == "__main__":
    main()
