"""A small local HTTP server that speaks enough of Reddit's OAuth API for praw.

It serves the client-credentials token endpoint and the subreddit listing endpoints with real
Listing JSON, pagination via ``after`` and ``limit``, and the ``t`` time filter. Every request is
recorded so tests can assert on paths, query parameters and headers. Nothing here reaches reddit.com.

    with FakeReddit(client_id="id", client_secret="secret") as server:
        reddit = praw.Reddit(client_id="id", client_secret="secret", user_agent="test agent",
                             reddit_url=server.url, oauth_url=server.url, check_for_updates=False)
        server.listing_requests()  # what praw asked for
        server.failures["GET"] = [None, (500, {}, {})]  # the first GET is answered, the second fails
"""

from __future__ import annotations

import base64
import json
import math
import secrets
import threading
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import praw.config
import pytest

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z: the fake server's clock for time filters
HOUR = 3600.0
DAY = 24 * HOUR
YEAR = 365 * DAY
TIME_WINDOWS = {"hour": HOUR, "day": DAY, "week": 7 * DAY, "month": 30 * DAY, "year": YEAR, "all": math.inf}
SORTS = ("new", "top", "hot", "rising", "controversial")
MAX_PAGE = 100  # Reddit never returns more than 100 children per page

Reply = tuple[int, dict | bytes, dict[str, str]]  # status, JSON payload (or raw body bytes), extra headers


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: str


def make_submission(
    id: str,
    subreddit: str,
    title: str,
    created_utc: float,
    *,
    url: str | None = None,
    selftext: str = "",
    score: int = 1,
    num_comments: int = 0,
    author: str = "some_user",
    over_18: bool = False,
) -> dict:
    """A t3 ``data`` dict shaped like Reddit's API: a link post when url is given, else a self post."""
    is_self = url is None
    permalink = f"/r/{subreddit}/comments/{id}/{title.lower().replace(' ', '_')[:40]}/"
    data = {
        "all_awardings": [],
        "approved_at_utc": None,
        "archived": False,
        "author": author,
        "author_flair_text": None,
        "banned_at_utc": None,
        "created": created_utc,
        "created_utc": created_utc,
        "distinguished": None,
        "domain": f"self.{subreddit}" if is_self else urlsplit(url).netloc,
        "downs": 0,
        "edited": False,
        "gilded": 0,
        "hidden": False,
        "id": id,
        "is_self": is_self,
        "is_video": False,
        "link_flair_text": None,
        "locked": False,
        "media": None,
        "name": f"t3_{id}",
        "num_comments": num_comments,
        "over_18": over_18,
        "permalink": permalink,
        "pinned": False,
        "score": score,
        "selftext": selftext,
        "selftext_html": f'<!-- SC_OFF --><div class="md"><p>{selftext}</p></div>' if selftext else None,
        "spoiler": False,
        "stickied": False,
        "subreddit": subreddit,
        "subreddit_id": f"t5_{zlib.crc32(subreddit.lower().encode()) % 16**6:x}",
        "subreddit_name_prefixed": f"r/{subreddit}",
        "subreddit_subscribers": 123456,
        "subreddit_type": "public",
        "thumbnail": "self" if is_self else "default",
        "title": title,
        "total_awards_received": 0,
        "ups": score,
        "upvote_ratio": 0.97,
        "url": f"https://www.reddit.com{permalink}" if is_self else url,
    }
    if author != "[deleted]":
        data["author_fullname"] = f"t2_{author.lower()[:8]}"
    if not is_self:
        data["url_overridden_by_dest"] = url
    return data


# fmt: off
SEEDS = [  # (id, subreddit, title, age in seconds before NOW, make_submission keywords)
    ("17v1aa", "Python", "Python 3.12.1 released", 2 * HOUR,
     {"score": 950, "num_comments": 120, "url": "https://www.python.org/downloads/release/python-3121/"}),
    ("17v0bb", "Python", "How do you structure a small CLI project?", 5 * HOUR,
     {"score": 12, "num_comments": 30, "selftext": "I keep ending up with one 2000-line file. Tips?"}),
    ("17u9cc", "Python", "Café – a naïve ✓ unicode title", 2 * DAY,
     {"score": 40, "url": "https://example.org/caf%C3%A9"}),
    ("17u8dd", "Python", "Deleted post", 3 * DAY,
     {"score": 0, "author": "[deleted]", "selftext": "[deleted]"}),
    ("16a7ee", "Python", "Ten years of requests", 60 * DAY,
     {"score": 5000, "num_comments": 800, "url": "https://github.com/psf/requests"}),
    ("17v2ff", "news", "City council approves new bike lanes", 1 * HOUR,
     {"score": 300, "num_comments": 90, "url": "https://www.example-news.com/2023/11/14/bike-lanes"}),
    ("17v1gg", "news", "Graphic footage from the scene", 6 * HOUR,
     {"score": 80, "num_comments": 400, "over_18": True, "url": "https://video.example-news.com/clip/123"}),
    ("17t0hh", "news", "Weekly discussion thread", 6 * DAY,
     {"score": 25, "num_comments": 1500, "selftext": "Talk about anything news-related here."}),
]
# fmt: on


def seed_submissions() -> list[dict]:
    """A handful of realistic submissions in r/Python and r/news shortly before NOW."""
    return [make_submission(id, sub, title, NOW - age, **kwargs) for id, sub, title, age, kwargs in SEEDS]


def _hotness(data: dict) -> float:
    """Reddit's classic hot ranking."""
    score = data["score"]
    order = math.log10(max(abs(score), 1))
    sign = (score > 0) - (score < 0)
    return sign * order + (data["created_utc"] - 1134028003) / 45000


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes; avoid 40 ms delayed-ACK stalls

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output quiet; requests are recorded instead

    def do_POST(self) -> None:
        self._handle("POST")

    def do_GET(self) -> None:
        self._handle("GET")

    def _handle(self, method: str) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8") if length else ""
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        self.server.fake.record(RecordedRequest(method, parts.path, query, dict(self.headers.items()), body))
        status, payload, headers = self.server.fake.respond(method, parts.path, query, self.headers, body)
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        if self.close_connection:
            # Say so, or the client pools a socket we are about to close and prawcore retries after a sleep.
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeReddit


class FakeReddit:
    """A threaded HTTP server on 127.0.0.1 (random port) faking Reddit's OAuth API; a context manager."""

    def __init__(
        self,
        client_id: str = "fake-client-id",
        client_secret: str = "fake-client-secret",
        submissions: list[dict] | None = None,
        page_size: int = MAX_PAGE,
        now: float = NOW,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.page_size = page_size
        self.now = now
        self.requests: list[RecordedRequest] = []
        self.failures: dict[str, list[Reply | None]] = {}  # method -> the next replies (None: as Reddit)
        self.tokens: set[str] = set()
        self._by_subreddit: dict[str, list[dict]] = {}
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.add(seed_submissions() if submissions is None else submissions)

    def add(self, submissions: list[dict]) -> None:
        """Add t3 data dicts; each lands in its own subreddit's listings."""
        for data in submissions:
            self._by_subreddit.setdefault(data["subreddit"].lower(), []).append(data)

    @property
    def url(self) -> str:
        """Base URL to use as praw's reddit_url and oauth_url."""
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeReddit:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        # A short poll interval makes shutdown() (which waits for the poll) quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-reddit", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> FakeReddit:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def listing_requests(self) -> list[RecordedRequest]:
        """The recorded GETs of subreddit listings, in order."""
        return [r for r in self.requests if r.method == "GET" and r.path.startswith("/r/")]

    def respond(
        self, method: str, path: str, query: dict[str, str], headers: Mapping[str, str], body: str
    ) -> Reply:
        """The reply to one request: the next of `failures[method]` while there are some (None: as Reddit)."""
        if self.failures.get(method) and (failure := self.failures[method].pop(0)) is not None:
            return failure
        if method == "POST" and path == "/api/v1/access_token":
            return self._token(headers, body)
        if method == "GET":
            parts = path.strip("/").split("/")
            if len(parts) == 3 and parts[0] == "r" and parts[2] in SORTS:
                token = (headers.get("Authorization") or "").removeprefix("bearer ")
                if token not in self.tokens:
                    challenge = {"www-authenticate": 'Bearer realm="reddit", error="invalid_token"'}
                    return 401, {"message": "Unauthorized", "error": 401}, challenge
                return self._listing(parts[1], parts[2], query)
        return 404, {"message": "Not Found", "error": 404}, {}

    def _token(self, headers: Mapping[str, str], body: str) -> Reply:
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if headers.get("Authorization") != f"Basic {expected}":
            return 401, {"message": "Unauthorized", "error": 401}, {}
        if parse_qs(body).get("grant_type") != ["client_credentials"]:
            return 200, {"error": "unsupported_grant_type"}, {}
        token = f"fake-bearer-{secrets.token_hex(8)}"
        with self._lock:
            self.tokens.add(token)
        return 200, {"access_token": token, "token_type": "bearer", "expires_in": 86400, "scope": "*"}, {}

    def _listing(self, subreddit: str, sort: str, query: dict[str, str]) -> Reply:
        posts = self._by_subreddit.get(subreddit.lower())
        if posts is None:
            return 404, {"message": "Not Found", "error": 404}, self._rate_headers()
        ranked = self._rank(posts, sort, query.get("t", "day"))
        start = 0
        if query.get("after"):
            names = [p["name"] for p in ranked]
            start = names.index(query["after"]) + 1 if query["after"] in names else len(ranked)
        size = min(int(query.get("limit", 25)), self.page_size, MAX_PAGE)
        page = ranked[start : start + size]
        more = start + size < len(ranked)
        data = {
            "after": page[-1]["name"] if page and more else None,
            "before": None,
            "children": [{"kind": "t3", "data": post} for post in page],
            "dist": len(page),
            "geo_filter": "",
            "modhash": "",
        }
        return 200, {"kind": "Listing", "data": data}, self._rate_headers()

    def _rank(self, posts: list[dict], sort: str, time_filter: str) -> list[dict]:
        """The subreddit's posts in listing order; top and controversial honour the t window."""
        newest_first = sorted(posts, key=lambda p: (p["created_utc"], p["id"]), reverse=True)
        if sort == "new":
            return newest_first
        if sort == "rising":
            return [p for p in newest_first if p["created_utc"] >= self.now - DAY]
        if sort == "hot":
            return sorted(newest_first, key=_hotness, reverse=True)
        window = TIME_WINDOWS.get(time_filter, DAY)
        recent = [p for p in newest_first if p["created_utc"] >= self.now - window]
        if sort == "top":
            return sorted(recent, key=lambda p: p["score"], reverse=True)
        return sorted(recent, key=lambda p: p["num_comments"] / max(p["score"], 1), reverse=True)

    def _rate_headers(self) -> dict[str, str]:
        # Low usage and a reset well inside praw's 600 s window keep praw from sleeping.
        used = len(self.requests)
        return {
            "x-ratelimit-used": str(used),
            "x-ratelimit-remaining": f"{1000 - used:.1f}",
            "x-ratelimit-reset": "300",
        }


# Fixtures for tests that drive real praw against this server.
CLIENT_ID = "test-client-id"
SECRET = "s3cr3t-Value-9f8e7d"
USER_AGENT = "webtext-tests/0.1 (by u/nobody)"


@pytest.fixture(autouse=True)
def isolated_praw(tmp_path, monkeypatch):
    """No praw settings leak in from the machine: empty env, no user praw.ini, config re-read per test."""
    for name in ("praw_client_id", "praw_client_secret", "praw_user_agent", "praw_site", "APPDATA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    monkeypatch.chdir(tmp_path)
    # praw reads praw.ini once per process and caches it on the class.
    monkeypatch.setattr(praw.config.Config, "CONFIG", None)


@pytest.fixture
def server():
    with FakeReddit(client_id=CLIENT_ID, client_secret=SECRET) as fake:
        yield fake


@pytest.fixture
def env_credentials(monkeypatch):
    monkeypatch.setenv("praw_client_id", CLIENT_ID)
    monkeypatch.setenv("praw_client_secret", SECRET)
    monkeypatch.setenv("praw_user_agent", USER_AGENT)
