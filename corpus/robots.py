"""What the fetcher may contact, and when: robots.txt, per-host pacing, Retry-After, address rules.

Pure rules, no I/O (corpus/fetcher.py does the fetching).

``robots_policy`` turns the outcome of fetching ``/robots.txt`` into a policy (RFC 9309, urllib.robotparser):

- a 2xx response (or one cut at ``ROBOTS_MAX_BYTES``: the first 500 KiB are parsed, as Google does) is parsed;
  its Content-Type is not checked and undecodable bytes are replaced;
- 4xx other than 429: the file is unavailable, everything is allowed (RFC 9309 2.3.1.3); a redirect loop,
  too many redirects, a redirect to a non-http(s) URL (2.3.1.2) or an undecodable body count as unavailable;
- 429 or 5xx: the server is in trouble, everything is disallowed ("robots.txt unavailable", 2.3.1.4);
- a network failure (timeout, connection_error, dns_error, tls_error, blocked_address) or a response that is
  not HTTP (bad_header): no page request is made and the page gets that same outcome, with a "robots.txt:"
  detail.

``Crawl-delay`` and ``Request-rate`` lines whose value is not a plain ASCII number are ignored: the standard
parser calls ``int()`` on anything ``str.isdigit`` accepts ("²", a 5,000-digit number) and would raise.
"""

from __future__ import annotations

import ipaddress
import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

ROBOTS_MAX_BYTES = 500 * 1024
MAX_CRAWL_DELAY = 60.0
NETWORK_OUTCOMES = frozenset(
    {"timeout", "connection_error", "dns_error", "tls_error", "blocked_address", "bad_header"}
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
NUMERIC_LINES = {
    "crawl-delay": re.compile(r"[0-9]{1,6}"),
    "request-rate": re.compile(r"[0-9]{1,6}/[0-9]{1,6}"),
}


@dataclass(frozen=True)
class RobotsPolicy:
    """What one origin's robots.txt says to our user agent."""

    user_agent: str
    parser: RobotFileParser | None = None  # None: the same answer (``allow``) for every path
    allow: bool = True
    reason: str = ""  # why everything is disallowed, for details
    failure: tuple[str, str] | None = None  # (outcome, detail) when robots.txt could not be fetched at all

    def allows(self, url: str) -> bool:
        if self.parser is None:
            return self.allow
        return self.parser.can_fetch(self.user_agent, url)

    def why_not(self, url: str) -> str:
        if self.parser is None:
            return self.reason
        path = urlsplit(url).path or "/"
        return f"robots.txt disallows {path} for {self.user_agent.split('/')[0]}"

    @property
    def crawl_delay(self) -> float:
        """The Crawl-delay for our user agent in seconds (0 when none), capped at MAX_CRAWL_DELAY."""
        delay = self.parser.crawl_delay(self.user_agent) if self.parser is not None else None
        return min(float(delay), MAX_CRAWL_DELAY) if delay else 0.0


def parse_robots(text: str, user_agent: str) -> RobotsPolicy:
    """A policy from robots.txt text."""
    parser = RobotFileParser()
    parser.parse(line for line in text.splitlines() if _parseable(line))
    return RobotsPolicy(user_agent, parser)


def _parseable(line: str) -> bool:
    """False for a Crawl-delay or Request-rate line the standard parser would crash on."""
    name, _, value = line.split("#", 1)[0].partition(":")
    number = NUMERIC_LINES.get(name.strip().lower())
    return number is None or bool(number.fullmatch(value.strip().replace(" ", "")))


def robots_policy(
    outcome: str, status: int | None, body: bytes | None, detail: str, user_agent: str
) -> RobotsPolicy:
    """The policy for an origin from the outcome of fetching its robots.txt (see the module docstring)."""
    if outcome in ("ok", "too_large") and body is not None:
        return parse_robots(body.decode("utf-8", errors="replace"), user_agent)
    if outcome in NETWORK_OUTCOMES:
        return RobotsPolicy(user_agent, failure=(outcome, f"robots.txt: {detail}"))
    if outcome == "http_error" and status is not None and (status == 429 or status >= 500):
        return RobotsPolicy(user_agent, allow=False, reason=f"robots.txt unavailable (HTTP {status})")
    return RobotsPolicy(user_agent, allow=True)


@dataclass
class _HostState:
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_end: float = -math.inf


class HostPacer:
    """At least ``delay`` seconds between the end of one request to a host and the start of the next.

    A host's requests are serialized by its own lock (one connection at a time, as polite crawlers do);
    requests to different hosts never wait for each other. Thread-safe.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
    ):
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._hosts: dict[str, _HostState] = {}

    @contextmanager
    def turn(self, host: str, delay: float) -> Iterator[float]:
        """Hold the host's turn for one request; yields the seconds spent waiting for it."""
        with self._lock:
            state = self._hosts.setdefault(host, _HostState())
        start = self._clock()
        with state.lock:
            wait = state.last_end + delay - self._clock()
            if wait > 0:
                self._sleep(wait)
            try:
                yield self._clock() - start
            finally:
                state.last_end = self._clock()


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or an HTTP date); None if absent or invalid."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"[0-9]+", value):  # not str.isdigit: float("²") raises
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _embedded_ipv4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64), if any."""
    if ip.version == 4:
        return None
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.ipv4_mapped or ip.sixtofour


def address_allowed(
    ip_text: str, allow_private: bool = False, allowed_networks: tuple[ipaddress._BaseNetwork, ...] = ()
) -> bool:
    """True for a public unicast address, or one the config allows. Raises ValueError for a non-address.

    Private, loopback, link-local, multicast, reserved, unspecified and shared (100.64/10) addresses are not
    public; an IPv6 address carrying an IPv4 one (mapped, 6to4, NAT64) is judged by the IPv4 address.
    """
    ip = ipaddress.ip_address(ip_text)
    effective = _embedded_ipv4(ip) or ip  # where packets to ip really go
    if allow_private or any(a in net for a in (ip, effective) for net in allowed_networks):
        return True
    return effective.is_global and not effective.is_multicast and not effective.is_reserved
