"""The extract stage: fetched pages -> documents with trafilatura. `stage.py`: flags, options and summary;
`transform.py`: the Beam transform."""
