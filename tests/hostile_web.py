"""A hostile web server for the fetch tests: one virtual host per misbehaviour, each answered byte by byte.

    with HostileWeb() as web:
        fetcher = Fetcher(FetchConfig(allowed_networks=(f"{HOSTILE_IP}/32",), ...), resolver=web.resolver)
        fetcher.fetch(web.url_of("reason-non-ascii"))  # ends as BEHAVIOURS["reason-non-ascii"].outcome

Built on tests/fake_web.py (its server and hit log): the Host header picks the behaviour (``<name>.test``);
``/hostile`` is its page and ``/robots.txt`` its robots file, both served plainly unless the behaviour says
otherwise. Any other host gets FakeWeb's own endpoints.

Confinement: the server listens on HOSTILE_IP, a loopback address other than 127.0.0.1, and tests allow
only that one address (``allowed_networks=("127.0.0.2/32",)``), so every redirect into loopback (127.0.0.1
however spelled, [::1], localhost), private, link-local or metadata space must be refused by the fetcher
before any connection; ``resolver`` answers only ``*.test`` and ``localhost``, so no DNS query leaves the
machine. Every response is bounded: loops have a cap, waits end after at most STALL_SECONDS, and the
server shuts itself down after ``lifetime`` seconds whatever the test does.
"""

from __future__ import annotations

import socket
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from tests.fake_web import PAGE, PNG, FakeWeb, _Handler, gzip_bomb

HOSTILE_IP = "127.0.0.2"
START = "/hostile"  # the page URL of every behaviour
STALL_SECONDS = 20.0  # the longest any response waits or trickles
ENDLESS_BYTES = 64 * 2**20  # the most an "endless" body sends

Respond = Callable[["HostileHandler", str], None]  # (handler, request target)


@dataclass(frozen=True)
class Behaviour:
    name: str  # also the host: <name>.test
    outcome: str  # what Fetcher.fetch ends with (small caps: tests/corpus/test_hostile_fetch.py)
    what: str
    page: Respond | None = None  # None: a plain page
    robots: Respond | None = None  # None: 404 (no robots.txt)


# --- building responses -------------------------------------------------------------------------------------


def head(*lines: bytes, status: bytes = b"200 OK") -> bytes:
    return b"HTTP/1.1 " + status + b"\r\n" + b"".join(line + b"\r\n" for line in lines) + b"\r\n"


def raw(data: bytes) -> Respond:
    """Send exactly these bytes, then close."""
    return lambda h, target: h.wfile.write(data)


def page(*lines: bytes, status: bytes = b"200 OK", body: bytes = PAGE) -> Respond:
    """A response with an honest Content-Length, these header lines, and text/html unless they name a type."""
    if not any(line.lower().startswith(b"content-type:") for line in lines):
        lines = (b"Content-Type: text/html; charset=utf-8", *lines)
    return raw(head(*lines, b"Content-Length: %d" % len(body), status=status) + body)


PLAIN = page()
NO_ROBOTS = page(b"Content-Type: text/plain", status=b"404 Not Found", body=b"")


def moved(location: bytes) -> Respond:
    """302 Found to location."""
    return page(b"Location: " + location, status=b"302 Found", body=b"")


def redirect(location: bytes) -> Respond:
    """START redirects to location; any other path (where it led) is a plain page."""

    def respond(h: HostileHandler, target: str) -> None:
        (moved(location) if target == START else PLAIN)(h, target)

    return respond


def loop(h: HostileHandler, target: str) -> None:
    """START -> /loop-b -> START."""
    moved(b"/loop-b" if target == START else START.encode())(h, target)


def chain(h: HostileHandler, target: str) -> None:
    """START -> /chain/30 -> /chain/29 -> ... -> /chain/0, a page."""
    n = 31 if target == START else int(target.rsplit("/", 1)[1])
    if n == 0:
        PLAIN(h, target)
    else:
        moved(b"/chain/%d" % (n - 1))(h, target)


def endless(h: HostileHandler, target: str) -> None:
    """200 text/html with no length, then HTML as fast as the client reads (ENDLESS_BYTES at most)."""
    h.wfile.write(head(b"Content-Type: text/html", b"Connection: close"))
    block = b"<p>" + b"x" * (2**16 - 8) + b"</p>\n"
    for _ in range(ENDLESS_BYTES // len(block)):
        if h.stopping.is_set():
            return
        h.wfile.write(block)


def trickle(h: HostileHandler, target: str) -> None:
    """200 text/html with no length, then one byte a second (STALL_SECONDS at most)."""
    h.wfile.write(head(b"Content-Type: text/html", b"Connection: close"))
    for _ in range(int(STALL_SECONDS)):
        if h.stopping.wait(1.0):
            return
        h.wfile.write(b"<")


def stall(data: bytes) -> Respond:
    """Send data, then nothing (STALL_SECONDS at most)."""

    def respond(h: HostileHandler, target: str) -> None:
        h.wfile.write(data)
        h.stopping.wait(STALL_SECONDS)

    return respond


def reset(data: bytes) -> Respond:
    """Send data, then reset the connection (RST)."""

    def respond(h: HostileHandler, target: str) -> None:
        h.wfile.write(data)
        h.abort()

    return respond


def close_at_once(h: HostileHandler, target: str) -> None:
    h.close_connection = True  # nothing sent: the client reads end of stream


def interim_forever(h: HostileHandler, target: str) -> None:
    """100 Continue, over and over (1,000 at most), never a final response."""
    for _ in range(1000):
        if h.stopping.is_set():
            return
        h.wfile.write(head(status=b"100 Continue"))


def chunked(wire: bytes, *extra: bytes) -> Respond:
    """A chunked 200 text/html whose body is given as it goes on the wire."""
    return raw(head(b"Content-Type: text/html", b"Transfer-Encoding: chunked", *extra) + wire)


def wire_chunks(body: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)


@cache
def deflate_bomb() -> bytes:
    return zlib.compress(b"<p>" + b" " * (16 * 2**20) + b"</p>", 9)


def huge_robots(h: HostileHandler, target: str) -> None:
    """A 2 MiB robots.txt (mostly comments), sent with an honest length."""
    body = b"User-agent: *\nDisallow: /private\n" + b"# " + b"filler " * 300_000 + b"\n"
    page(b"Content-Type: text/plain", body=body)(h, target)


def endless_robots(h: HostileHandler, target: str) -> None:
    h.wfile.write(head(b"Content-Type: text/plain", b"Connection: close"))
    line = b"Disallow: /nothing-here\n" * 2000
    for _ in range(ENDLESS_BYTES // len(line)):
        if h.stopping.is_set():
            return
        h.wfile.write(line)


def robots_text(text: bytes) -> Respond:
    return page(b"Content-Type: text/plain", body=text)


# --- the behaviours -----------------------------------------------------------------------------------------

_UTF8_LINK = "Link: <https://example.org/ünïcödé.css>; rel=preload".encode()

BEHAVIOURS: dict[str, Behaviour] = {
    b.name: b
    for b in [
        # Heads with non-ASCII bytes: kept byte for byte in the WARC record
        Behaviour("ctype-non-ascii", "ok", "Content-Type: text/html; charset=é in raw UTF-8",
                  page("Content-Type: text/html; charset=é".encode())),
        Behaviour("ctype-non-ascii-type", "bad_content_type", "Content-Type: téxt/html",
                  page("Content-Type: téxt/html".encode())),
        Behaviour("reason-non-ascii", "ok", "status line 200 ÓK in raw UTF-8",
                  page(status="200 ÓK".encode())),
        Behaviour("link-utf8", "ok", "a raw UTF-8 Link: header", page(_UTF8_LINK)),
        Behaviour("header-invalid-utf8", "ok", "a header value of bytes that are no UTF-8",
                  page(b"X-Junk: \xff\xfe\x80")),
        Behaviour("lf-only-head", "ok", "a head with bare LF line ends",
                  raw(b"HTTP/1.1 200 OK\nContent-Type: text/html\n\n" + PAGE)),
        Behaviour("obs-fold", "ok", "a header folded onto a second line", page(b"X-Folded: a\r\n  b")),
        Behaviour("duplicate-content-type", "ok", "Content-Type twice (text/html, then application/pdf)",
                  page(b"Content-Type: text/html", b"Content-Type: application/pdf")),
        Behaviour("no-content-type", "bad_content_type", "no Content-Type at all",
                  raw(head(b"Content-Length: %d" % len(PAGE)) + PAGE)),
        # Heads the fetcher refuses
        Behaviour("nul-in-header", "bad_header", "a NUL byte in a header value", page(b"X-Bad: a\x00b")),
        Behaviour("bare-cr-in-header", "bad_header", "a bare CR inside a header value", page(b"X-Bad: a\rb")),
        Behaviour("long-header-line", "bad_header", "one 100 KB header line",
                  page(b"X-Long: " + b"a" * 100_000)),
        Behaviour("ten-thousand-headers", "bad_header", "10,000 header lines",
                  page(*(b"X-Header-%05d: value" % i for i in range(10_000)))),
        Behaviour("no-status-line", "bad_header", "headers and a body, no status line",
                  raw(b"Content-Type: text/html\r\nContent-Length: %d\r\n\r\n%s" % (len(PAGE), PAGE))),
        Behaviour("http09", "bad_header", "an HTTP/0.9 answer: the body alone, then close", raw(PAGE)),
        Behaviour("garbage-status", "bad_header", "status line HTTP/1.1 2OO OK",
                  raw(b"HTTP/1.1 2OO OK\r\nContent-Type: text/html\r\n\r\n" + PAGE)),
        Behaviour("interim-forever", "bad_header", "100 Continue, never a final response", interim_forever),
        Behaviour("content-length-garbage", "bad_header", "Content-Length: abc",
                  raw(head(b"Content-Type: text/html", b"Content-Length: abc") + PAGE)),
        Behaviour("content-length-superscript", "bad_header", "Content-Length: \xb2 (str.isdigit says yes)",
                  raw(head(b"Content-Type: text/html", b"Content-Length: \xb2") + PAGE)),
        Behaviour("content-length-negative", "bad_header", "Content-Length: -1",
                  raw(head(b"Content-Type: text/html", b"Content-Length: -1") + PAGE)),
        Behaviour("content-length-5000-digits", "bad_header", "a 5,000-digit Content-Length",
                  raw(head(b"Content-Type: text/html", b"Content-Length: " + b"9" * 5000) + PAGE)),
        Behaviour("content-length-conflict", "bad_header", "two different Content-Length headers",
                  raw(head(b"Content-Type: text/html", b"Content-Length: 10", b"Content-Length: 20") + PAGE)),
        # Framing and connections
        Behaviour("content-length-short", "connection_error", "Content-Length: 1000, 100 bytes, then close",
                  raw(head(b"Content-Type: text/html", b"Content-Length: 1000") + (PAGE * 2)[:100])),
        Behaviour("content-length-long", "ok", "Content-Length: 20 and more bytes after it",
                  raw(head(b"Content-Type: text/html", b"Content-Length: 20") + PAGE)),
        Behaviour("content-length-and-chunked", "ok", "Content-Length and Transfer-Encoding: the chunks win",
                  chunked(wire_chunks(PAGE), b"Content-Length: 5")),
        Behaviour("bad-chunk-size", "connection_error", "chunk size line zz", chunked(b"zz\r\n" + PAGE)),
        Behaviour("huge-chunk-size", "connection_error", "a chunk of 2**60 bytes announced, 100 sent",
                  chunked(b"1000000000000000\r\n" + PAGE)),
        Behaviour("endless-chunk-size-line", "connection_error", "a 10 KB chunk size line",
                  chunked(b"1" * 10_000 + b"\r\n")),
        Behaviour("empty-response", "connection_error", "the connection closed, nothing sent", close_at_once),
        Behaviour("reset-mid-header", "connection_error", "half a head, then RST",
                  reset(b"HTTP/1.1 200 OK\r\nContent-Ty")),
        Behaviour("reset-mid-body", "connection_error", "head, 100 bytes of 1000, then RST",
                  reset(head(b"Content-Type: text/html", b"Content-Length: 1000") + PAGE[:100])),
        Behaviour("stall-mid-header", "timeout", "half a head, then silence",
                  stall(b"HTTP/1.1 200 OK\r\nConte")),
        # Bodies
        Behaviour("endless-body", "too_large", "HTML without end, as fast as it is read", endless),
        Behaviour("trickle", "timeout", "one byte a second, without end", trickle),
        Behaviour("gzip-bomb", "too_large", "16 KiB of gzip that inflates to 16 MiB",
                  page(b"Content-Encoding: gzip", body=gzip_bomb())),
        Behaviour("deflate-bomb", "too_large", "16 KiB of deflate that inflates to 16 MiB",
                  page(b"Content-Encoding: deflate", body=deflate_bomb())),
        Behaviour("invalid-gzip", "bad_content_type", "Content-Encoding: gzip over bytes that are not",
                  page(b"Content-Encoding: gzip", body=b"this is not gzip at all")),
        Behaviour("unknown-encoding", "bad_content_type", "Content-Encoding: br (never asked for)",
                  page(b"Content-Encoding: br", body=b"\x1b\x03\x00")),
        Behaviour("binary-as-html", "bad_content_type", "PNG bytes served as text/html", page(body=PNG)),
        Behaviour("wrong-charset", "ok", "charset=utf-8 over Latin-1 bytes (the extractor's business)",
                  page(body=b"<html><body><p>caf\xe9 cr\xe8me br\xfbl\xe9e</p></body></html>")),
        # Retry-After abuse: never slept on beyond the caps
        Behaviour("retry-after-huge", "http_error", "503, Retry-After: 999999999",
                  page(b"Retry-After: 999999999", status=b"503 Service Unavailable")),
        Behaviour("retry-after-negative", "http_error", "429, Retry-After: -5",
                  page(b"Retry-After: -5", status=b"429 Too Many Requests")),
        Behaviour("retry-after-far-date", "http_error", "503, Retry-After in the year 9999",
                  page(b"Retry-After: Fri, 31 Dec 9999 23:59:59 GMT", status=b"503 Service Unavailable")),
        Behaviour("retry-after-superscript", "http_error", "429, Retry-After: \xb2",
                  page(b"Retry-After: \xb2", status=b"429 Too Many Requests")),
        # Redirects the fetcher cannot follow
        Behaviour("redirect-bad-ipv6", "invalid_redirect", "Location: http://[::1/", redirect(b"http://[::1/")),
        Behaviour("redirect-bad-bracket", "invalid_redirect", "Location: http://[zz]/", redirect(b"http://[zz]/")),
        Behaviour("redirect-nfkc", "invalid_redirect", "Location: http://a\u2100b/ (NFKC changes the host)",
                  redirect("http://a\u2100b/".encode())),
        Behaviour("redirect-bad-number", "invalid_redirect", "Location: http://999999999999/",
                  redirect(b"http://999999999999/")),
        Behaviour("redirect-bad-port", "invalid_redirect", "Location: http://a.test:99999/",
                  redirect(b"http://a.test:99999/")),
        Behaviour("redirect-ftp", "invalid_redirect", "Location: ftp://files.example/x",
                  redirect(b"ftp://files.example/x")),
        Behaviour("redirect-javascript", "invalid_redirect", "Location: javascript:alert(1)",
                  redirect(b"javascript:alert(1)")),
        Behaviour("redirect-empty", "http_error", "302 with an empty Location", redirect(b"")),
        Behaviour("redirect-loop", "redirect_loop", "A -> B -> A", loop),
        Behaviour("redirect-self", "redirect_loop", "a redirect to itself", redirect(START.encode())),
        Behaviour("redirect-chain", "too_many_redirects", "31 redirects in a row", chain),
        Behaviour("redirect-utf8-location", "ok", "Location: /pagé in raw UTF-8", redirect("/pagé".encode())),
        # Redirects into places the fetcher must never connect to
        *(
            Behaviour(f"redirect-{name}", "blocked_address", location, redirect(location.encode()))
            for name, location in [
                ("metadata", "http://169.254.169.254/latest/meta-data/"),
                ("metadata-decimal", "http://2852039166/latest/meta-data/"),
                ("loopback", "http://127.0.0.1/"),
                ("loopback-decimal", "http://2130706433/"),
                ("loopback-octal", "http://0177.0.0.1/"),
                ("loopback-hex", "http://0x7f.1/"),
                ("loopback-short", "http://127.1/"),
                ("loopback-mapped", "http://[::ffff:127.0.0.1]/"),
                ("loopback-v6", "http://[::1]/"),
                ("localhost", "http://localhost/"),
                ("private-10", "http://10.0.0.1/"),
                ("private-192", "http://192.168.1.1/"),
                ("private-172", "http://172.16.0.1/"),
                ("zero", "http://0/"),
                ("link-local-v6", "http://[fe80::1]/"),
                ("6to4-metadata", "http://[2002:a9fe:a9fe::]/"),
                ("nat64-metadata", "http://[64:ff9b::a9fe:a9fe]/"),
            ]
        ),
        # robots.txt: the page is plain, the site's robots.txt is not
        Behaviour("robots-huge", "ok", "a 2 MiB robots.txt: the first 500 KiB are read", robots=huge_robots),
        Behaviour("robots-endless", "ok", "a robots.txt without end", robots=endless_robots),
        Behaviour("robots-gzip-bomb", "ok", "a robots.txt that inflates to 16 MiB",
                  robots=page(b"Content-Type: text/plain", b"Content-Encoding: gzip", body=gzip_bomb())),
        Behaviour("robots-500", "robots_disallowed", "robots.txt answers 500",
                  robots=page(status=b"500 Internal Server Error", body=b"")),
        Behaviour("robots-reset", "connection_error", "robots.txt: the connection is reset",
                  robots=reset(b"HTTP/1.1 200 OK\r\n")),
        Behaviour("robots-trickle", "timeout", "robots.txt one byte a second", robots=trickle),
        Behaviour("robots-http09", "bad_header", "robots.txt answered without a head",
                  robots=raw(b"User-agent: *\n")),
        Behaviour("robots-redirect-private", "blocked_address", "robots.txt redirects to 10.0.0.1",
                  robots=moved(b"http://10.0.0.1/robots.txt")),
        Behaviour("robots-redirect-loop", "ok", "robots.txt redirects to itself (unavailable: allow)",
                  robots=moved(b"/robots.txt")),
        Behaviour("robots-crawl-delay-superscript", "ok", "Crawl-delay: \u00b2",
                  robots=robots_text("User-agent: *\nCrawl-delay: \u00b2\n".encode())),
        Behaviour("robots-crawl-delay-huge", "ok", "a 5,000-digit Crawl-delay",
                  robots=robots_text(b"User-agent: *\nCrawl-delay: " + b"9" * 5000 + b"\n")),
        Behaviour("robots-request-rate-superscript", "ok", "Request-rate: \u00b2/5",
                  robots=robots_text("User-agent: *\nRequest-rate: \u00b2/5\n".encode())),
    ]
}  # fmt: skip


# --- the server ---------------------------------------------------------------------------------------------


class HostileHandler(_Handler):
    timeout = STALL_SECONDS + 5  # a client that stops reading cannot hold a server thread longer

    @property
    def stopping(self) -> threading.Event:
        return self.server.web._stopping

    def respond(self, host: str, target: str) -> None:
        behaviour = BEHAVIOURS.get(host.removesuffix(".test"))
        if behaviour is None:
            super().respond(host, target)
            return
        self.close_connection = True
        if target == "/robots.txt":
            (behaviour.robots or NO_ROBOTS)(self, target)
        else:
            (behaviour.page or PLAIN)(self, target)


class HostileWeb(FakeWeb):
    """FakeWeb on HOSTILE_IP serving BEHAVIOURS; shuts itself down after `lifetime` seconds."""

    def __init__(self, lifetime: float = 300.0) -> None:
        super().__init__(address=HOSTILE_IP, handler=HostileHandler)
        self._timer = threading.Timer(lifetime, self._stop)
        self._timer.daemon = True
        self._stop_lock = threading.Lock()
        self._stopped = False

    def url_of(self, name: str) -> str:
        return self.url(START, host=f"{name}.test")

    def resolver(self, host: str, port: int) -> list[str]:
        """*.test is this server, localhost is loopback as on any machine; nothing else exists."""
        if host.endswith(".test"):
            return [HOSTILE_IP]
        if host == "localhost":
            return ["127.0.0.1", "::1"]
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    def __enter__(self) -> HostileWeb:
        super().__enter__()
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        self._stop()

    def _stop(self) -> None:
        with self._stop_lock:
            if not self._stopped:
                self._stopped = True
                super().__exit__()


def only_hostile_connections(patch, attempted: list[str]) -> None:
    """Make every socket connect record its address in `attempted` and fail unless it is the hostile
    server's: a fetch that reached any other address (a private one it should have refused) fails the test."""
    real_connect = socket.socket.connect

    def guarded_connect(sock, address):
        attempted.append(address[0])
        if address[0] != HOSTILE_IP:
            raise AssertionError(f"connection attempted to {address}")
        return real_connect(sock, address)

    patch.setattr(socket.socket, "connect", guarded_connect)
