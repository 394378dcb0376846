#!/usr/bin/env bash
# A short fuzz run of the policy parser from the kept corpus; fails on any crash or hang.
# New inputs go to a scratch directory, so the kept corpus only changes on purpose.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
rc=0
cargo fuzz run --sanitizer none -O -a policy "$scratch" corpus/policy -- \
    -max_total_time="${FUZZ_SECONDS:-30}" -max_len=4096 -timeout=5 -print_final_stats=1 \
    >"$scratch.log" 2>&1 || rc=$?
grep -E '^(stat::number_of_executed_units|Done)' "$scratch.log" || true
if ((rc != 0)); then
    tail -n 40 "$scratch.log"
    echo "fuzz-smoke: the policy parser failed (exit $rc); the crashing input is under fuzz/artifacts/"
fi
rm -f "$scratch.log"
exit "$rc"
