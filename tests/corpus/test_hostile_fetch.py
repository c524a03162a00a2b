"""Every behaviour of tests/hostile_web.py against the real fetcher over real sockets: Fetcher.fetch returns
(never raises) within a bounded time with the behaviour's outcome, connects to nothing but the test server,
and what it exchanged is written to a WARC that warcio reads back byte for byte.

All behaviours are fetched once, concurrently (one virtual host each), by a module fixture; the tests then
look at the results.
"""

from __future__ import annotations

import io
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from warcio.archiveiterator import ArchiveIterator

from corpus.fetcher import OUTCOMES, Exchange, FetchConfig, Fetcher, FetchResult, is_terminal
from corpus.http_wire import Failure, validate_head
from corpus.warc import WarcFileWriter, iter_responses
from tests.hostile_web import BEHAVIOURS, HOSTILE_IP, HostileWeb, only_hostile_connections

CONFIG = FetchConfig(
    connect_timeout=1.0,
    read_timeout=1.2,  # longer than the trickle's 1 s per byte: the wall-clock cap must end it
    max_seconds=1.5,
    max_bytes=64 * 1024,
    max_retries=1,
    backoff_seconds=0.05,
    max_retry_after=1.0,
    per_host_delay=0.0,
    allowed_networks=(f"{HOSTILE_IP}/32",),  # the test server only: 127.0.0.1 stays forbidden
)
BOUND = 2 * CONFIG.max_seconds + 2.0  # robots.txt has its own cap, then the page has its own


@dataclass
class Fetched:
    results: dict[str, tuple[FetchResult, float]]  # behaviour -> (result, seconds)
    robots: list[Exchange]
    attempted: list[str]  # addresses the fetcher tried to connect to


@pytest.fixture(scope="module")
def fetched() -> Fetched:
    attempted: list[str] = []
    with pytest.MonkeyPatch.context() as patch, HostileWeb() as web:
        only_hostile_connections(patch, attempted)
        fetcher = Fetcher(CONFIG, resolver=web.resolver)

        def timed(name: str) -> tuple[str, FetchResult, float]:
            started = time.monotonic()
            result = fetcher.fetch(web.url_of(name))
            return name, result, time.monotonic() - started

        with ThreadPoolExecutor(len(BEHAVIOURS)) as pool:
            results = {name: (result, seconds) for name, result, seconds in pool.map(timed, BEHAVIOURS)}
        return Fetched(results, fetcher.robots_fetches(), attempted)


def test_there_are_many_behaviours():
    assert len(BEHAVIOURS) >= 40
    assert {b.outcome for b in BEHAVIOURS.values()} <= set(OUTCOMES)


@pytest.mark.parametrize("name", sorted(BEHAVIOURS))
def test_behaviour_ends_in_its_outcome_in_bounded_time(fetched, name):
    result, seconds = fetched.results[name]
    assert (result.outcome, name) == (BEHAVIOURS[name].outcome, name), result.detail
    assert seconds < BOUND
    assert result.detail and "\n" not in result.detail
    assert (result.body is None) == (result.outcome != "ok")


def test_nothing_but_the_test_server_was_connected_to(fetched):
    assert set(fetched.attempted) == {HOSTILE_IP}
    for name, (result, _) in fetched.results.items():
        if name.startswith("redirect-") and result.outcome == "blocked_address":
            assert result.status == 302 and result.attempts == 1  # the redirect, then nothing


def test_details_say_what_the_server_did(fetched):
    def result(name: str) -> FetchResult:
        return fetched.results[name][0]

    assert result("ctype-non-ascii").content_type == "text/html; charset=é"  # as warcio reads it back
    bad_ipv6 = result("redirect-bad-ipv6")
    assert bad_ipv6.detail.startswith("redirect: ") and bad_ipv6.final_url == "http://[::1/"
    assert is_terminal(bad_ipv6.outcome, bad_ipv6.status)
    assert "127.0.0.1" in result("redirect-loopback-hex").detail
    assert result("redirect-loopback-decimal").final_url == "http://127.0.0.1/"
    assert "wall-clock" in result("trickle").detail
    assert "Content-Length" in result("content-length-superscript").detail
    assert "not an HTTP/1.x response" in result("http09").detail
    assert result("robots-http09").detail.startswith("robots.txt: ")
    assert result("interim-forever").detail == "over 16 interim (1xx) responses"
    assert "NUL" in result("nul-in-header").detail and "bare CR" in result("bare-cr-in-header").detail
    # Retry-After is honoured up to max_retry_after (1 s here), a negative one not at all: one retry each
    assert (result("retry-after-huge").attempts, result("retry-after-negative").attempts) == (2, 2)


def test_exchanges_are_archived_byte_for_byte(fetched):
    exchanges = [e for result, _ in fetched.results.values() for e in result.exchanges] + fetched.robots
    assert len(exchanges) > len(BEHAVIOURS)
    out = io.BytesIO()
    writer = WarcFileWriter(out)
    locations = [
        writer.write_exchange(e.url, e.ip, e.fetched_at, e.request, e.response_head + e.body, e.truncated)
        for e in exchanges
    ]
    data = out.getvalue()
    blocks = [
        record.raw_stream.read()
        for record in ArchiveIterator(io.BytesIO(data), no_record_parse=True)
        if record.rec_type == "response"
    ]
    assert blocks == [e.response_head + e.body for e in exchanges]  # heads as received, non-ASCII included
    for record in ArchiveIterator(io.BytesIO(data), check_digests="raise"):  # block and payload digests
        assert record.http_headers is not None
        record.raw_stream.read()
    responses = list(iter_responses(io.BytesIO(data), "mem"))
    assert [(r.offset, r.length) for r in responses] == locations
    assert [(r.url, r.status) for r in responses] == [(e.url, e.status) for e in exchanges]
    link = next(e for e in exchanges if e.url.startswith("http://link-utf8.test:"))
    assert "Link: <https://example.org/ünïcödé.css>".encode() in link.response_head


@pytest.mark.parametrize(
    ("head", "problem"),
    [
        (b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n", "NUL byte"),
        (b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", "bare CR"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 2OO OK\r\n\r\n", "malformed status line"),
        (b"<html>\n\n", "malformed status line"),
    ],
)
def test_heads_that_are_refused(head, problem):
    with pytest.raises(Failure, match=problem) as refused:
        validate_head(head)
    assert refused.value.outcome == "bad_header"


def test_heads_that_are_allowed():
    assert validate_head(b"HTTP/1.1 200 \xc3\x93K\r\nContent-Length: 7, 7\r\n\r\n") == (
        200,
        {"content-length": "7"},
    )
    assert validate_head(b"HTTP/1.0 404\nLink: <\xc3\xa9>\n\n")[0] == 404


def test_a_bug_in_the_fetcher_is_a_result_not_an_exception(monkeypatch):
    def broken(*args):
        raise RuntimeError("a bug")

    monkeypatch.setattr("corpus.fetcher.decode_body", broken)
    with HostileWeb() as web:
        result = Fetcher(CONFIG, resolver=web.resolver).fetch(web.url_of("wrong-charset"))
    assert (result.outcome, result.detail, result.body) == ("internal_error", "RuntimeError: a bug", None)
    assert not is_terminal(result.outcome, result.status)  # a rerun (after the fix) tries again


def test_the_server_stops_itself():
    with HostileWeb(lifetime=0.2) as web:
        address = (HOSTILE_IP, web.port)
        socket.create_connection(address, timeout=1).close()  # serving
        time.sleep(1.0)  # its lifetime ends, whatever the test does
        with pytest.raises(OSError):
            socket.create_connection(address, timeout=1)
