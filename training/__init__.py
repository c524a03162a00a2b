"""GPT-1/GPT-2 model, streaming loader, trainer, evaluation and export (imports corpus/, never pipelines/)."""
