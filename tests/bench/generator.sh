#!/usr/bin/env bash
# Whole-process time of contain-generator: the shipped policy, and 10,000 per-user overrides
# for 10,000 local accounts (10,000 per-UID drop-ins). Output goes to tmpfs, as /run is at boot.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -q --release -p contain-generator
gen=$PWD/target/release/contain-generator
work=$(mktemp -d /dev/shm/contain-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/etc"
cp tests/fixtures/etc/{passwd,group} "$work/etc/"
cp packaging/policy.toml "$work/big.toml"
for i in $(seq 0 9999); do
    uid=$((20000 + i))
    echo "u$i:x:$uid:$uid::/home/u$i:/bin/bash" >>"$work/etc/passwd"
    printf '[[override]]\nuser = "u%d"\nmemory_max = "%dM"\nmemory_high = "%dM"\n' "$i" $((1024 + i)) 1000 >>"$work/big.toml"
done

run() { # name policy (env, not `env`: one exec less in what is timed)
    CONTAIN_POLICY=$2 CONTAIN_ETC=$work/etc CONTAIN_STATE_DIR=$work/state CONTAIN_OOMD_DIR=$work/oomd CONTAIN_LOG=stderr \
        hyperfine --shell=none --warmup 5 --runs "${RUNS:-200}" --export-json "$work/$1.json" \
        --prepare "rm -rf $work/out" \
        "$gen $work/out" \
        >/dev/null 2>"$work/$1.err" || { cat "$work/$1.err"; exit 1; }
    python3 - "$1" "$work/$1.json" "$(find "$work/out" -type f | wc -l)" <<'PY'
import json, statistics, sys
r = json.load(open(sys.argv[2]))["results"][0]["times"]
r.sort()
p99 = r[min(len(r) - 1, int(len(r) * 0.99))]
print(f"{sys.argv[1]:<28} median {statistics.median(r)*1000:7.2f} ms   p99 {p99*1000:7.2f} ms   runs {len(r)}   files written {sys.argv[3]}")
PY
}
echo "contain-generator, $(nproc) cores, $(uname -r), output on tmpfs"
run "shipped policy" "$PWD/packaging/policy.toml"
run "10,000 per-user overrides" "$work/big.toml"
