"""The chain's stages in pipeline order, and what each one counts in its stats: the one list of names that
`webtext`, `webtext build`, the manifest and the datasheet follow (pipelines/chain.py finds each stage's
object by its name). Plain names, no imports: the CLI reads it before any framework is loaded."""

# links counts submissions, fetch the links it fetched, the later stages pages or documents.
CHAIN = ("links", "fetch", "extract", "dedup", "filter", "release", "ngrams")
UNITS = {
    "links": "submissions",
    "fetch": "links",
    "extract": "pages",
    "dedup": "documents",
    "filter": "documents",
    "release": "documents",
}
