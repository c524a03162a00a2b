#!/usr/bin/env bash
# The whole corpus build (links -> ... -> ngrams) on an Apache Spark 3 cluster, through Beam's portable Spark
# runner: a Beam Spark job server submits one Spark application per stage; the Python code runs in
# webtext-beam worker pools beside the executors.
# Usage: start the job server (infra/spark/README.md), edit the variables below, `bash infra/spark/run.sh`.
set -euo pipefail

# --- what users change --------------------------------------------------------------------------------------
JOB_ENDPOINT="${JOB_ENDPOINT:-localhost:8099}"         # apache/beam_spark3_job_server:2.78.0
ARTIFACT_ENDPOINT="${ARTIFACT_ENDPOINT:-${JOB_ENDPOINT%:*}:8098}"
SDK_WORKER_PARALLELISM="${SDK_WORKER_PARALLELISM:-4}"  # Python processes per worker node = executor cores
ENVIRONMENT_TYPE="${ENVIRONMENT_TYPE:-EXTERNAL}"       # EXTERNAL: worker pools; DOCKER: executors run IMAGE
IMAGE="${IMAGE:-registry.example.com/webtext/webtext-beam:0.1.0}"  # used with ENVIRONMENT_TYPE=DOCKER
DUMPS="${DUMPS:-s3://my-bucket/pushshift/RS_*.zst}"
OUT="${OUT:-s3://my-bucket/webtext}"                   # shared by the launcher and every worker
FROM_WARC="${FROM_WARC:-}"                             # e.g. s3://my-bucket/cc/*.warc.gz
FETCH_FLAGS="${FETCH_FLAGS:---buckets 1024 --concurrency 32}"
EXTRA_OPTIONS="${EXTRA_OPTIONS:-}"                     # e.g. --s3_region_name=eu-west-1, --s3_endpoint_url=...
PYTHON="${PYTHON:-python3}"                            # the launcher's Python, where webtext is installed
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

case "$ENVIRONMENT_TYPE" in
    EXTERNAL) environment=(--environment_type=EXTERNAL --environment_config=localhost:50000) ;;
    DOCKER) environment=(--environment_type=DOCKER --environment_config="$IMAGE") ;;
    *) echo "run.sh: ENVIRONMENT_TYPE must be EXTERNAL or DOCKER, got $ENVIRONMENT_TYPE" >&2; exit 2 ;;
esac

stage_flags=(--stage-flags "fetch=$FETCH_FLAGS")
[[ -n "$FROM_WARC" ]] && stage_flags+=(--from-warc "$FROM_WARC")
read -r -a extra <<< "$EXTRA_OPTIONS"

# `python -m webtext.cli` is the `webtext` command of that environment.
exec "$PYTHON" -m webtext.cli build --dumps "$DUMPS" --out "$OUT" "${stage_flags[@]}" \
    --runner=PortableRunner \
    --job_endpoint="$JOB_ENDPOINT" \
    --artifact_endpoint="$ARTIFACT_ENDPOINT" \
    "${environment[@]}" \
    --sdk_worker_parallelism="$SDK_WORKER_PARALLELISM" \
    ${extra[@]+"${extra[@]}"}
