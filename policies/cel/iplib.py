"""The IP/CIDR CEL library, with the Kubernetes CEL names.

`ip(s)`, `cidr(s)`, `isIP(s)`, `isCIDR(s)`, `ip.family()`, `ip.isLoopback()`,
`ip.isUnspecified()`, `ip.isLinkLocalMulticast()`, `ip.isLinkLocalUnicast()`,
`ip.isGlobalUnicast()`, `cidr.containsIP(ip|string)`, `cidr.containsCIDR(cidr|string)`,
`cidr.ip()`, `cidr.masked()`, `cidr.prefixLength()`, `ip.isCanonical(s)`.

Values are the tiny `celgate.policy.v1.IP` / `CIDR` messages (canonical text + family), so
equality is by canonical form. Parsing is cached. An IPv4-mapped IPv6 address
(`::ffff:10.0.0.1`) is treated as the IPv4 address it maps, so it matches IPv4 ranges (the
policy contract's rule for IPFilter, applied to the library too; Kubernetes rejects such
addresses instead). Invalid input is a CEL evaluation error (the policy's failurePolicy).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any

from cel_expr_python import cel

from celgate.policies.cel.messages import PACKAGE, message_class

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_IP = message_class("IP")
_CIDR = message_class("CIDR")
IP_TYPE = cel.Type(f"{PACKAGE}.IP")
CIDR_TYPE = cel.Type(f"{PACKAGE}.CIDR")


@lru_cache(maxsize=4096)
def parse_ip(text: str) -> IPAddress:
    """An address, IPv4-mapped IPv6 unmapped to IPv4; ValueError if invalid.

    Zones (`fe80::1%eth0`) are rejected, as in Kubernetes.
    """
    if "%" in text:
        raise ValueError(f"IP address {text!r} must not have a zone")
    addr = ipaddress.ip_address(text.strip() if text != text.strip() else text)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


@lru_cache(maxsize=4096)
def parse_cidr(text: str) -> IPNetwork:
    """A network in CIDR form (host bits may be set, as in Kubernetes' `cidr()`)."""
    if "/" not in text:
        raise ValueError(f"CIDR {text!r} has no prefix length")
    net = ipaddress.ip_network(text, strict=False)
    if (
        isinstance(net, ipaddress.IPv6Network)
        and net.network_address.ipv4_mapped is not None
        and net.prefixlen >= 96
    ):
        return ipaddress.IPv4Network((net.network_address.ipv4_mapped, net.prefixlen - 96))
    return net


def is_ip(text: str) -> bool:
    try:
        parse_ip(text)
    except ValueError:
        return False
    return True


def is_cidr(text: str) -> bool:
    try:
        parse_cidr(text)
    except ValueError:
        return False
    return True


def contains(net: IPNetwork, addr: IPAddress) -> bool:
    return addr.version == net.version and addr in net


# --- CEL bindings -------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _ip_msg(text: str) -> Any:
    addr = parse_ip(text)
    return _IP(text=str(addr), family=addr.version)


@lru_cache(maxsize=4096)
def _cidr_msg(text: str) -> Any:
    net = parse_cidr(text)
    # Keep the address as written (canonicalised) with its prefix, like Kubernetes.
    addr = parse_ip(text.split("/", 1)[0])
    return _CIDR(text=f"{addr}/{net.prefixlen}", family=net.version)


def _ip_of(msg: Any) -> IPAddress:
    return parse_ip(msg.text)


def _net_of(msg: Any) -> IPNetwork:
    return parse_cidr(msg.text)


def _contains_ip(c: Any, a: Any) -> bool:
    return contains(_net_of(c), _ip_of(a) if not isinstance(a, str) else parse_ip(a))


def _contains_cidr(c: Any, other: Any) -> bool:
    outer = _net_of(c)
    inner = parse_cidr(other) if isinstance(other, str) else _net_of(other)
    return inner.version == outer.version and inner.subnet_of(outer)  # type: ignore[arg-type]


def _is_global_unicast(a: Any) -> bool:
    addr = _ip_of(a)
    if addr.is_multicast or addr.is_loopback or addr.is_link_local or addr.is_unspecified:
        return False
    return not (addr.version == 4 and addr == ipaddress.IPv4Address("255.255.255.255"))


def _is_link_local_multicast(a: Any) -> bool:
    addr = _ip_of(a)
    if addr.version == 4:
        return addr in ipaddress.IPv4Network("224.0.0.0/24")
    return addr in ipaddress.IPv6Network("ff02::/16")


def _masked(c: Any) -> Any:
    net = _net_of(c)
    return _CIDR(text=str(net), family=net.version)


def _is_canonical(text: str) -> bool:
    addr = parse_ip(text)
    return str(addr) == text


_S, _B, _I = cel.Type.STRING, cel.Type.BOOL, cel.Type.INT


def function_decls() -> list[cel.FunctionDecl]:
    """The library's CEL declarations with their implementations."""

    def o(oid: str, ret: cel.Type, params: list[cel.Type], impl: Any, member: bool = False) -> cel.Overload:
        return cel.Overload(oid, ret, params, is_member=member, impl=impl)

    return [
        cel.FunctionDecl(
            "ip",
            [
                o("ip_string", IP_TYPE, [_S], _ip_msg),
                o("cidr_ip", IP_TYPE, [CIDR_TYPE], lambda c: _ip_msg(c.text.split("/")[0]), True),
            ],
        ),
        cel.FunctionDecl("cidr", [o("cidr_string", CIDR_TYPE, [_S], _cidr_msg)]),
        cel.FunctionDecl("isIP", [o("is_ip_string", _B, [_S], is_ip)]),
        cel.FunctionDecl("isCIDR", [o("is_cidr_string", _B, [_S], is_cidr)]),
        cel.FunctionDecl(
            "family",
            [
                o("ip_family", _I, [IP_TYPE], lambda a: a.family, True),
            ],
        ),
        cel.FunctionDecl(
            "isLoopback",
            [
                o("ip_is_loopback", _B, [IP_TYPE], lambda a: _ip_of(a).is_loopback, True),
            ],
        ),
        cel.FunctionDecl(
            "isUnspecified",
            [
                o("ip_is_unspecified", _B, [IP_TYPE], lambda a: _ip_of(a).is_unspecified, True),
            ],
        ),
        cel.FunctionDecl(
            "isLinkLocalMulticast",
            [
                o("ip_is_link_local_multicast", _B, [IP_TYPE], _is_link_local_multicast, True),
            ],
        ),
        cel.FunctionDecl(
            "isLinkLocalUnicast",
            [
                o(
                    "ip_is_link_local_unicast",
                    _B,
                    [IP_TYPE],
                    lambda a: _ip_of(a).is_link_local and not _ip_of(a).is_multicast,
                    True,
                ),
            ],
        ),
        cel.FunctionDecl(
            "isGlobalUnicast",
            [
                o("ip_is_global_unicast", _B, [IP_TYPE], _is_global_unicast, True),
            ],
        ),
        cel.FunctionDecl("isCanonical", [o("ip_is_canonical", _B, [_S], _is_canonical)]),
        cel.FunctionDecl(
            "containsIP",
            [
                o("cidr_contains_ip_ip", _B, [CIDR_TYPE, IP_TYPE], _contains_ip, True),
                o("cidr_contains_ip_string", _B, [CIDR_TYPE, _S], _contains_ip, True),
            ],
        ),
        cel.FunctionDecl(
            "containsCIDR",
            [
                o("cidr_contains_cidr_cidr", _B, [CIDR_TYPE, CIDR_TYPE], _contains_cidr, True),
                o("cidr_contains_cidr_string", _B, [CIDR_TYPE, _S], _contains_cidr, True),
            ],
        ),
        cel.FunctionDecl(
            "prefixLength",
            [
                o("cidr_prefix_length", _I, [CIDR_TYPE], lambda c: _net_of(c).prefixlen, True),
            ],
        ),
        cel.FunctionDecl("masked", [o("cidr_masked", CIDR_TYPE, [CIDR_TYPE], _masked, True)]),
    ]
