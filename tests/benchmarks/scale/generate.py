"""The scale harness's inputs at a size factor S, from the real samples, byte-identical for a seed.

    python -m tests.benchmarks.scale.generate --factor 1 --seed 0 --out build/scale/inputs/1 [--extra DIR]

At S = 1 (`BASE`; every count is rounded from BASE * S):

- dumps/RS_scale_NNNN.zst: 62,500 Pushshift submissions (62,500 per file, like monthly dumps): whole real
  records resampled, each with a fresh id and a fresh URL on the record's own site (`fresh_url`); 10% are
  reposts of one of the last 1,000 URLs, as links are reposted on Reddit.
- warc/pages-NNNN.warc.gz: 500 pages (500 per file), response records at the URLs of submissions the links
  stage keeps (karma >= 3, links, not NSFW), so `fetch --from-warc` finds them. A page is a real HTML page
  (`sources.Template`) re-served with its article paragraphs replaced by new text: 85% fresh, 10% a near
  duplicate of an earlier page (words edited, a paragraph dropped or boilerplate added, half of them on
  another site's template, as syndicated articles are), 5% the exact bytes of an earlier page at another URL.
  pages.jsonl records every page's kind and source.
- docs/part-*.parquet: 3,125 rows of documents in the extract stage's schema, 15% of them planted variants of
  earlier rows with their exact Jaccard in docs/planted.jsonl (`documents.py`). They join the extracted pages
  as the input of dedup, filter and release: extracting enough pages for ~100M tokens would take hours.
- tokens/tokens.npy (with --tokens): 6,250,000 GPT-2 token ids (`documents.token_stream`).
- meta.json: the counts and the sha256 of every file (no timings: it is byte-identical for a seed too).
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import hashlib
import io
import json
import random
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import zstandard
from warcio.warcwriter import WARCWriter

from corpus.url_lists import base36
from tests.benchmarks.scale.documents import (
    compose,
    fresh_url,
    lognormal_words,
    token_stream,
    write_documents,
)
from tests.benchmarks.scale.sources import Samples, Template, describe, load_samples
from tests.fixtures.near_duplicates import BOILERPLATE, edit_words


@dataclass(frozen=True)
class Sizes:
    submissions: int
    pages: int
    docs: int
    tokens: int

    def times(self, factor: float) -> Sizes:
        return Sizes(*(max(1, round(n * factor)) for n in asdict(self).values()))


BASE = Sizes(submissions=62_500, pages=500, docs=3_125, tokens=6_250_000)
PER_DUMP = 62_500
PER_WARC = 500
REPOST_SHARE, REPOST_WINDOW = 0.10, 1_000
NEAR_SHARE, EXACT_SHARE = 0.10, 0.05
RECENT_PAGES = 500  # near and exact duplicates copy one of the last RECENT_PAGES fresh pages
CONTENT_TYPE = "text/html; charset=utf-8"


def submission_templates(records: list[dict]) -> list[str]:
    """Each real record as compact JSON with @@ID@@ and @@URL@@ where its id and URL go (in the permalink
    and the fullname too), so a million lines are a million string replacements, not json.dumps calls."""
    templates = []
    for record in records:
        record, old = dict(record), str(record.get("id"))
        record["id"], record["url"] = "@@ID@@", "@@URL@@"
        if isinstance(record.get("permalink"), str):
            record["permalink"] = record["permalink"].replace(f"/comments/{old}/", "/comments/@@ID@@/")
        if isinstance(record.get("name"), str) and record["name"].startswith("t3_"):
            record["name"] = "t3_@@ID@@"
        templates.append(json.dumps(record, separators=(",", ":"), ensure_ascii=False))
    return templates


def servable(record: dict) -> bool:
    """A record whose link the links stage keeps (karma >= 3, a web link, not NSFW): a page may serve it."""
    score, url = record.get("score"), str(record.get("url", ""))
    return (
        isinstance(score, int)
        and score >= 3
        and not record.get("is_self")
        and not record.get("over_18")
        and url.startswith("http")
        and "reddit.com/" not in url
        and "redd.it/" not in url
    )


def write_submissions(
    out: Path, samples: Samples, sizes: Sizes, seed: int
) -> tuple[dict, list[tuple[str, int]]]:
    """The dumps; returns their summary and the (URL, created_utc) of the submissions pages will serve."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 1])
    records, templates = samples.submissions, submission_templates(samples.submissions)
    count = sizes.submissions
    picks = rng.integers(len(records), size=count)
    repost = rng.random(count) < REPOST_SHARE
    back = rng.integers(1, REPOST_WINDOW + 1, size=count)
    eligible = np.flatnonzero(np.array([servable(r) for r in records])[picks] & ~repost)
    served = set(rng.choice(eligible, size=min(sizes.pages, len(eligible)), replace=False).tolist())
    recent: deque[str] = deque(maxlen=REPOST_WINDOW)
    pages, reposts, files = [], 0, -(-count // PER_DUMP)
    for f in range(files):
        lines = []
        for i in range(f * PER_DUMP, min(count, (f + 1) * PER_DUMP)):
            record = records[picks[i]]
            if repost[i] and recent:
                url, reposts = recent[max(0, len(recent) - int(back[i]))], reposts + 1
            else:
                url = fresh_url(str(record.get("url", "")), f"s{i:x}")
                recent.append(url)
            if i in served:
                pages.append((url, int(float(record.get("created_utc") or 0))))
            sid = base36(1_000_000_000 + i)
            lines.append(templates[picks[i]].replace("@@ID@@", sid).replace("@@URL@@", json.dumps(url)[1:-1]))
        data = ("\n".join(lines) + "\n").encode("utf-8")
        (out / f"RS_scale_{f:04d}.zst").write_bytes(zstandard.ZstdCompressor(level=3).compress(data))
    return {"submissions": count, "reposts": reposts, "files": files, "served": len(pages)}, pages


@dataclass
class Page:
    template: int
    title: str
    paragraphs: list[str]


def render(template: Template, page: Page) -> bytes:
    """The template with its slots filled by the page's paragraphs (the last slot takes the rest as new <p>
    elements; slots beyond the paragraphs are left empty) and its <title> replaced."""
    edits = [
        (a, b, _escape(page.paragraphs[i]) if i < len(page.paragraphs) else b"")
        for i, (a, b) in enumerate(template.slots)
    ]
    if len(page.paragraphs) > len(template.slots):
        a, b, last = edits[-1]
        rest = b"</p>\n<p>".join(_escape(p) for p in page.paragraphs[len(template.slots) :])
        edits[-1] = (a, b, last + b"</p>\n<p>" + rest)
    if template.title is not None and template.title[1] <= template.slots[0][0]:
        edits.insert(0, (*template.title, _escape(page.title)))
    pieces, position = [], 0
    for a, b, text in edits:
        pieces += [template.html[position:a], text]
        position = b
    return b"".join([*pieces, template.html[position:]])


def _escape(text: str) -> bytes:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").encode("utf-8")


def warc_record(url: str, body: bytes, date: str, record_id: uuid.UUID) -> bytes:
    """One response record as its own gzip member (mtime 0, so the bytes depend on the content only)."""
    head = f"HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {len(body)}\r\n\r\n"
    payload = head.encode("ascii") + body
    buffer = io.BytesIO()
    writer = WARCWriter(buffer, gzip=False)
    headers = {"WARC-Date": date, "WARC-Record-ID": f"<urn:uuid:{record_id}>"}
    record = writer.create_warc_record(
        url, "response", payload=io.BytesIO(payload), length=len(payload), warc_headers_dict=headers
    )
    writer.write_record(record)
    return gzip.compress(buffer.getvalue(), compresslevel=6, mtime=0)


def write_pages(out: Path, samples: Samples, served: list[tuple[str, int]], seed: int) -> dict:
    """The WARC files and pages.jsonl (url, kind, template, source url)."""
    out.mkdir(parents=True, exist_ok=True)
    rng, edits = np.random.default_rng([seed, 2]), random.Random(seed + 1)
    recent: deque[tuple[str, Page]] = deque(maxlen=RECENT_PAGES)
    kinds = {"fresh": 0, "near": 0, "exact": 0}
    files = -(-len(served) // PER_WARC) if served else 0
    with open(out / "pages.jsonl", "w", encoding="utf-8") as log:
        for f in range(files):
            with open(out / f"pages-{f:04d}.warc.gz", "wb") as warc:
                for url, created in served[f * PER_WARC : (f + 1) * PER_WARC]:
                    kind, source, page = _page(samples, rng, edits, recent)
                    if kind == "fresh":
                        recent.append((url, page))
                    kinds[kind] += 1
                    date = datetime.datetime.fromtimestamp(created + 86_400, datetime.UTC)
                    body = render(samples.templates[page.template], page)
                    warc.write(
                        warc_record(
                            url,
                            body,
                            date.strftime("%Y-%m-%dT%H:%M:%SZ"),
                            uuid.UUID(bytes=rng.bytes(16), version=4),
                        )
                    )
                    line = {
                        "url": url,
                        "kind": kind,
                        "source": source,
                        "template": page.template,
                        "bytes": len(body),
                    }
                    log.write(json.dumps(line, sort_keys=True) + "\n")
    return {"pages": len(served), "files": files, **kinds}


def _page(
    samples: Samples, rng: np.random.Generator, edits: random.Random, recent: deque
) -> tuple[str, str | None, Page]:
    draw = rng.random()
    if recent and draw < EXACT_SHARE:
        source, page = recent[int(rng.integers(len(recent)))]
        return "exact", source, page
    if recent and draw < EXACT_SHARE + NEAR_SHARE:
        source, page = recent[int(rng.integers(len(recent)))]
        return "near", source, _near(page, samples, rng, edits)
    paragraphs = compose(samples, rng, lognormal_words(rng, 700, 0.6, 150, 5_000))
    title = " ".join(paragraphs[0].split()[:12])
    return "fresh", None, Page(int(rng.integers(len(samples.templates))), title, paragraphs)


def _near(page: Page, samples: Samples, rng: np.random.Generator, edits: random.Random) -> Page:
    """A light change: words edited (1% or 3%), one paragraph dropped, or boilerplate lines added; on another
    site's template half of the time."""
    paragraphs, how = list(page.paragraphs), int(rng.integers(4))
    if how < 2:
        paragraphs = [edit_words(p, (0.01, 0.03)[how], edits) for p in paragraphs]
    elif how == 2 and len(paragraphs) > 1:
        del paragraphs[int(rng.integers(len(paragraphs)))]
    else:
        paragraphs += [BOILERPLATE[int(i)] for i in rng.choice(len(BOILERPLATE), size=2, replace=False)]
    template = int(rng.integers(len(samples.templates))) if rng.random() < 0.5 else page.template
    return Page(template, page.title, paragraphs)


def generate(out: Path, factor: float, seed: int, samples: Samples, tokens: bool = False) -> dict:
    """Every input at `factor` under `out` (which must be empty or absent); returns what meta.json records."""
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"generate: {out} is not empty (its files would mix with the new inputs)")
    sizes = BASE.times(factor)
    dumps, served = write_submissions(out / "dumps", samples, sizes, seed)
    meta = {
        "factor": factor,
        "seed": seed,
        "base": asdict(BASE),
        "sizes": asdict(sizes),
        "samples": describe(samples),
        "dumps": dumps,
        "warc": write_pages(out / "warc", samples, served, seed),
        "docs": asdict(write_documents(out / "docs", samples, sizes.docs, seed)),
    }
    if tokens:
        (out / "tokens").mkdir(parents=True, exist_ok=True)
        stream = token_stream(samples, sizes.tokens, seed)
        np.save(out / "tokens" / "tokens.npy", stream)
        meta["tokens"] = {"tokens": len(stream)}
    meta["files"] = {
        str(p.relative_to(out)): _sha256(p)
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "meta.json"
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return meta


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.scale.generate", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--factor", type=float, required=True, help="size factor S (1 = BASE)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--extra", type=Path, help="a folder of richer real data (e.g. ../shared/data)")
    parser.add_argument("--tokens", action="store_true", help="also write tokens/tokens.npy")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    meta = generate(args.out, args.factor, args.seed, load_samples(args.extra), args.tokens)
    seconds = time.perf_counter() - started
    print(f"generate: factor {args.factor}: {json.dumps(meta['sizes'])} in {seconds:.1f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
