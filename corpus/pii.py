"""E-mail and IP addresses in a text replaced by placeholders (`webtext filter --scrub-pii`).

As datatrove's PIIFormatter: regular expressions find the candidates, and only public IP addresses are
replaced (`ipaddress`'s `is_global`: 192.168.1.1, 127.0.0.1 and 10.0.0.1 in a tutorial are nobody's).
The placeholders are fixed, reserved values, so the output is deterministic and scrubbing twice changes
nothing: `email@example.com` (example.com is reserved for documentation, RFC 2606), `0.0.0.0` and `::` (the
unspecified IPv4 and IPv6 addresses, which are not public). One address is one placeholder with no
whitespace in either, so the whitespace-separated words of a text stay the same in number.

What is not replaced: an obfuscated address ("user at example dot com"), an npm-style `name@1.2.3` (the
last label must be letters), a version or a number with more than four parts (1.2.3.4.5), an octet with a
leading zero (01.2.3.4) or above 255, a dotted date (31.12.2019), a time (12:30:45), a MAC address. A
four-part version that is also a valid public address (1.2.3.4 as such) cannot be told apart, and is.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import NamedTuple

EMAIL_PLACEHOLDER = "email@example.com"
IPV4_PLACEHOLDER = "0.0.0.0"
IPV6_PLACEHOLDER = "::"

_LOCAL = r"[A-Za-z0-9_%+-][A-Za-z0-9_%+'-]*(?:\.[A-Za-z0-9_%+'-]+)*"  # o'brien@, not the quote of 'a@b.c'
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# Not inside a longer token on either side; the top-level domain is letters (no `lodash@4.17.21`).
EMAIL = re.compile(rf"(?<![\w.%+-]){_LOCAL}@(?:{_LABEL}\.)+[A-Za-z]{{2,63}}(?![\w-])")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
# Four octets, not part of a longer dotted number (1.2.3.4.5) or word on either side.
IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\w|\.\d)")
# Candidates only: hex groups and colons, then `ipaddress` decides.
IPV6 = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")


class Scrubbed(NamedTuple):
    text: str
    emails: int  # addresses replaced
    ips: int


def scrub_pii(text: str) -> Scrubbed:
    """`text` with its e-mail addresses and public IPv4/IPv6 addresses replaced by the placeholders, and how
    many of each were replaced (a placeholder already there is left and not counted)."""
    emails = ipv4 = ipv6 = 0
    if "@" in text:
        text, emails = _replace(EMAIL, text, EMAIL_PLACEHOLDER)
    if "." in text:
        text, ipv4 = _replace(IPV4, text, IPV4_PLACEHOLDER, _public)
    if ":" in text:
        text, ipv6 = _replace(IPV6, text, IPV6_PLACEHOLDER, _public_ipv6)
    return Scrubbed(text, emails, ipv4 + ipv6)


def _replace(
    pattern: re.Pattern, text: str, placeholder: str, valid: Callable[[str], bool] = lambda _: True
) -> tuple[str, int]:
    replaced = 0

    def sub(match: re.Match) -> str:
        nonlocal replaced
        found = match.group()
        if found == placeholder or not valid(found):
            return found
        replaced += 1
        return placeholder

    return pattern.sub(sub, text), replaced


def _public(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_global
    except ValueError:
        return False


def _public_ipv6(address: str) -> bool:
    """A public IPv6 address of at least three groups: `a::b` and `ab::cd` are more often code than
    addresses."""
    return sum(1 for group in address.split(":") if group) >= 3 and _public(address)
