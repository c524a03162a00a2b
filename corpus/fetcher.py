"""Polite, defensive HTTP(S) fetching of one URL at a time, keeping the raw bytes for WARC records.

``Fetcher.fetch(url)`` never raises, whatever a server sends (a bug of ours is ``internal_error``);
``FetchResult.outcome`` is one of (retry?: whether a later run should retry it, as ``is_terminal`` says):

| outcome            | retry? | meaning                                                                  |
|--------------------|--------|--------------------------------------------------------------------------|
| ok                 | no     | final response 2xx, allowed Content-Type, whole body within max_bytes    |
| http_error         | 429/5xx| final status not 2xx after retries (>= 400, or a 3xx without Location)   |
| timeout            | yes    | connect or read timeout, or the per-URL wall-clock cap (max_seconds)     |
| too_large          | no     | body or gzip/deflate-decoded body over max_bytes (the raw body is cut)   |
| bad_content_type   | no     | Content-Type not allowed, NUL bytes in the first KiB, bad encoding       |
| robots_disallowed  | no     | robots.txt disallows the URL, or it answered 429/5xx (unavailable)       |
| blocked_address    | no     | a hop's host resolves to a non-public address (any one of its addresses) |
| dns_error          | yes    | the host does not resolve                                                |
| connection_error   | yes    | refused, reset or closed before the whole response, bad body framing     |
| tls_error          | no     | certificate verification or TLS handshake failure                        |
| bad_header         | no     | not an HTTP/1.x response, head over 64 KiB, NUL or bare CR bytes in it,  |
|                    |        | bad or conflicting Content-Length, over 16 interim (1xx) responses       |
| redirect_loop      | no     | a redirect back to a URL already visited in this fetch                   |
| too_many_redirects | no     | more than max_redirects redirects                                        |
| invalid_redirect   | no     | a Location that is no http(s) URL (``http://[::1/``, ``ftp:``, a bad     |
|                    |        | numeric host)                                                            |
| invalid_url        | no     | the URL itself is unparseable or not http(s)                             |
| internal_error     | yes    | a bug in the fetcher: the exception, in one line (a rerun retries it)    |

Each hop (the first request and every redirect) resolves the host once, refuses it before any connection when
one of its addresses is not public (corpus/robots.py, ``address_allowed``), checks robots.txt (a robots.txt
unreachable for a network reason, or answered with a bad_header, gives the page that same outcome, no page
request made), waits for the host's turn (``HostPacer``), then connects to the checked address itself: no
second DNS answer, no rebinding window.

Exchanges keep the bytes as on the wire for the WARC writer: the request head as sent, the response head as
received, the body still content-encoded but de-chunked. A body cut at max_bytes is marked
``truncated="length"``, one cut by a timeout ``"time"``, one cut by the peer closing or resetting the
connection ``"disconnect"`` (the WARC-Truncated values). A gzip bomb's small raw body is complete
(``truncated=None``): only the outcome says too_large. ``exchanges`` holds every response received, in order,
retried ones (the 503 before a 200) and redirects included. The wall-clock cap covers every hop, retry and
backoff; waiting for the host's turn is not counted, and robots.txt is fetched under its own cap, once per
origin per Fetcher (``robots_fetches()`` lists those exchanges; a page's ``exchanges`` never holds them).
Charsets are the extractor's business: an unknown label (``charset=foobar-99``) is ok, the bytes untouched; a
missing Content-Type is bad_content_type. Hosts that spell an IPv4 address as a number (``2130706433``,
``0x7f.1``, ``0177.0.0.1``) are read as browsers read them, then checked like any address.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin

from corpus.http_wire import (
    Deadline,
    Failure,
    Reader,
    Target,
    build_request,
    decode_body,
    header_text,
    looks_binary,
    media_type,
    os_failure,
    parse_head,
    parse_target,
    read_body,
    read_head,
    utc_now,
)
from corpus.robots import (
    ROBOTS_MAX_BYTES,
    HostPacer,
    RobotsPolicy,
    address_allowed,
    parse_retry_after,
    robots_policy,
)

OUTCOMES: tuple[str, ...] = (
    "ok",
    "http_error",
    "timeout",
    "too_large",
    "bad_content_type",
    "robots_disallowed",
    "blocked_address",
    "dns_error",
    "connection_error",
    "tls_error",
    "bad_header",
    "redirect_loop",
    "too_many_redirects",
    "invalid_redirect",
    "invalid_url",
    "internal_error",
)
# http_error is retryable only with status 429 or >= 500: ask is_terminal().
RETRYABLE_OUTCOMES: frozenset[str] = frozenset(
    {"timeout", "connection_error", "dns_error", "http_error", "internal_error"}
)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
Resolver = Callable[[str, int], list[str]]


def is_terminal(outcome: str, status: int | None) -> bool:
    """True when a later run should not retry this URL."""
    if outcome == "http_error":
        return not (status is not None and (status == 429 or status >= 500))
    return outcome not in RETRYABLE_OUTCOMES


@dataclass(frozen=True)
class FetchConfig:
    user_agent: str = "webtext-fetch/0.1 (+research corpus builder)"
    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    max_seconds: float = 60.0  # wall-clock cap per URL: hops, retries, backoff (not the politeness wait)
    max_bytes: int = 5 * 2**20  # raw body cap and decoded (gzip/deflate) cap
    max_redirects: int = 5
    max_retries: int = 2  # on 429/5xx/connection errors, exponential backoff
    backoff_seconds: float = 1.0
    max_retry_after: float = 30.0  # Retry-After honoured up to this
    per_host_delay: float = 1.0  # between requests to a host (robots.txt too); a larger Crawl-delay wins
    respect_robots: bool = True
    allow_private_network: bool = False  # tests and intranets only
    allowed_networks: tuple[str, ...] = ()  # CIDRs allowed even though private (e.g. "127.0.0.0/8" in tests)
    content_types: tuple[str, ...] = ("text/html", "application/xhtml+xml")


@dataclass
class Exchange:
    """One HTTP request and its response, as on the wire, for the WARC writer."""

    url: str  # URL requested at this hop
    ip: str  # the address actually connected to
    request: bytes  # request line + headers exactly as sent (no body)
    status: int
    response_head: bytes  # status line + headers exactly as received, blank line included (1xx dropped)
    body: bytes  # body as received (still content-encoded), de-chunked, possibly cut
    truncated: str | None  # None, "length" (max_bytes), "time" (timeout / wall-clock cap) or "disconnect"
    fetched_at: str  # ISO 8601 UTC with seconds, e.g. "2026-11-22T05:42:30Z"


@dataclass
class FetchResult:
    url: str
    final_url: str  # the last URL redirects led to (== url when none), fetched or refused
    outcome: str
    status: int | None  # status of the last response received, None when none
    content_type: str | None  # that response's Content-Type header value
    detail: str  # one line: why
    exchanges: list[Exchange]  # every response received, retries and redirects included, in order
    body: bytes | None  # final body decoded from gzip/deflate, None unless ok
    attempts: int  # requests tried for this URL (all hops and retries); 0 when refused before connecting


# --- the fetcher --------------------------------------------------------------------------------------------


def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses from getaddrinfo, duplicates removed, in the system's preference order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class Fetcher:
    """Thread-safe: one Fetcher is shared by the worker threads of one process; each host is paced by a lock.

    resolver(host, port) -> IP strings (default getaddrinfo); ssl_context verifies https (default system CAs).
    """

    def __init__(
        self,
        config: FetchConfig,
        resolver: Resolver | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        ssl_context: ssl.SSLContext | None = None,
    ):
        self.config = config
        self._resolver = resolver or system_resolver
        self._clock, self._sleep = clock, sleep
        self._ssl = ssl_context or ssl.create_default_context()
        self._networks = tuple(ipaddress.ip_network(n, strict=False) for n in config.allowed_networks)
        self._pacer = HostPacer(clock, sleep)
        self._lock = threading.Lock()
        self._robots: dict[tuple[str, str, int], RobotsPolicy] = {}
        self._robots_locks: dict[tuple[str, str, int], threading.Lock] = {}
        self._robots_log: list[Exchange] = []

    def fetch(self, url: str) -> FetchResult:
        """Fetch one URL: redirects followed, retries made, the outcome classified (module docstring).

        Never raises: an exception here is a bug of ours, and it is the result ``internal_error``."""
        try:
            return self._fetch(url)
        except Exception as e:  # one URL's bug must not take the stage down
            detail = f"{type(e).__name__}: {e}"
            return FetchResult(url, url, "internal_error", None, None, detail, [], None, 0)

    def _fetch(self, url: str) -> FetchResult:
        result = self._follow(url, self.config.max_bytes, self.config.respect_robots)
        if result.outcome in ("ok", "too_large"):
            if media_type(result.content_type) not in self.config.content_types:
                result.outcome, result.detail = "bad_content_type", f"Content-Type {result.content_type!r}"
            elif result.outcome == "ok" and looks_binary(result.body or b""):
                result.outcome, result.detail = "bad_content_type", "binary content (NUL bytes)"
        if result.outcome != "ok":
            result.body = None
        return result

    def robots_fetches(self) -> list[Exchange]:
        """The robots.txt exchanges made so far (redirects included), for the WARC."""
        with self._lock:
            return list(self._robots_log)

    def _follow(self, url: str, cap: int, use_robots: bool) -> FetchResult:
        """Fetch url following redirects; ok/too_large results carry the decoded body."""
        cfg = self.config
        deadline = Deadline(cfg.max_seconds, self._clock)
        exchanges: list[Exchange] = []
        visited: set[str] = set()
        current, redirects, attempts = url, 0, 0
        last: Exchange | None = None  # the last response received

        def result(outcome: str, detail: str, body: bytes | None = None) -> FetchResult:
            ctype = parse_head(last.response_head)[1].get("content-type") if last else None
            ctype = header_text(ctype) if ctype is not None else None
            final = current if redirects else url
            status = last.status if last else None
            return FetchResult(url, final, outcome, status, ctype, detail, exchanges, body, attempts)

        while True:
            try:
                target = parse_target(current)
                current = target.url if redirects else current
                if target.url in visited:
                    raise Failure("redirect_loop", f"redirect back to {target.url}")
                if redirects > cfg.max_redirects:
                    raise Failure(
                        "too_many_redirects", f"over {cfg.max_redirects} redirects, next {target.url}"
                    )
                visited.add(target.url)
                ips = self._resolve(target)
                delay = self._robots_delay(target, deadline) if use_robots else cfg.per_host_delay
                last, failure, tries = self._request_with_retries(
                    target, ips, delay, deadline, cap, exchanges
                )
                attempts += tries
            except Failure as f:
                if redirects and f.outcome == "invalid_url":
                    return result("invalid_redirect", f"redirect: {f.detail}")
                return result(f.outcome, f.detail)
            if failure:
                return result(failure.outcome, failure.detail)
            headers = parse_head(last.response_head)[1]
            if last.status in REDIRECT_STATUSES and headers.get("location"):
                location = headers["location"].encode("latin-1").decode("utf-8", "replace")  # raw UTF-8 bytes
                redirects += 1
                try:
                    current = urljoin(target.url, location)
                except ValueError as e:  # "http://[::1/", a netloc that NFKC changes, ...
                    current = location
                    return result("invalid_redirect", f"redirect: unparseable Location {location!r}: {e}")
                continue
            if not 200 <= last.status < 300:
                return result("http_error", f"HTTP {last.status}")
            try:
                body, over = decode_body(last.body, headers.get("content-encoding", ""), cap)
            except (ValueError, zlib.error) as e:
                return result("bad_content_type", f"cannot decode body: {e}")
            if last.truncated == "length" or over:
                return result("too_large", f"body over {cap} bytes", body)
            return result("ok", f"HTTP {last.status}", body)

    def _robots_delay(self, target: Target, deadline: Deadline) -> float:
        """The wait before requesting `target` (the host's crawl delay, at least per_host_delay); raises
        robots_disallowed, or the robots.txt fetch's own failure. robots.txt time is not the page's."""
        started = self._clock()
        policy = self._robots_policy(target)
        deadline.at += self._clock() - started  # robots.txt has its own cap
        if policy.failure:
            raise Failure(*policy.failure)
        if not policy.allows(target.url):
            raise Failure("robots_disallowed", policy.why_not(target.url))
        return max(self.config.per_host_delay, policy.crawl_delay)

    def _resolve(self, target: Target) -> list[str]:
        """The host's addresses, all checked; raises dns_error or blocked_address."""
        try:
            ipaddress.ip_address(target.host)
            ips = [target.host]
        except ValueError:
            try:
                ips = list(self._resolver(target.host, target.port))
            except (OSError, UnicodeError) as e:
                raise Failure("dns_error", f"cannot resolve {target.host}: {e}") from None
        if not ips:
            raise Failure("dns_error", f"no address for {target.host}")
        for ip in ips:
            try:
                allowed = address_allowed(ip, self.config.allow_private_network, self._networks)
            except ValueError:
                raise Failure("dns_error", f"resolver gave {ip!r} for {target.host}") from None
            if not allowed:
                name = "" if ip == target.host else f"{target.host} resolves to "
                raise Failure("blocked_address", f"{name}non-public address {ip}")
        return ips

    def _robots_policy(self, target: Target) -> RobotsPolicy:
        """The origin's robots.txt policy, fetched once per origin (other threads wait for it)."""
        key = (target.scheme, target.host, target.port)
        with self._lock:
            lock = self._robots_locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._robots:
                robots_url = f"{target.scheme}://{target.host_header}/robots.txt"
                got = self._follow(robots_url, ROBOTS_MAX_BYTES, use_robots=False)
                policy = robots_policy(got.outcome, got.status, got.body, got.detail, self.config.user_agent)
                with self._lock:
                    self._robots_log.extend(got.exchanges)
                    self._robots[key] = policy
            return self._robots[key]

    def _request_with_retries(
        self,
        target: Target,
        ips: list[str],
        delay: float,
        deadline: Deadline,
        cap: int,
        exchanges: list[Exchange],
    ) -> tuple[Exchange | None, Failure | None, int]:
        """(last exchange or None, failure or None, tries): retries 429, 5xx and connection errors."""
        cfg = self.config
        tries = 0
        while True:
            tries += 1
            exchange = failure = None
            try:
                exchange, failure = self._request(target, ips, delay, deadline, cap)
                exchanges.append(exchange)
            except Failure as f:
                failure = f
            if failure:
                retry = failure.outcome == "connection_error"
            else:
                retry = exchange.status == 429 or exchange.status >= 500
            if not retry or tries > cfg.max_retries:
                return exchange, failure, tries
            wait = cfg.backoff_seconds * 2 ** (tries - 1)
            if exchange is not None and failure is None:
                retry_after = parse_retry_after(parse_head(exchange.response_head)[1].get("retry-after"))
                wait = max(wait, min(retry_after or 0.0, cfg.max_retry_after))
            if wait >= deadline.remaining():
                return exchange, failure, tries  # no time left to retry
            self._sleep(wait)

    def _request(
        self, target: Target, ips: list[str], delay: float, deadline: Deadline, cap: int
    ) -> tuple[Exchange, Failure | None]:
        """One GET in the host's turn: (exchange, failure while reading the body or None).

        Raises Failure when no response head arrived.
        """
        with self._pacer.turn(target.host, delay) as waited:
            deadline.at += waited
            request = build_request(target, self.config.user_agent)
            fetched_at = utc_now()
            sock, ip = self._connect(target, ips, deadline)
            with sock:
                try:
                    sock.settimeout(max(0.001, min(self.config.read_timeout, deadline.remaining())))
                    sock.sendall(request)
                except OSError as e:
                    raise os_failure(e, "sending the request") from None
                reader = Reader(sock, self.config.read_timeout, deadline)
                head, status, headers = read_head(reader)
                body, truncated, failure = read_body(reader, status, headers, cap)
        return Exchange(target.url, ip, request, status, head, body, truncated, fetched_at), failure

    def _connect(self, target: Target, ips: list[str], deadline: Deadline) -> tuple[socket.socket, str]:
        """A connected (and, for https, verified) socket to the first checked address that answers."""
        failure = Failure("connection_error", "no address to connect to")
        for ip in ips:
            remaining = deadline.remaining()
            if remaining <= 0:
                raise Failure("timeout", "wall-clock cap (max_seconds) reached before connecting")
            try:
                sock = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM)
            except OSError as e:  # no IPv6 on this machine
                failure = os_failure(e, f"connect to {ip} port {target.port}")
                continue
            try:
                sock.settimeout(min(self.config.connect_timeout, remaining))
                sock.connect((ip, target.port))
            except OSError as e:
                sock.close()
                failure = os_failure(e, f"connect to {ip} port {target.port}")
                continue
            if target.scheme == "http":
                return sock, ip
            try:
                return self._ssl.wrap_socket(sock, server_hostname=target.host), ip
            except ssl.SSLError as e:
                reason = getattr(e, "verify_message", "") or e.reason or e
                raise Failure("tls_error", f"TLS with {target.host}: {reason}") from None
            except OSError as e:
                raise os_failure(e, f"TLS handshake with {target.host}") from None
            finally:
                sock.close()  # the wrapped socket owns the connection now; this closes a failed one
        raise failure
