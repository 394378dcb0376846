#!/usr/bin/env bash
# Whole-process time of contain-generator: the shipped policy, and 10,000 per-user overrides
# for 10,000 local accounts (set by pam_contain at login: no per-user files at boot). Output
# goes to tmpfs, as /run is at boot.
set -euo pipefail
cd "$(dirname "$0")/../.."
# GENERATOR=path times another build (e.g. the one before a change) under the same harness.
if [[ -z ${GENERATOR:-} ]]; then
    cargo build -q --release -p contain-generator
fi
gen=${GENERATOR:-$PWD/target/release/contain-generator}
work=$(mktemp -d /dev/shm/contain-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

# Two fixture roots (CONTAIN_ROOT): the shipped policy, and 10,000 overrides and accounts.
mkdir -p "$work/root/etc/contain" "$work/root-10k/etc/contain"
cp tests/fixtures/etc/{passwd,group} "$work/root/etc/"
cp tests/fixtures/etc/{passwd,group} "$work/root-10k/etc/"
cp packaging/policy.toml "$work/root/etc/contain/policy.toml"
cp packaging/policy.toml "$work/big.toml"
for i in $(seq 0 9999); do
    uid=$((20000 + i))
    echo "u$i:x:$uid:$uid::/home/u$i:/bin/bash" >>"$work/root-10k/etc/passwd"
    printf '[[override]]\nuser = "u%d"\nmemory_max = "%dM"\nmemory_high = "%dM"\n' "$i" $((1024 + i)) 1000 >>"$work/big.toml"
done
cp "$work/big.toml" "$work/root-10k/etc/contain/policy.toml"

run() { # name root [command] (env, not `env`: one exec less in what is timed)
    local slug=${1//[^a-zA-Z0-9]/_}
    CONTAIN_ROOT=$2 CONTAIN_LOG=stderr \
        hyperfine --shell=none --warmup 5 --runs "${RUNS:-200}" --export-json "$work/$slug.json" \
        --prepare "rm -rf $work/out" \
        "${3:-$gen $work/out}" \
        >/dev/null 2>"$work/$slug.err" || { cat "$work/$slug.err"; exit 1; }
    python3 - "$1" "$work/$slug.json" "$(find "$work/out" -type f 2>/dev/null | wc -l)" <<'PY'
import json, statistics, sys
r = json.load(open(sys.argv[2]))["results"][0]["times"]
r.sort()
p99 = r[min(len(r) - 1, int(len(r) * 0.99))]
print(f"{sys.argv[1]:<28} median {statistics.median(r)*1000:7.2f} ms   p99 {p99*1000:7.2f} ms   runs {len(r)}   files written {sys.argv[3]}")
PY
}
echo "contain-generator, $(nproc) cores, $(uname -r), output on tmpfs"
run "shipped policy" "$work/root"
run "10,000 per-user overrides" "$work/root-10k"
run "exec floor (/bin/true)" "$work/root" /bin/true
# The same work without the file writes: what the 10,000 drop-ins cost in syscalls.
cargo run -q --release -p contain-policy --example render_bench -- "$work/big.toml" "$work/root-10k/etc/passwd" 50
