#!/usr/bin/env bash
# The whole corpus build (links -> fetch -> extract -> dedup -> filter -> release -> ngrams) on Google Cloud
# Dataflow: `webtext build` submits one Dataflow job per stage, every job on the webtext-beam worker image.
# Usage: edit the variables below (or set them in the environment), then `bash infra/dataflow/run.sh`.
set -euo pipefail

# --- what users change --------------------------------------------------------------------------------------
PROJECT="${PROJECT:-my-gcp-project}"
REGION="${REGION:-us-central1}"
BUCKET="${BUCKET:-gs://my-webtext-bucket}"
IMAGE="${IMAGE:-${REGION}-docker.pkg.dev/${PROJECT}/webtext/webtext-beam:0.1.0}"
DUMPS="${DUMPS:-${BUCKET}/pushshift/RS_*.zst}"   # Pushshift submission dumps
OUT="${OUT:-${BUCKET}/webtext}"                  # work directory: one folder per stage
FROM_WARC="${FROM_WARC:-}"                       # e.g. gs://BUCKET/cc/*.warc.gz: no network fetch
MACHINE_TYPE="${MACHINE_TYPE:-n2-standard-4}"    # 4 vCPU, 16 GB; Dataflow runs one SDK process per vCPU
NUM_WORKERS="${NUM_WORKERS:-10}"                 # workers when a job starts
MAX_NUM_WORKERS="${MAX_NUM_WORKERS:-100}"        # autoscaling ceiling; cores = workers x vCPUs
DISK_SIZE_GB="${DISK_SIZE_GB:-50}"
FETCH_FLAGS="${FETCH_FLAGS:---buckets 4096 --concurrency 32}"  # one bucket per worker at a time
RELEASE_FLAGS="${RELEASE_FLAGS:-}"               # e.g. --tokenizer gpt2:/path/to/gpt2_bpe
NGRAMS_FLAGS="${NGRAMS_FLAGS:-}"                 # e.g. --max-memory 64GiB (with n2-highmem-16 workers)
PYTHON="${PYTHON:-python3}"                      # the launcher's Python, where webtext is installed
# ------------------------------------------------------------------------------------------------------------

# The launcher pickles the pipeline for the workers: same Python and apache-beam as the image.
BEAM_VERSION=2.78.0
"$PYTHON" - "$BEAM_VERSION" <<'EOF'
import sys
import apache_beam
if sys.version_info[:2] != (3, 11) or apache_beam.__version__ != sys.argv[1]:
    sys.exit(f"run.sh: the launcher has Python {sys.version.split()[0]} and apache-beam "
             f"{apache_beam.__version__}; the worker image has Python 3.11 and apache-beam {sys.argv[1]}")
EOF

stage_flags=(--stage-flags "fetch=$FETCH_FLAGS")
[[ -n "$RELEASE_FLAGS" ]] && stage_flags+=(--stage-flags "release=$RELEASE_FLAGS")
[[ -n "$NGRAMS_FLAGS" ]] && stage_flags+=(--stage-flags "ngrams=$NGRAMS_FLAGS")
[[ -n "$FROM_WARC" ]] && stage_flags+=(--from-warc "$FROM_WARC")

# `python -m webtext.cli` is the `webtext` command of that environment.
exec "$PYTHON" -m webtext.cli build --dumps "$DUMPS" --out "$OUT" "${stage_flags[@]}" \
    --runner=DataflowRunner \
    --project="$PROJECT" \
    --region="$REGION" \
    --temp_location="$BUCKET/tmp" \
    --staging_location="$BUCKET/staging" \
    --sdk_container_image="$IMAGE" \
    --experiments=use_runner_v2 \
    --machine_type="$MACHINE_TYPE" \
    --num_workers="$NUM_WORKERS" \
    --max_num_workers="$MAX_NUM_WORKERS" \
    --disk_size_gb="$DISK_SIZE_GB"
