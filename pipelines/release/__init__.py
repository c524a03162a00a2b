"""The release stage: documents -> WebDataset shards, tokenizer, manifest.json and datasheet.md. `stage.py`:
flags, options and summary; `tokenizer.py`: the tokenizer made in the driver; `transform.py`: the Beam
transform; `verify.py`: `webtext verify`, which checks a release against its manifest."""
