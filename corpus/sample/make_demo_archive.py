"""Rebuild the demo archive and its constructed submissions from ../shared/data (run by hand, not by tests).

The pages are real (scrapinghub article-extraction-benchmark, MIT); the HTTP response heads, the WARC
dates and the Reddit submissions pointing at the pages are constructed for the demo.

    python corpus/sample/make_demo_archive.py ../shared/data/html_extraction/scrapinghub_aeb
"""

import gzip
import io
import json
import re
import sys
from pathlib import Path

from warcio.warcwriter import WARCWriter

# (page id prefix, subreddit, scores of the submissions that link to it, posted URL suffix)
PAGES = [
    ("e372e42c", "worldnews", [57], ""),
    ("7916ecca", "worldnews", [12, 4], "?utm_source=reddit"),
    ("65ce3a45", "CFB", [9], ""),
    ("42aad16b", "space", [31], ""),
    ("06e5123e", "technology", [18], ""),
    ("d1c57d78", "space", [2], ""),  # karma 2: dropped by the links stage
    ("776a1c04", "news", [44], ""),
    ("f344ca5f", "space", [7], "#comments"),
]
# Constructed captures of the same real pages at other URLs, for the dedup stage: the page exactly (a
# second URL of one article), or with one long paragraph removed (a near duplicate).
DUPLICATES = [
    (
        "7916ecca",
        "http://www.aljazeera.com/news/2019/11/"
        "service-members-killed-afghanistan-helicopter-crash-191120070028895.html",
        "exact",
        3,
    ),
    (
        "06e5123e",
        "https://venturebeat.com/2019/11/18/"
        "new-york-state-attorney-general-investigating-wework-and-former-ceo/amp/",
        "near",
        5,
    ),
]
HERE = Path(__file__).parent
CONTENT_TYPE = "text/html; charset=utf-8"


def without_one_paragraph(html: bytes) -> bytes:
    """The page with one paragraph from the middle of the article removed."""
    paragraphs = [
        m for m in re.finditer(rb"<p(?:\s[^>]*)?>(.*?)</p>", html, re.S) if 200 < len(m.group(1)) < 2000
    ]
    cut = paragraphs[len(paragraphs) // 2]
    return html[: cut.start()] + html[cut.end() :]


def response(writer: WARCWriter, url: str, html: bytes) -> None:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {len(html)}\r\n\r\n"
    payload = head.encode() + html
    record = writer.create_warc_record(
        url,
        "response",
        payload=io.BytesIO(payload),
        length=len(payload),
        warc_headers_dict={"WARC-Date": "2019-11-20T12:00:00Z"},
    )
    writer.write_record(record)


def submission(id: str, url: str, score: int, minute: int, subreddit: str) -> dict:
    return {
        "id": id,
        "url": url,
        "score": score,
        "created_utc": 1574251200 + 60 * minute,
        "subreddit": subreddit,
        "is_self": False,
        "over_18": False,
        "title": f"constructed demo submission {id}",
    }


def main(source: Path) -> None:
    truth = json.loads((source / "ground-truth.json").read_text())
    ids = {prefix: next(k for k in truth if k.startswith(prefix)) for prefix, *_ in PAGES}
    html = {
        prefix: gzip.decompress((source / "html" / f"{i}.html.gz").read_bytes()) for prefix, i in ids.items()
    }
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=True)
    submissions = []
    for n, (prefix, subreddit, scores, suffix) in enumerate(PAGES):
        url = truth[ids[prefix]]["url"]
        response(writer, url, html[prefix])
        for k, score in enumerate(scores):
            posted = url + suffix if k == len(scores) - 1 else url
            submissions.append(submission(f"demo{n}{k}", posted, score, 60 * n + k, subreddit))
    for n, (prefix, url, kind, score) in enumerate(DUPLICATES):
        response(writer, url, html[prefix] if kind == "exact" else without_one_paragraph(html[prefix]))
        submissions.append(submission(f"dup{n}", url, score, 600 + n, "news"))
    (HERE / "warc" / "demo-pages.warc.gz").write_bytes(out.getvalue())
    lines = "".join(json.dumps(s, sort_keys=True) + "\n" for s in submissions)
    (HERE / "reddit" / "RS_demo_constructed.jsonl").write_text(lines)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
