"""Community ID flow hash, version 1 (https://github.com/corelight/community-id-spec).

A small, allocation-light implementation for the per-event path; tests check it against the
reference implementation (the ``communityid`` package)."""

from __future__ import annotations

import binascii
import hashlib
import socket
import struct

_PROTO_NUMBERS = {
    "icmp": 1,
    "tcp": 6,
    "udp": 17,
    "gre": 47,
    "esp": 50,
    "ipv6-icmp": 58,
    "icmp6": 58,
    "icmpv6": 58,
    "sctp": 132,
}
_PORTED = frozenset({6, 17, 132})
_ICMP = frozenset({1, 58})
# ICMP message types that have a reply counterpart: the pair is treated as one bidirectional flow.
_ICMP4_PAIRS = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 17: 18, 18: 17, 10: 9, 9: 10}
_ICMP6_PAIRS = {
    128: 129,
    129: 128,
    133: 134,
    134: 133,
    135: 136,
    136: 135,
    130: 131,
    131: 130,
    144: 145,
    145: 144,
}
_sha1 = hashlib.sha1
_b64 = binascii.b2a_base64
_pton = socket.inet_pton
_AF4, _AF6 = socket.AF_INET, socket.AF_INET6
# The hashed tuple in one pack per flow: seed, source and destination address, protocol,
# padding, and (for ported protocols and ICMP) the two ports / type and code.
_PORTED4 = struct.Struct("!H4s4sBBHH").pack
_PORTED6 = struct.Struct("!H16s16sBBHH").pack
_PORTLESS4 = struct.Struct("!H4s4sBB").pack
_PORTLESS6 = struct.Struct("!H16s16sBB").pack


def proto_number(proto: str | int) -> int | None:
    if isinstance(proto, int):
        return proto
    if proto.isdigit():
        return int(proto)
    return _PROTO_NUMBERS.get(proto.lower())


def community_id(
    src: str,
    dst: str,
    proto: str | int,
    sport: int | None = None,
    dport: int | None = None,
    *,
    seed: int = 0,
) -> str | None:
    """``1:<base64 sha1>`` for the flow, or None when the protocol or an address is unknown."""
    number = _PROTO_NUMBERS.get(proto) if proto.__class__ is str else None
    if number is None:
        number = proto_number(proto)
        # The protocol is one byte of the hashed tuple: anything else is not a protocol.
        if number is None or not 0 <= number <= 255:
            return None
    try:
        if ":" in src or ":" in dst:
            a1, a2 = _pton(_AF6, src), _pton(_AF6, dst)
            ported, portless = _PORTED6, _PORTLESS6
        else:
            a1, a2 = _pton(_AF4, src), _pton(_AF4, dst)
            ported, portless = _PORTED4, _PORTLESS4
    except (OSError, ValueError):
        return None
    if number in _PORTED or number in _ICMP:
        if sport is None or dport is None or not (0 <= sport <= 65535 and 0 <= dport <= 65535):
            return None
        p1, p2 = sport, dport
        one_way = False
        if number in _ICMP:
            pairs = _ICMP4_PAIRS if number == 1 else _ICMP6_PAIRS
            if p1 in pairs:
                p2 = pairs[p1]
            else:
                one_way = True
        if not one_way and (a2 < a1 or (a1 == a2 and p2 < p1)):
            a1, a2, p1, p2 = a2, a1, p2, p1
        data = ported(seed, a1, a2, number, 0, p1, p2)
    else:
        if a2 < a1:
            a1, a2 = a2, a1
        data = portless(seed, a1, a2, number, 0)
    return "1:" + _b64(_sha1(data).digest(), newline=False).decode("ascii")
