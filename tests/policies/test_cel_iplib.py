"""The IP/CIDR library with the Kubernetes CEL names."""

from __future__ import annotations

import pytest

from celgate.policies.cel import CelEvalError, ExprContext, check, compile_program

CTX = ExprContext("IPFilter", "match")


def ev(src: str) -> object:
    return compile_program(src, CTX).evaluate({"variables": {}})


@pytest.mark.parametrize(
    ("src", "expected"),
    [
        ('cidr("10.0.0.0/8").containsIP(ip("10.1.2.3"))', True),
        ('cidr("10.0.0.0/8").containsIP("11.1.2.3")', False),
        ('cidr("10.0.0.0/8").containsIP("::ffff:10.1.2.3")', True),
        ('cidr("2001:db8::/32").containsIP("10.1.2.3")', False),
        ('cidr("10.0.0.0/8").containsCIDR("10.2.0.0/16")', True),
        ('cidr("10.0.0.0/16").containsCIDR(cidr("10.0.0.0/8"))', False),
        ('isIP("1.2.3.4") && isIP("::1") && !isIP("1.2.3") && !isIP("fe80::1%eth0")', True),
        ('isCIDR("1.2.3.0/24") && !isCIDR("1.2.3.4") && !isCIDR("1.2.3.0/33")', True),
        ('ip("1.2.3.4").family() == 4 && ip("::1").family() == 6', True),
        ('ip("127.0.0.1").isLoopback() && ip("::1").isLoopback() && !ip("8.8.8.8").isLoopback()', True),
        ('ip("0.0.0.0").isUnspecified()', True),
        ('ip("169.254.1.1").isLinkLocalUnicast() && ip("224.0.0.1").isLinkLocalMulticast()', True),
        ('ip("8.8.8.8").isGlobalUnicast() && !ip("127.0.0.1").isGlobalUnicast()', True),
        ('cidr("10.1.2.3/8").masked() == cidr("10.0.0.0/8")', True),
        ('cidr("10.1.2.3/8").prefixLength()', 8),
        ('cidr("10.1.2.3/8").ip() == ip("10.1.2.3")', True),
        ('ip("::ffff:1.2.3.4") == ip("1.2.3.4")', True),
        ('isCanonical("2001:db8::1") && !isCanonical("2001:DB8::1")', True),
    ],
)
def test_ip_library(src: str, expected: object) -> None:
    assert ev(src) == expected


def test_invalid_address_is_an_evaluation_error_not_an_exception() -> None:
    with pytest.raises(CelEvalError, match="does not appear to be an IPv4 or IPv6 address"):
        ev('ip("not-an-ip").family() == 4')


def test_library_types_are_checked() -> None:
    assert check('"10.0.0.0/8".containsIP("1.2.3.4")', CTX).issues
    assert check('cidr("10.0.0.0/8").containsIP(3)', CTX).issues
    assert check('ip("1.2.3.4").family() == "4"', CTX).issues
