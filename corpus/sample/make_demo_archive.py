"""Rebuild the demo archive and its constructed submissions from ../shared/data (run by hand, not by tests).

The pages are real (scrapinghub article-extraction-benchmark, MIT); the HTTP response heads, the WARC
dates and the Reddit submissions pointing at the pages are constructed for the demo.

    python corpus/sample/make_demo_archive.py ../shared/data/html_extraction/scrapinghub_aeb
"""

import gzip
import io
import json
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
HERE = Path(__file__).parent
CONTENT_TYPE = "text/html; charset=utf-8"


def main(source: Path) -> None:
    truth = json.loads((source / "ground-truth.json").read_text())
    ids = {prefix: next(k for k in truth if k.startswith(prefix)) for prefix, *_ in PAGES}
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=True)
    submissions = []
    for n, (prefix, subreddit, scores, suffix) in enumerate(PAGES):
        url = truth[ids[prefix]]["url"]
        html = gzip.decompress((source / "html" / f"{ids[prefix]}.html.gz").read_bytes())
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
        for k, score in enumerate(scores):
            submissions.append(
                {
                    "id": f"demo{n}{k}",
                    "url": url + suffix if k == len(scores) - 1 else url,
                    "score": score,
                    "created_utc": 1574251200 + 3600 * n + 60 * k,
                    "subreddit": subreddit,
                    "is_self": False,
                    "over_18": False,
                    "title": f"constructed demo submission {n}.{k}",
                }
            )
    (HERE / "warc" / "demo-pages.warc.gz").write_bytes(out.getvalue())
    lines = "".join(json.dumps(s, sort_keys=True) + "\n" for s in submissions)
    (HERE / "reddit" / "RS_demo_constructed.jsonl").write_text(lines)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
