"""The fetcher against a hostile local web server: real sockets on 127.0.0.1, no mocked network.

A guard on socket.connect records every connection attempt and fails the test on any address other than
loopback, so the blocked-address tests prove nothing was attempted (and nothing can leak if they regress).
"""

from __future__ import annotations

import gzip
import ipaddress
import itertools
import re
import socket
import ssl
import time
import tracemalloc
import zlib
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
import trustme

from corpus.fetcher import OUTCOMES, RETRYABLE_OUTCOMES, FetchConfig, Fetcher, is_terminal
from corpus.http_wire import decode_body, numeric_ipv4, parse_head
from corpus.robots import address_allowed, parse_retry_after
from tests.fake_web import PAGE, FakeWeb, gzip_bomb

UA = FetchConfig().user_agent
ARTICLE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Bike lanes approved</title></head>
<body><article><h1>City council approves new bike lanes</h1>
<p>The council voted 7–2 on Tuesday to build 12 km of protected lanes – “a start”, said the mayor.</p>
</article></body></html>
""".encode()
_names = itertools.count()


def loopback_resolver(host: str, port: int) -> list[str]:
    """Every *.test name is this machine; anything else does not exist (no DNS query ever leaves)."""
    if host.endswith(".test"):
        return ["127.0.0.1"]
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def make_fetcher(resolver=loopback_resolver, ssl_context=None, **overrides) -> Fetcher:
    """A fetcher with small limits so that every hostile endpoint ends in a second or two."""
    settings = {
        "connect_timeout": 1.0,
        "read_timeout": 1.0,
        "max_seconds": 2.0,
        "max_bytes": 64 * 1024,
        "backoff_seconds": 0.05,
        "max_retry_after": 2.0,
        "per_host_delay": 0.0,
        "allowed_networks": ("127.0.0.0/8",),
    } | overrides
    return Fetcher(FetchConfig(**settings), resolver=resolver, ssl_context=ssl_context)


@pytest.fixture(autouse=True)
def connections(monkeypatch) -> list[str]:
    """Addresses the code under test tried to connect to; anything but loopback fails the test at once."""
    attempted: list[str] = []
    real_connect = socket.socket.connect

    def guarded_connect(sock, address):
        attempted.append(address[0])
        if address[0] not in ("127.0.0.1", "::1"):
            raise AssertionError(f"connection attempted to {address}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    return attempted


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    article = tmp_path_factory.mktemp("pages") / "article.html"
    article.write_bytes(ARTICLE)
    with FakeWeb(pages={"/article": article}) as server:
        yield server


@pytest.fixture
def host() -> str:
    """A fresh virtual host per test: its own robots.txt, pacing and stateful endpoints."""
    return f"site{next(_names)}.test"


def gaps(hits) -> list[float]:
    times = sorted(h.time for h in hits)
    return [b - a for a, b in itertools.pairwise(times)]


# --- the taxonomy -----------------------------------------------------------------------------------------


def test_outcomes_and_retryability():
    assert len(set(OUTCOMES)) == len(OUTCOMES) == 16
    assert set(OUTCOMES) >= RETRYABLE_OUTCOMES
    assert not is_terminal("timeout", None) and not is_terminal("connection_error", 200)
    assert not is_terminal("dns_error", None) and not is_terminal("internal_error", None)
    assert is_terminal("bad_header", 200) and is_terminal("invalid_redirect", 302)
    assert not is_terminal("http_error", 429) and not is_terminal("http_error", 503)
    assert is_terminal("http_error", 404) and is_terminal("http_error", 410)
    terminal = ("ok", "too_large", "bad_content_type", "robots_disallowed", "blocked_address", "tls_error")
    assert all(is_terminal(outcome, 200) for outcome in terminal)
    assert is_terminal("redirect_loop", 302) and is_terminal("invalid_url", None)


# --- a real page, raw bytes -------------------------------------------------------------------------------


def test_page_is_fetched_with_exact_raw_bytes(web, host, connections):
    fetcher = make_fetcher()
    url = web.url("/article", host)
    result = fetcher.fetch(url)
    assert result.outcome == "ok", result.detail
    assert (result.status, result.final_url, result.attempts, result.body) == (200, url, 1, ARTICLE)
    assert result.content_type == "text/html; charset=utf-8"
    [exchange] = result.exchanges
    [hit] = web.hits(host, "/article")
    assert exchange.response_head == hit.sent_head
    assert exchange.response_head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert exchange.response_head.endswith(b"\r\n\r\n")
    assert exchange.body == ARTICLE and exchange.truncated is None
    assert (exchange.url, exchange.ip, exchange.status) == (url, "127.0.0.1", 200)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", exchange.fetched_at)
    request_line, *header_lines = exchange.request.decode().removesuffix("\r\n\r\n").split("\r\n")
    assert request_line == "GET /article HTTP/1.1"
    sent = dict(line.split(": ", 1) for line in header_lines)
    assert sent == {name: hit.headers[name] for name in sent}  # what the server received
    assert sent["Host"] == f"{host}:{web.port}" and sent["User-Agent"] == UA
    # robots.txt was asked for first (404: everything allowed), with our User-Agent, and kept for the WARC
    [robots_hit] = web.hits(host, "/robots.txt")
    assert robots_hit.headers["User-Agent"] == UA and robots_hit.time < hit.time
    assert [(e.url, e.status) for e in fetcher.robots_fetches()] == [(web.url("/robots.txt", host), 404)]
    assert connections == ["127.0.0.1", "127.0.0.1"]


def test_gzip_and_chunked_bodies(web, host):
    fetcher = make_fetcher()
    gzipped = fetcher.fetch(web.url("/gzip-page", host))
    assert gzipped.outcome == "ok" and gzipped.body == PAGE
    [exchange] = gzipped.exchanges
    assert b"Content-Encoding: gzip\r\n" in exchange.response_head
    assert gzip.decompress(exchange.body) == PAGE  # kept as on the wire: still encoded
    chunked = fetcher.fetch(web.url("/chunked", host))
    assert chunked.outcome == "ok" and chunked.body == PAGE
    [exchange] = chunked.exchanges
    assert exchange.response_head == web.hits(host, "/chunked")[0].sent_head
    assert b"Transfer-Encoding: chunked\r\n" in exchange.response_head and exchange.body == PAGE  # de-chunked


# --- every hostile endpoint ends with its documented outcome ----------------------------------------------


@pytest.mark.parametrize(
    ("path", "outcome"),
    [
        ("/drip", "timeout"),
        ("/stall", "timeout"),
        ("/huge", "too_large"),
        ("/gzip-bomb", "too_large"),
        ("/lying-length", "connection_error"),
        ("/reset", "connection_error"),
        ("/loop/a", "redirect_loop"),
        ("/chain/6", "too_many_redirects"),
        ("/chain/5", "ok"),
        ("/redirect-private", "blocked_address"),
        ("/redirect-metadata", "blocked_address"),
        ("/redirect?to=ftp://files.example/x.html", "invalid_redirect"),
        ("/redirect?to=http://[::1/", "invalid_redirect"),
        ("/binary", "bad_content_type"),
        ("/pdf", "bad_content_type"),
        ("/bad-charset", "ok"),
        ("/404", "http_error"),
        ("/status/500", "http_error"),
    ],
)
def test_hostile_endpoint_outcome(web, host, connections, path, outcome):
    fetcher = make_fetcher()
    started = time.monotonic()
    result = fetcher.fetch(web.url(path, host))
    assert result.outcome == outcome, result.detail
    assert time.monotonic() - started < fetcher.config.max_seconds + 1.0
    assert set(connections) == {"127.0.0.1"}
    assert (result.body is None) == (outcome != "ok")
    assert "\n" not in result.detail


def test_slow_drip_ends_at_the_wall_clock_cap(web, host):
    started = time.monotonic()
    result = make_fetcher(max_seconds=1.5, read_timeout=1.0).fetch(web.url("/drip", host))
    elapsed = time.monotonic() - started
    assert result.outcome == "timeout" and "wall-clock" in result.detail
    assert 1.4 < elapsed < 2.5
    [exchange] = result.exchanges
    assert exchange.status == 200 and exchange.truncated == "time" and 3 <= len(exchange.body) <= 10


def test_stalled_body_ends_at_the_read_timeout(web, host):
    started = time.monotonic()
    result = make_fetcher(read_timeout=0.5).fetch(web.url("/stall", host))
    assert result.outcome == "timeout" and "read timeout" in result.detail
    assert time.monotonic() - started < 1.5
    assert result.status == 200 and result.exchanges[0].truncated == "time"


def test_body_over_the_cap_is_cut_and_kept(web, host):
    result = make_fetcher(max_bytes=100_000).fetch(web.url("/huge", host))
    assert (result.outcome, result.status, result.body) == ("too_large", 200, None)
    [exchange] = result.exchanges
    assert len(exchange.body) == 100_000 and exchange.truncated == "length"


def test_gzip_bomb_is_refused_with_bounded_memory(web, host):
    result = make_fetcher().fetch(web.url("/gzip-bomb", host))
    assert result.outcome == "too_large" and result.body is None
    [exchange] = result.exchanges
    assert exchange.body == gzip_bomb() and exchange.truncated is None  # the raw body was complete
    tracemalloc.start()
    decoded, over = decode_body(gzip_bomb(), "gzip", 64 * 1024)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert over and len(decoded) == 64 * 1024
    assert peak < 1 * 2**20  # 16 MiB when decoded whole


def test_lying_content_length_and_reset_are_retried_connection_errors(web, host):
    fetcher = make_fetcher()
    lying = fetcher.fetch(web.url("/lying-length", host))
    assert lying.outcome == "connection_error" and "incomplete body: 100 of 1000 bytes" in lying.detail
    assert lying.attempts == 3 and len(web.hits(host, "/lying-length")) == 3
    assert all(e.truncated == "disconnect" and len(e.body) == 100 for e in lying.exchanges)
    reset = fetcher.fetch(web.url("/reset", host))
    assert reset.outcome == "connection_error" and reset.attempts == 3
    assert not is_terminal(reset.outcome, reset.status)


def test_redirects(web, host):
    fetcher = make_fetcher()
    chain = fetcher.fetch(web.url("/chain/5", host))
    assert chain.outcome == "ok" and chain.final_url == web.url("/chain/0", host)
    assert [e.url for e in chain.exchanges] == [web.url(f"/chain/{n}", host) for n in range(5, -1, -1)]
    assert [e.status for e in chain.exchanges] == [302] * 5 + [200]
    too_many = fetcher.fetch(web.url("/chain/6", host))
    assert too_many.outcome == "too_many_redirects" and len(too_many.exchanges) == 6
    assert too_many.status == 302 and is_terminal(too_many.outcome, too_many.status)
    loop = fetcher.fetch(web.url("/loop/a", host))
    assert loop.outcome == "redirect_loop" and len(loop.exchanges) == 2
    assert loop.final_url == web.url("/loop/a", host)
    ftp = fetcher.fetch(web.url("/redirect?to=ftp://files.example/x.html", host))
    assert ftp.outcome == "invalid_redirect" and ftp.detail.startswith("redirect: ")
    assert ftp.final_url == "ftp://files.example/x.html"


def test_content_type_checks(web, host):
    fetcher = make_fetcher()
    binary = fetcher.fetch(web.url("/binary", host))
    assert binary.outcome == "bad_content_type" and "NUL" in binary.detail
    assert binary.content_type == "text/html; charset=utf-8"
    pdf = fetcher.fetch(web.url("/pdf", host))
    assert pdf.outcome == "bad_content_type" and pdf.content_type == "application/pdf"
    # an unknown charset is the extractor's business: the bytes are passed on as they are
    charset = fetcher.fetch(web.url("/bad-charset", host))
    assert charset.outcome == "ok" and charset.body == PAGE and charset.content_type.endswith("foobar-99")


def test_http_errors(web, host):
    fetcher = make_fetcher()
    missing = fetcher.fetch(web.url("/404", host))
    assert (missing.outcome, missing.status, missing.attempts) == ("http_error", 404, 1)
    assert is_terminal(missing.outcome, missing.status)
    broken = fetcher.fetch(web.url("/status/500", host))
    assert (broken.outcome, broken.status, broken.attempts) == ("http_error", 500, 3)
    assert not is_terminal(broken.outcome, broken.status)


# --- retries ----------------------------------------------------------------------------------------------


def test_503_then_200_is_retried(web, host):
    result = make_fetcher().fetch(web.url("/flaky", host))
    assert (result.outcome, result.attempts) == ("ok", 2)
    assert [e.status for e in result.exchanges] == [503, 200]


def test_retry_after_is_honoured(web, host):
    result = make_fetcher(backoff_seconds=0.01, max_seconds=3.0).fetch(web.url("/retry-after", host))
    assert (result.outcome, result.attempts, result.body) == ("ok", 2, PAGE)
    [gap] = gaps(web.hits(host, "/retry-after"))
    assert gap >= 1.0


def test_no_retry_past_the_wall_clock_cap(web, host):
    started = time.monotonic()
    result = make_fetcher(max_seconds=0.5).fetch(web.url("/retry-after", host))
    assert (result.outcome, result.status, result.attempts) == ("http_error", 429, 1)
    assert time.monotonic() - started < 0.5


def test_parse_retry_after():
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after("1") == 1.0 and parse_retry_after(" 120 ") == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now) == 30.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now) == 0.0
    assert [parse_retry_after(v) for v in ("soon", "", None, "-1")] == [None] * 4


# --- politeness -------------------------------------------------------------------------------------------


def test_per_host_delay_across_threads(web, host):
    fetcher = make_fetcher(per_host_delay=0.3)
    urls = [web.url(f"/article?n={i}", host) for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(fetcher.fetch, urls))
    assert [r.outcome for r in results] == ["ok"] * 4
    hits = web.hits(host)
    assert len(hits) == 5 and min(hits, key=lambda h: h.time).path == "/robots.txt"  # fetched once, first
    assert min(gaps(hits)) >= 0.3


def test_hosts_are_not_serialized_against_each_other(web):
    fetcher = make_fetcher(per_host_delay=0.3)
    hosts = [f"site{next(_names)}.test" for _ in range(2)]
    urls = [web.url(f"/article?n={i}", h) for h in hosts for i in range(3)]
    started = time.monotonic()
    with ThreadPoolExecutor(6) as pool:
        assert {r.outcome for r in pool.map(fetcher.fetch, urls)} == {"ok"}
    elapsed = time.monotonic() - started
    for h in hosts:
        assert len(web.hits(h)) == 4 and min(gaps(web.hits(h))) >= 0.3
    assert elapsed < 1.6  # one host after the other would take >= 7 gaps of 0.3 s
    first_a, first_b = (min(hit.time for hit in web.hits(h)) for h in hosts)
    assert abs(first_a - first_b) < 0.2


def test_crawl_delay_larger_than_per_host_delay_wins(web, host):
    web.robots[host] = "User-agent: *\nCrawl-delay: 1\n"
    fetcher = make_fetcher(per_host_delay=0.1)
    for i in range(2):
        assert fetcher.fetch(web.url(f"/article?n={i}", host)).outcome == "ok"
    hits = web.hits(host)
    assert [h.path for h in hits] == ["/robots.txt", "/article?n=0", "/article?n=1"]
    assert min(gaps(hits)) >= 1.0


def test_robots_disallow_is_obeyed_without_requesting_the_page(web, host, connections):
    web.robots[host] = "User-agent: *\nDisallow: /private\n"
    fetcher = make_fetcher()
    result = fetcher.fetch(web.url("/private/page", host))
    assert (result.outcome, result.attempts, result.status) == ("robots_disallowed", 0, None)
    assert "/private/page" in result.detail and result.exchanges == []
    assert fetcher.fetch(web.url("/article", host)).outcome == "ok"
    assert [h.path for h in web.hits(host)] == ["/robots.txt", "/article"]


def test_robots_group_for_our_user_agent(web, host):
    web.robots[host] = "User-agent: webtext-fetch\nDisallow: /\n\nUser-agent: *\nDisallow:\n"
    assert make_fetcher().fetch(web.url("/article", host)).outcome == "robots_disallowed"
    other = make_fetcher(user_agent="otherbot/1.0").fetch(web.url("/article", host))
    assert other.outcome == "ok"


@pytest.mark.parametrize(("robots", "outcome"), [(503, "robots_disallowed"), (404, "ok"), (410, "ok")])
def test_robots_status(web, host, robots, outcome):
    web.robots[host] = robots
    result = make_fetcher().fetch(web.url("/article", host))
    assert result.outcome == outcome
    if outcome == "robots_disallowed":
        assert result.detail.startswith("robots.txt unavailable") and not web.hits(host, "/article")


def test_robots_can_be_ignored(web, host):
    web.robots[host] = "User-agent: *\nDisallow: /\n"
    assert make_fetcher(respect_robots=False).fetch(web.url("/article", host)).outcome == "ok"
    assert [h.path for h in web.hits(host)] == ["/article"]


# --- addresses --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "allowed"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("::ffff:93.184.216.34", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("239.255.255.250", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:169.254.169.254", False),
        ("2002:a00:1::", False),  # 6to4 for 10.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 for 169.254.169.254
    ],
)
def test_address_allowed(ip, allowed):
    assert address_allowed(ip) is allowed


@pytest.mark.parametrize(
    ("host", "ip"),
    [
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("2852039166", "169.254.169.254"),
        ("10.0.0.1.", "10.0.0.1"),
        ("93.184.216.34", "93.184.216.34"),
        ("example.com", None),
        ("::ffff:127.0.0.1", None),  # IPv6 literals are ipaddress's business
    ],
)
def test_numeric_hosts_are_read_as_browsers_read_them(host, ip):
    assert numeric_ipv4(host) == ip


@pytest.mark.parametrize("host", ["999999999999", "1.2.3.4.5", "1.256.0.0", "08.1.1.1", "example.123"])
def test_numeric_hosts_that_are_no_address(host):
    with pytest.raises(ValueError):
        numeric_ipv4(host)


def test_allowed_networks_and_private_flag():
    net = ipaddress.ip_network("127.0.0.0/8")
    assert address_allowed("127.0.0.2", allowed_networks=(net,))
    assert address_allowed("::ffff:127.0.0.1", allowed_networks=(net,))
    assert not address_allowed("10.0.0.1", allowed_networks=(net,))
    assert address_allowed("10.0.0.1", allow_private=True)


@pytest.mark.parametrize(
    ("url", "resolver"),
    [
        ("http://localhost:{port}/article", None),  # the system resolver (/etc/hosts)
        ("http://{host}:{port}/article", loopback_resolver),
        ("http://127.0.0.1:{port}/article", loopback_resolver),
        ("http://[::ffff:127.0.0.1]:{port}/article", loopback_resolver),
        ("http://[::1]:{port}/article", loopback_resolver),
    ],
)
def test_loopback_is_refused_before_connecting(web, host, connections, url, resolver):
    before = len(web.hits())
    result = make_fetcher(resolver=resolver, allowed_networks=()).fetch(url.format(host=host, port=web.port))
    assert (result.outcome, result.attempts, result.exchanges) == ("blocked_address", 0, [])
    assert connections == [] and len(web.hits()) == before


def test_private_network_flag_allows_loopback(web, host):
    result = make_fetcher(resolver=None, allowed_networks=(), allow_private_network=True).fetch(
        f"http://localhost:{web.port}/article"
    )
    # localhost may resolve to ::1 first: nothing listens there, the next checked address is tried
    assert result.outcome == "ok" and result.exchanges[0].ip == "127.0.0.1"


@pytest.mark.parametrize(
    ("path", "target"),
    [("/redirect-private", "10.0.0.1"), ("/redirect-metadata", "169.254.169.254")],
)
def test_redirect_to_private_address_is_refused(web, host, connections, path, target):
    result = make_fetcher().fetch(web.url(path, host))
    assert result.outcome == "blocked_address" and target in result.detail
    assert result.final_url.startswith(f"http://{target}/") and result.status == 302
    assert connections == ["127.0.0.1", "127.0.0.1"]  # robots.txt and the redirect, nothing else


def test_dns_rebinding_connects_to_the_checked_address(web, host, connections):
    answers: list[str] = []

    def rebinding(name: str, port: int) -> list[str]:
        answers.append("127.0.0.1" if not answers else "10.0.0.1")
        return [answers[-1]]

    fetcher = make_fetcher(resolver=rebinding, respect_robots=False)
    first = fetcher.fetch(web.url("/article", host))
    assert first.outcome == "ok" and first.exchanges[0].ip == "127.0.0.1"
    assert answers == ["127.0.0.1"] and connections == ["127.0.0.1"]  # resolved once, connected to that
    second = fetcher.fetch(web.url("/article", host))
    assert second.outcome == "blocked_address" and "10.0.0.1" in second.detail
    assert connections == ["127.0.0.1"]
    # robots.txt goes through the same checks: its own resolution is the rebound one
    answers.clear()
    connections.clear()
    with_robots = make_fetcher(resolver=rebinding).fetch(web.url("/article", host))
    assert with_robots.outcome == "blocked_address" and with_robots.detail.startswith("robots.txt:")
    assert connections == []


def test_dns_errors(web, host, connections):
    def failing(name: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    url = web.url("/article", host)
    assert make_fetcher(resolver=failing).fetch(url).outcome == "dns_error"
    assert make_fetcher(resolver=lambda name, port: []).fetch(url).outcome == "dns_error"
    assert make_fetcher(resolver=lambda name, port: ["not-an-ip"]).fetch(url).outcome == "dns_error"
    assert connections == []


def test_connection_refused(host):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    url = f"http://{host}:{port}/article"
    result = make_fetcher(respect_robots=False).fetch(url)
    assert (result.outcome, result.attempts, result.status) == ("connection_error", 3, None)
    via_robots = make_fetcher().fetch(url)  # robots.txt unreachable: the page gets the network outcome
    assert via_robots.outcome == "connection_error" and via_robots.detail.startswith("robots.txt:")


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "ftp://files.example/x",
        "javascript:alert(1)",
        "http:///no-host",
        "http://a.test:99999/",
        "http://exa mple.test/",
        "http://[::1/",
        "http://[zz]/",
        "http://a\u2100b/",
        "http://999999999999/",  # a numeric host out of the IPv4 range
    ],
)
def test_invalid_urls(url, connections):
    result = make_fetcher().fetch(url)
    assert (result.outcome, result.attempts, result.final_url) == ("invalid_url", 0, url)
    assert connections == []


# --- TLS --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_web(ca):
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("secure.test").configure_cert(server_context)
    with FakeWeb(pages={"/article": ARTICLE}, tls=server_context) as server:
        yield server


@pytest.fixture
def trusting(ca) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def test_https_with_a_trusted_certificate(tls_web, trusting):
    result = make_fetcher(ssl_context=trusting).fetch(tls_web.url("/article", "secure.test"))
    assert result.outcome == "ok" and result.body == ARTICLE
    assert result.exchanges[0].url.startswith("https://secure.test:")
    assert parse_head(result.exchanges[0].response_head)[0] == 200


def test_https_untrusted_or_wrong_name_is_a_tls_error(tls_web, trusting):
    served = len(tls_web.hits(path="/article"))
    untrusted = make_fetcher(respect_robots=False).fetch(tls_web.url("/article", "secure.test"))
    assert untrusted.outcome == "tls_error" and "certificate" in untrusted.detail
    assert untrusted.exchanges == [] and is_terminal(untrusted.outcome, untrusted.status)
    via_robots = make_fetcher().fetch(tls_web.url("/article", "secure.test"))
    assert via_robots.outcome == "tls_error"
    wrong_name = make_fetcher(ssl_context=trusting).fetch(tls_web.url("/article", "other.test"))
    assert wrong_name.outcome == "tls_error" and "other.test" in wrong_name.detail
    assert len(tls_web.hits(path="/article")) == served  # no request got past the handshake


# --- decoding ---------------------------------------------------------------------------------------------


def test_decode_body():
    assert decode_body(gzip.compress(PAGE) * 2, "gzip", 10_000) == (PAGE * 2, False)  # two gzip members
    assert decode_body(zlib.compress(PAGE), "deflate", 10_000) == (PAGE, False)
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    assert decode_body(raw.compress(PAGE) + raw.flush(), "Deflate", 10_000) == (PAGE, False)
    assert decode_body(PAGE, "identity", 10) == (PAGE[:10], True)
    assert decode_body(PAGE, "", len(PAGE)) == (PAGE, False)
    with pytest.raises(ValueError):
        decode_body(PAGE, "br", 100)
    with pytest.raises(zlib.error):
        decode_body(b"not gzip at all", "gzip", 100)
