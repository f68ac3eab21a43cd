"""Parsing throughput: framing + parse + ECS + JSON per event, on one core.

Generates a mixed PAN-OS corpus (DECRYPTION failures and successes, TRAFFIC, THREAT, each with
a BSD syslog header; documentation IP ranges), streamed from a generator, never held in
memory, and measures:

* decryptscope: ``parse_line`` -> ``to_ecs`` -> ``orjson.dumps``;
* a naive baseline on the same lines in the same run: stdlib ``csv`` reader, ``dict(zip(names,
  row))`` over the full layout, ``orjson.dumps``;
* peak memory (max RSS of a child process) of the decryptscope loop for two corpus sizes,
  to show it is flat.

Throughput is given by wall clock and per CPU-second of this process (on a shared machine the
second is the steadier one-core figure), for each run and as the median of the runs, with the
machine, the command and the load average before and after.

Run: ``python bench/parse.py [--events 200000] [--runs 3] [--profile]``
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import gc
import itertools
import os
import platform
import pstats
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import NamedTuple

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


class Rates(NamedTuple):
    """Events per second of decryptscope and of the baseline over the same events, by wall
    clock and by the CPU time of this process (the one-core figure that time-sharing with
    other processes does not dilute)."""

    events: int
    ours_wall: float
    base_wall: float
    ours_cpu: float
    base_cpu: float


def measure(n: int, chunk: int = 5_000) -> Rates:
    """Both loops run on the same chunk of lines, one after the other and in alternating
    order (so neither always runs on caches the other warmed), so that load from other
    processes on a shared machine hits both alike; corpus generation is not timed. A full
    collection before each loop keeps one's garbage out of the other's time."""
    wall, cpu = time.perf_counter, time.process_time
    spent = {"ours": [0.0, 0.0], "base": [0.0, 0.0]}
    loops = {"ours": decryptscope_pipeline, "base": naive_baseline}
    count = 0
    lines = corpus(n)
    for turn in itertools.count():
        batch = list(itertools.islice(lines, chunk))
        if not batch:
            break
        for name in ("ours", "base") if turn % 2 == 0 else ("base", "ours"):
            fn = loops[name]
            gc.collect()
            w0, c0 = wall(), cpu()
            for line in batch:
                fn(line)
            spent[name][0] += wall() - w0
            spent[name][1] += cpu() - c0
        count += len(batch)
    (ow, oc), (bw, bc) = spent["ours"], spent["base"]
    return Rates(count, count / ow, count / bw, count / oc, count / bc)


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


def machine_info() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            model = next(
                (line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")),
                model,
            )
    except OSError:
        pass
    return (
        f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}, "
        f"{platform.python_implementation()} {platform.python_version()}"
    )


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3, help="measurements; the median is kept")
    parser.add_argument("--profile", action="store_true", help="cProfile the decryptscope loop")
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        _rss_child(args.rss_child)
        return
    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {machine_info()}; measured on one core")
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        for line in corpus(min(args.events, 50_000)):
            decryptscope_pipeline(line)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(20)
        return
    print(f"load average (1, 5, 15 min) before: {_load()}")
    measure(2_000)  # warm up: layouts, caches
    runs = []
    for i in range(1, args.runs + 1):
        r = measure(args.events)
        runs.append(r)
        print(
            f"run {i}: {r.events} events; events/s wall: decryptscope {r.ours_wall:,.0f}, "
            f"baseline {r.base_wall:,.0f}, ratio {r.ours_wall / r.base_wall:.2f}x; "
            f"events/s per CPU-second: decryptscope {r.ours_cpu:,.0f}, "
            f"baseline {r.base_cpu:,.0f}, ratio {r.ours_cpu / r.base_cpu:.2f}x"
        )

    ours_cpu = statistics.median([r.ours_cpu for r in runs])
    base_cpu = statistics.median([r.base_cpu for r in runs])
    ours_wall = statistics.median([r.ours_wall for r in runs])
    base_wall = statistics.median([r.base_wall for r in runs])
    print(f"median of {len(runs)} runs:")
    print(
        f"  decryptscope (frame+parse+ECS+JSON): {ours_wall:,.0f} "
        f"events/s wall, {ours_cpu:,.0f} events per CPU-second"
    )
    print(
        f"  naive baseline (csv+dict+JSON):      {base_wall:,.0f} "
        f"events/s wall, {base_cpu:,.0f} events per CPU-second"
    )
    print(
        f"  ratio: {statistics.median([r.ours_wall / r.base_wall for r in runs]):.2f}x wall, "
        f"{statistics.median([r.ours_cpu / r.base_cpu for r in runs]):.2f}x CPU"
    )
    small, large = max(args.events // 10, 1_000), args.events
    print(f"max RSS, {small} events: {max_rss(small):.1f} MiB")
    print(f"max RSS, {large} events: {max_rss(large):.1f} MiB")
    print(f"load average (1, 5, 15 min) after: {_load()}")


if __name__ == "__main__":
    main()
