"""The ngrams stage: a release's train split -> an n-gram Bloom filter in the release. `stage.py`: flags,
options, run and summary; `transform.py`: the two Beam pipelines and the manifest update; `overlap.py`:
`webtext overlap`, evaluation sets against the filter (GPT-2 Table 6)."""
