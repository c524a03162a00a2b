"""The filter stage: documents -> Wikipedia, evaluation-set overlap and low quality removed. `stage.py`:
flags, options and summary; `transform.py`: the Beam transform."""
