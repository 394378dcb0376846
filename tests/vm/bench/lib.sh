#!/usr/bin/env bash
# Shared by the VM benchmarks (sourced, after set -euo pipefail): the VM harness, a directory
# for the figures, the lines they print, and the VM's start-up.

VM_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../lib.sh
. "$VM_HERE/lib.sh"
export VM_HERE VM_POLICY

say() { printf '%s %s\n' "$(date +%T)" "$*"; }
# rec PHASE KEY VALUE: one figure of a phase, kept in $out/PHASE.
rec() { printf '%s=%s\n' "$2" "$3" >>"$out/$1"; }

# bench_results NAME: a fresh directory $out for the figures, the VM's results under it; the
# VM is stopped on exit, whatever happens.
bench_results() {
    out=$(mktemp -d "/tmp/$1-XXXXXX")
    VM_RESULTS=$out/results
    export VM_RESULTS
    trap stop_vm EXIT
}

# bench_boot SUITE [NOTE]: starts a VM of SUITE and says how long it took, or exits saying it
# did not come up.
bench_boot() {
    local t0=$SECONDS
    start_vm "$1" || { dump_guest; say "the $1 VM did not come up"; exit 1; }
    say "booted $1 to ssh in $((SECONDS - t0)) s (${VM_ACCEL%% -cpu*})${2:+, $2}"
}
