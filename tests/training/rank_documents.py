"""Run under torchrun by test_trainer: each rank lists the documents it reads in one epoch; rank 0 writes
every rank's list (gathered over the gloo process group) to the JSON file named by argv[2]."""

from __future__ import annotations

import json
import sys

from training.data import reader_documents
from training.distributed import gather_objects, init_distributed, shutdown
from training.release import open_release

if __name__ == "__main__":
    env = init_distributed("cpu")
    release = open_release(sys.argv[1])
    keys = [key for key, _ in reader_documents(release, "train", 7, 0, env.rank, env.world_size, 8)]
    gathered = gather_objects(keys, env)
    if env.is_main:
        with open(sys.argv[2], "w", encoding="utf-8") as handle:
            json.dump(gathered, handle)
    shutdown()
