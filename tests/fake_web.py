"""A hostile local web server for the fetcher tests: real sockets on 127.0.0.1, an endpoint per misbehaviour.

    with FakeWeb(pages={"/article": Path("article.html")}) as web:
        web.robots["a.test"] = "User-agent: *\\nDisallow: /private\\n"
        fetcher.fetch(web.url("/article", host="a.test"))  # the test's resolver maps a.test to 127.0.0.1
        web.hits(host="a.test")  # what reached the server, with server-side time.monotonic() stamps

Virtual hosts come from the Host header, so names a test resolver maps to 127.0.0.1 are separate sites, each
with its own robots.txt (``robots[host]``: text for a 200, an int status, or ``(status, text)``; none is a
404) and its own state for the stateful endpoints. Every host serves:

| path                 | behaviour                                                                    |
|----------------------|------------------------------------------------------------------------------|
| pages given          | 200 text/html with the file's bytes                                          |
| /gzip-page, /chunked | a small page gzip-encoded / sent in three chunks                             |
| /drip                | 200 text/html, then 1 byte every 0.2 s forever (no Content-Length)           |
| /stall               | 200 text/html head, then nothing                                             |
| /huge                | HUGE_BYTES of HTML with an honest Content-Length                             |
| /lying-length        | Content-Length: 1000, 100 bytes sent, then the connection is closed          |
| /gzip-bomb           | Content-Encoding: gzip, ~16 KiB on the wire, 16 MiB decoded                  |
| /reset               | head and 100 bytes of body, then an RST (SO_LINGER 0)                        |
| /loop/a, /loop/b     | 302 to each other                                                            |
| /chain/N             | 302 to /chain/N-1; /chain/0 is a page                                        |
| /redirect?to=URL     | 302 to URL; /redirect-private and /redirect-metadata go to 10.0.0.1 and      |
|                      | 169.254.169.254 (never connected to: the fetcher must refuse them)           |
| /retry-after         | 429 with Retry-After: 1 the first time (per host), then a page               |
| /flaky               | 503 the first time (per host), then a page                                   |
| /status/N            | always status N (/404 too)                                                   |
| /binary              | PNG bytes (NULs) served as text/html                                         |
| /bad-charset         | a page with ``charset=foobar-99``                                            |
| /pdf                 | application/pdf                                                              |
| anything else        | 404                                                                          |

tests/hostile_web.py builds on this server (``address``, and a ``handler`` subclass overriding ``respond``).
"""

from __future__ import annotations

import gzip
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

HUGE_BYTES = 2 * 2**20
PAGE = b"<!doctype html><html><head><title>Test page</title></head><body><p>Hello, web.</p></body></html>\n"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + b"\x00" * 64


@cache
def gzip_bomb() -> bytes:
    return gzip.compress(b"<p>" + b" " * (16 * 2**20) + b"</p>", compresslevel=9)


@dataclass
class Hit:
    """One request as the server saw it."""

    time: float  # time.monotonic() when the request line had been read
    host: str  # Host header without the port
    path: str  # path and query
    headers: dict[str, str]
    sent_head: bytes = b""  # the status line and headers exactly as the server wrote them


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    _hit: Hit | None = None

    def setup(self) -> None:
        if self.server.web.tls is not None:
            self.request.settimeout(5)
            self.request = self.server.web.tls.wrap_socket(self.request, server_side=True)
        super().setup()

    def finish(self) -> None:
        super().finish()
        if self.server.web.tls is not None:
            self.request.close()  # socketserver closes only the plain socket it accepted

    def log_message(self, format: str, *args: object) -> None:
        pass

    def flush_headers(self) -> None:
        if self._hit is not None:
            self._hit.sent_head += b"".join(getattr(self, "_headers_buffer", []))
        super().flush_headers()

    def do_GET(self) -> None:
        web = self.server.web
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        self._hit = web._record(Hit(time.monotonic(), host, self.path, dict(self.headers.items())))
        try:
            self.respond(host, self.path)
        except OSError:  # the client went away (it stops reading at its caps): expected here
            self.close_connection = True

    def respond(self, host: str, target: str) -> None:
        """Serve one request for `target` (path and query) on the virtual host `host`."""
        web = self.server.web
        path, query = urlsplit(target).path, parse_qs(urlsplit(target).query)
        seen = len(web.hits(host=host, path=target))  # this request included
        if path in web.pages:
            self.reply(200, web.pages[path])
        elif path == "/robots.txt":
            self.robots(web.robots.get(host))
        elif path == "/gzip-page":
            self.reply(200, gzip.compress(PAGE), ("Content-Encoding", "gzip"))
        elif path == "/chunked":
            self.chunked([PAGE[:20], PAGE[20:50], PAGE[50:]])
        elif path == "/drip":
            self.drip()
        elif path == "/stall":
            self.head(200)
            web._stopping.wait(30)
        elif path == "/huge":
            self.huge()
        elif path == "/lying-length":
            self.head(200, ("Content-Length", "1000"))
            self.wfile.write((PAGE * 2)[:100])
            self.close_connection = True
        elif path == "/gzip-bomb":
            self.reply(200, gzip_bomb(), ("Content-Encoding", "gzip"))
        elif path == "/reset":
            self.reset()
        elif path.startswith("/loop/"):
            self.redirect("/loop/b" if path == "/loop/a" else "/loop/a")
        elif path.startswith("/chain/") and path[7:].isdigit():
            n = int(path[7:])
            if n > 0:
                self.redirect(f"/chain/{n - 1}")
            else:
                self.reply(200, PAGE)
        elif path == "/redirect":
            self.redirect(query["to"][0])
        elif path == "/redirect-private":
            self.redirect("http://10.0.0.1/")
        elif path == "/redirect-metadata":
            self.redirect("http://169.254.169.254/latest/meta-data/")
        elif path == "/retry-after" and seen == 1:
            self.reply(429, b"slow down", ("Retry-After", "1"))
        elif path == "/flaky" and seen == 1:
            self.reply(503, b"try again")
        elif path in ("/retry-after", "/flaky"):
            self.reply(200, PAGE)
        elif path.startswith("/status/") and path[8:].isdigit():
            self.reply(int(path[8:]), b"<html><body>status page</body></html>")
        elif path == "/binary":
            self.reply(200, PNG)
        elif path == "/bad-charset":
            self.reply(200, PAGE, ("Content-Type", "text/html; charset=foobar-99"))
        elif path == "/pdf":
            self.reply(200, b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", ("Content-Type", "application/pdf"))
        else:
            self.reply(404, b"<html><body>not found</body></html>")

    def head(self, status: int, *headers: tuple[str, str]) -> None:
        names = {name.lower() for name, _ in headers}
        self.send_response(status)
        if "content-type" not in names:
            self.send_header("Content-Type", "text/html; charset=utf-8")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()

    def reply(self, status: int, body: bytes, *headers: tuple[str, str]) -> None:
        self.head(status, ("Content-Length", str(len(body))), *headers)
        self.wfile.write(body)

    def robots(self, rule: str | int | tuple[int, str] | None) -> None:
        if rule is None:
            status, text = 404, ""
        elif isinstance(rule, str):
            status, text = 200, rule
        elif isinstance(rule, int):
            status, text = rule, ""
        else:
            status, text = rule
        self.reply(status, text.encode(), ("Content-Type", "text/plain"))

    def redirect(self, location: str) -> None:
        self.reply(302, b"", ("Location", location))

    def chunked(self, pieces: list[bytes]) -> None:
        self.head(200, ("Transfer-Encoding", "chunked"))
        for piece in pieces:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")

    def drip(self) -> None:
        self.head(200, ("Connection", "close"))
        self.close_connection = True
        while not self.server.web._stopping.wait(0.2):
            self.wfile.write(b"<")

    def huge(self) -> None:
        self.head(200, ("Content-Length", str(HUGE_BYTES)))
        block = b"<p>" + b"x" * (2**16 - 7) + b"</p>"
        for _ in range(HUGE_BYTES // len(block)):
            self.wfile.write(block)
        self.wfile.write(b"x" * (HUGE_BYTES % len(block)))

    def reset(self) -> None:
        self.head(200, ("Content-Length", "1000"))
        self.wfile.write((PAGE * 2)[:100])
        self.abort()

    def abort(self) -> None:
        """Reset the connection (RST, not FIN) once the client has had time to read what was sent."""
        time.sleep(0.1)
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()  # with linger 0: RST instead of FIN
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many clients connect at once in the concurrent tests
    web: FakeWeb

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # TLS handshakes refused by the client, sockets we reset on purpose


class FakeWeb:
    """A threaded HTTP(S) server on a loopback address (127.0.0.1 unless given; a random port) with hostile
    endpoints; a context manager."""

    def __init__(
        self,
        pages: dict[str, bytes | str | Path] | None = None,
        tls: ssl.SSLContext | None = None,
        address: str = "127.0.0.1",
        handler: type[_Handler] = _Handler,
    ):
        self.pages = {
            path: data if isinstance(data, bytes) else Path(data).read_bytes()
            for path, data in (pages or {}).items()
        }
        self.tls = tls  # a server-side context: serve https
        self.robots: dict[str, str | int | tuple[int, str]] = {}
        self._hits: list[Hit] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = _Server((address, 0), handler)
        self._server.web = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, path: str, host: str = "a.test") -> str:
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}{path}"

    def hits(self, host: str | None = None, path: str | None = None) -> list[Hit]:
        with self._lock:
            return [h for h in self._hits if host in (None, h.host) and path in (None, h.path)]

    def _record(self, hit: Hit) -> Hit:
        with self._lock:
            self._hits.append(hit)
        return hit

    def __enter__(self) -> FakeWeb:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
