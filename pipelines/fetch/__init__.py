"""The fetch stage: links -> WARC files and the fetch index. `stage.py`: flags, options and summary;
`transform.py`: the polite fetcher's transform; `archive.py`: the same index from existing WARC/ARC files."""
