#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# run-fuzzer.sh FUZZER SEED_DIR WORK_DIR SECONDS [LIBFUZZER-OPTION...]:
# runs a libFuzzer target for SECONDS (VIREO_FUZZ_SECONDS overrides)
# starting from the committed seeds. New inputs go to WORK_DIR/corpus,
# never into the source tree; a crash leaves its input in
# WORK_DIR/artifacts/ and fails the test.
set -eu
fuzzer=$1 seeds=$2 work=$3
seconds=${VIREO_FUZZ_SECONDS:-$4}
shift 4
mkdir -p "$work/corpus" "$work/artifacts"
exec "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$@" \
    "$work/corpus" "$seeds"
