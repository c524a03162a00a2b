#!/usr/bin/env bash
# The whole corpus build (links -> ... -> ngrams) on an Apache Flink cluster, through Beam's portable Flink
# runner: one Flink job per stage; the Python code runs in webtext-beam SDK workers beside the TaskManagers.
# Usage: edit the variables below (or set them in the environment), then `bash infra/flink/run.sh`.
set -euo pipefail

# --- what users change --------------------------------------------------------------------------------------
FLINK_MASTER="${FLINK_MASTER:-flink-jobmanager:8081}"  # the JobManager's REST address
FLINK_VERSION="${FLINK_VERSION:-1.20}"                 # the cluster's minor version (Beam 2.78: 1.19 .. 2.2)
JOB_ENDPOINT="${JOB_ENDPOINT:-}"                       # empty: upload an uber jar to FLINK_MASTER;
                                                       # HOST:8099: a running Flink job server container
PARALLELISM="${PARALLELISM:-64}"                       # task slots a stage uses (<= slots in the cluster)
SDK_WORKER_PARALLELISM="${SDK_WORKER_PARALLELISM:-4}"  # Python processes per TaskManager = its slots
ENVIRONMENT_TYPE="${ENVIRONMENT_TYPE:-EXTERNAL}"       # EXTERNAL: worker-pool sidecars; DOCKER: TMs run IMAGE
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

if [[ -n "$JOB_ENDPOINT" ]]; then
    runner=(--runner=PortableRunner --job_endpoint="$JOB_ENDPOINT" --artifact_endpoint="${JOB_ENDPOINT%:*}:8098")
else
    # The pipeline and its artifacts travel inside the jar: no job server, no shared artifact directory.
    runner=(--runner=FlinkRunner --flink_master="$FLINK_MASTER" --flink_version="$FLINK_VERSION"
        --flink_submit_uber_jar)
fi
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
    "${runner[@]}" "${environment[@]}" \
    --parallelism="$PARALLELISM" \
    --sdk_worker_parallelism="$SDK_WORKER_PARALLELISM" \
    ${extra[@]+"${extra[@]}"}
