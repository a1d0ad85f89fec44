#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# run-fuzz.sh FUZZER SEEDS WORKDIR SECONDS: a short libFuzzer run from the
# committed seeds (VIREO_FUZZ_SECONDS overrides). New inputs stay in
# WORKDIR; a crash leaves its input in WORKDIR/artifacts and fails.
set -eu
fuzzer=$1 seeds=$2 work=$3
seconds=${VIREO_FUZZ_SECONDS:-$4}
mkdir -p "$work/corpus" "$work/artifacts"
# GLib's slice allocator keeps a 2 KiB cache per thread that outlives
# thread-pool threads; LeakSanitizer reports it at exit after long runs.
export G_SLICE=always-malloc
# -error_exitcode: libFuzzer's default, 77, would read as "skipped" to meson.
exec "$fuzzer" -max_total_time="$seconds" -timeout=10 -error_exitcode=1 -rss_limit_mb=2048 -max_len=262144 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$work/corpus" "$seeds"
