"""The scale harness (`make scale`): cost curves of every stage at growing input sizes.

- `sources.py` loads the real samples the inputs are resampled from (files in this repository only, so a clean
  clone runs it; `--extra DIR` adds richer data such as ../shared/data).
- `generate.py` makes the inputs at a size factor S, deterministically for a seed: Pushshift dumps, WARC
  pages, a documents table with planted near-duplicate clusters, a token stream.
- `child.py` runs one stage (through `pipelines.chain.stage`), the training loader or a harness step in a
  fresh process, so each stage's peak memory is its own.
- `run.py` runs everything at each factor, measures it and writes build/scale/results.json, the plot and the
  table (`report.py`).

docs/scaling.md, "Cost curves", explains the figures.
"""
