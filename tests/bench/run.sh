#!/usr/bin/env bash
# make bench: every benchmark, against the normal (non-sanitizer) build.
# Each prints its numbers and a ratio to a baseline measured in the same
# run; nothing here passes or fails on timing.
#
#   tests/bench/run.sh [BUILD_DIR] [N]
set -eu
BUILD=${1:-build}
N=${2:-30}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
mkdir -p "$BUILD/bench"
# The bench programs live in $BUILD/bench; their zygote program does not.
export TAKO_ZYGOTE_PATH="$ROOT/$BUILD/tako-zygote"
echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== sandbox in process, cold and warm (what an executor pays per job)"
make -s "$BUILD/bench/bench_sandbox" BUILD="$BUILD"
"$BUILD/bench/bench_sandbox" "$N"
echo "== cold sandbox through the CLI (adds tako-vm's own process start)"
tests/bench/bench_sandbox.sh "$BUILD" "$N"
echo "== the REST API: warm and cold jobs, throughput, orchestration, idle memory"
tests/bench/bench_http.py "$BUILD" "$N"
