"""The filter stage's transform: documents -> `filter/part-*.parquet`, dropping Wikipedia and low-quality
text.

    docs -> FilterDocs: Wikipedia host of the URL or final URL (defence in depth after the links stage),
      optional 8-gram overlap with a Wikipedia reference (mirrors and copies), optional decontamination
      (a 13-gram shared with a named evaluation set, GPT-3's rule), optional languages, quality rules
      (--rules: presets and rules files over the signals, corpus/rules.py)
      -> with --scrub-pii, the kept documents' e-mail and public IP addresses replaced by placeholders
         (corpus/pii.py), counted as filter:pii_email and filter:pii_ip
      -> kept docs (sorted shards); every drop -> ledger (reason per rule)

A row without the annotations (language, signals: a docs table from before them) gets them computed here,
so the rules see them and the kept documents carry them. The decisions and the annotations are those of the
text as extracted: scrubbing comes after them, on the kept documents only, and changes no word count.

The reference's 8-gram hashes and the evaluation sets' 13-gram hashes travel to the workers with the DoFn
(~8 bytes per distinct n-gram); a reference the size of all of Wikipedia needs the Bloom filter of the
ngrams stage instead.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cache

import apache_beam as beam

from corpus.docs import DOCS_SCHEMA, annotate
from corpus.language import LanguageIdentifier
from corpus.overlap import EvalNgrams
from corpus.pii import scrub_pii
from corpus.quality import QualityConfig, quality_drop
from corpus.rules import RuleSet, drop_reason, webtext_rules
from corpus.wikipedia import WIKIPEDIA, WikipediaReference, wikipedia_copy, wikipedia_host
from pipelines.accounting import WriteLedger, WriteStats
from pipelines.outputs import StageOutput, WriteSortedShards, read_parquet, stable_shard

STAGE = "filter"
LEDGER = "ledger"
DECONTAMINATED = "decontaminated"  # ledger reason: shares an n-gram with an evaluation set
LANGUAGE = "language"  # ledger reason: its language is not one of --languages
COUNTS = "counts"
PII = ("pii_email", "pii_ip")  # extra figures of stats.json with --scrub-pii


@dataclass(frozen=True)
class FilterOptions:
    docs: str  # glob of the docs table to filter
    quality: QualityConfig
    reference: WikipediaReference | None = None
    wikipedia_overlap: float = 0.5
    wikipedia_domains: frozenset[str] | None = None  # None: the packaged list
    decontaminate: EvalNgrams | None = None  # evaluation sets whose n-grams no kept document may share
    languages: frozenset[str] | None = None  # keep only these `language` labels; None: every language
    rules: tuple[RuleSet, ...] | None = None  # None: the webtext preset with `quality`
    scrub_pii: bool = False  # replace the kept documents' e-mail and public IP addresses (corpus/pii.py)
    num_shards: int = 1
    docs_rows: int = 0  # rows of the docs table (the log line only)


def why_dropped(row: dict, opts: FilterOptions) -> tuple[str, str] | None:
    """The first rule a document fails, as (reason, detail), or None to keep it."""
    if host := wikipedia_host(row["url"], row["final_url"], opts.wikipedia_domains):
        return WIKIPEDIA, host
    if opts.reference is not None and (
        copy := wikipedia_copy(row["text"], opts.reference, opts.wikipedia_overlap)
    ):
        return copy
    if opts.decontaminate is not None and (shared := opts.decontaminate.shared(row["text"])):
        name, count = shared
        return DECONTAMINATED, f"{name}: {count} {opts.decontaminate.n}-grams shared"
    if opts.languages is not None and row["language"] not in opts.languages:
        return LANGUAGE, f"{row['language']} {row['language_score']}"
    webtext = _webtext(opts.quality)
    for rule_set in (webtext,) if opts.rules is None else opts.rules:
        # The webtext preset is quality_drop itself: today's decisions, unprefixed reasons and details.
        dropped = (
            quality_drop(row["text"], opts.quality) if rule_set == webtext else drop_reason(row, rule_set)
        )
        if dropped is not None:
            return dropped
    return None


@cache
def _webtext(config: QualityConfig) -> RuleSet:
    return webtext_rules(config)


class FilterDocs(beam.DoFn):
    def __init__(self, options: FilterOptions) -> None:
        self.options = options

    def setup(self) -> None:
        self.identifier = LanguageIdentifier()  # loads its model only if a row lacks its language

    def process(self, row: dict):
        row = annotate(row, self.identifier)
        dropped = why_dropped(row, self.options)
        if dropped is None:
            if self.options.scrub_pii:
                text, emails, ips = scrub_pii(row["text"])
                row = {**row, "text": text}
                if emails or ips:
                    yield beam.pvalue.TaggedOutput(COUNTS, Counter(pii_email=emails, pii_ip=ips))
            yield row
            return
        reason, detail = dropped
        shard = stable_shard(row["id"], self.options.num_shards)
        yield beam.pvalue.TaggedOutput(
            LEDGER, (shard, [(row["id"], STAGE, reason, f"{row['url']}: {detail}"[:500])])
        )


class Filter(beam.PTransform):
    """The docs table -> kept documents, ledger and stats.json in `output`'s generation."""

    def __init__(self, options: FilterOptions, output: StageOutput) -> None:
        super().__init__()
        self.options, self.output = options, output

    def expand(self, pbegin):
        opts, n = self.options, self.options.num_shards
        docs = pbegin | "ReadDocs" >> read_parquet(opts.docs)
        kept = docs | "Filter" >> beam.ParDo(FilterDocs(opts)).with_outputs(LEDGER, COUNTS, main="kept")
        kept.kept | "WriteDocs" >> WriteSortedShards(
            self.output.path("part"), n, DOCS_SCHEMA, lambda row: row["id"]
        )
        dropped = kept[LEDGER] | "WriteLedger" >> WriteLedger(self.output, n)
        # With --scrub-pii, zeros first: stats.json then always has both figures.
        zeros = Counter(dict.fromkeys(PII, 0)) if opts.scrub_pii else Counter()
        counts = (
            docs | "In" >> beam.Map(lambda _: Counter({"in": 1})),
            kept.kept | "Out" >> beam.Map(lambda _: Counter({"out": 1})),
            kept[COUNTS],
            pbegin | "PiiZeros" >> beam.Create([zeros]),
        ) | "AllCounts" >> beam.Flatten()
        return (counts, dropped) | "Stats" >> WriteStats(self.output, self._config())

    def _config(self) -> dict:
        opts = self.options
        return {
            "filter": {
                **{k: getattr(opts.quality, k) for k in opts.quality.__dataclass_fields__},
                "wikipedia_reference": opts.reference is not None,
                "wikipedia_overlap": opts.wikipedia_overlap,
                **decontamination_config(opts.decontaminate),
                "languages": sorted(opts.languages) if opts.languages is not None else None,
                "rules": rules_config(opts.rules or (_webtext(opts.quality),)),
                "scrub_pii": opts.scrub_pii,
            }
        }


def rules_config(rules: tuple[RuleSet, ...]) -> list[dict]:
    """What stats.json records of --rules: each rule set's name and rules, in order."""
    return [
        {"name": s.name, "rules": [f"{r.name}: {r.signal} {r.op} {r.threshold:g}" for r in s.rules]}
        for s in rules
    ]


def decontamination_config(sets: EvalNgrams | None) -> dict:
    """What stats.json (and the release manifest) records of the decontamination: n and each evaluation
    set's number of distinct n-grams; nothing when there was none, so earlier configs stay as they were."""
    if sets is None:
        return {}
    return {"decontaminate": sets.sizes(), "decontam_n": sets.n}
