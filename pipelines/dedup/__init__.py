"""The dedup stage: exact and near (MinHash) duplicates removed. `stage.py`: flags, options and summary;
`transform.py`: the Beam transform; `components.py`: connected components inside Beam."""
